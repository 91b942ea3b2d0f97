"""What the wire refuses before any server acts on a message (raftsim/wire/payload.py and
the codec's checks): payloads that cannot be decoded (configurations, commands, snapshots),
terms and indexes at or above 2**63, entries that do not follow each other, and frames
with more elements than a server should build. Each case is one an attacker on the
network used (issue 11); each raises a WireError that says what was wrong."""

from __future__ import annotations

import dataclasses
import random
import re
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    TimeoutNow,
)
from raftsim.core.node import RaftNode, bootstrap_state
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import KVStore, encode_batch, encode_delete, encode_put
from raftsim.runtime.server import Server
from raftsim.sim.loop import VirtualTimeLoop
from raftsim.storage.memory import MemoryStorage
from raftsim.wire import (
    MAX_FRAME_BYTES,
    MAX_FRAME_ELEMENTS,
    MAX_UINT,
    FrameDecoder,
    FrameError,
    MessageError,
    WireError,
    decode_frame,
    decode_message_bytes,
    encode_message,
)
from raftsim.wire.payload import (
    command_problem,
    configuration_problem,
    snapshot_configuration_problem,
    snapshot_data_problem,
)

CONFIG = Configuration((ServerInfo("s1", "127.0.0.1:1"), ServerInfo("s2", "127.0.0.1:2"),
                        ServerInfo("s3", "127.0.0.1:3", False)))


def append(*entries: Entry, term: int = 5, prev: int = 0, prev_term: int = 0) -> AppendEntries:
    return AppendEntries(term, "s1", "s2", prev, prev_term, entries, 0)


def noop(term: int, index: int) -> Entry:
    return Entry(term, index, EntryKind.NOOP, b"")


def snapshot_data(index: int, items: dict[str, bytes] | None = None) -> bytes:
    store = KVStore()
    for n, (key, value) in enumerate(sorted((items or {}).items()), start=1):
        store.apply(n, encode_put(key, value))
    store.advance(index)
    return store.snapshot()


def install(configuration: bytes, data: bytes, *, index: int = 10) -> InstallSnapshot:
    return InstallSnapshot(5, "s1", "s2", index, 4, configuration, data)


def refused(message: Message, complaint: str) -> None:
    with pytest.raises(MessageError, match=complaint):
        decode_message_bytes(encode_message(message))


# ---------------------------------------------------------------- what servers send passes


def test_everything_a_server_sends_decodes() -> None:
    entries = (
        Entry(1, 1, EntryKind.CONFIGURATION, CONFIG.encode()),
        Entry(2, 2, EntryKind.NOOP, b""),
        Entry(2, 3, EntryKind.COMMAND, encode_put("k", b"v")),
        Entry(2, 4, EntryKind.COMMAND, encode_put("k", b"v", cas=0)),
        Entry(3, 5, EntryKind.COMMAND, encode_put("k", b"", cas=3)),
        Entry(3, 6, EntryKind.COMMAND, encode_delete("k")),
        Entry(3, 7, EntryKind.COMMAND, encode_batch([encode_put("a", b"1"), encode_delete("b")])),
        Entry(3, 8, EntryKind.COMMAND, encode_put("k", b"", cas=2**64 - 1)),  # Nomad's uint64
    )
    message = append(*entries, term=MAX_UINT)
    assert decode_message_bytes(encode_message(message)) == message
    snapshot = install(encode_indexed(3, CONFIG), snapshot_data(10, {"a": b"1", "b": b""}))
    assert decode_message_bytes(encode_message(snapshot)) == snapshot
    big = RequestVote(MAX_UINT, "s1", "s2", MAX_UINT, MAX_UINT, False, True)
    assert decode_message_bytes(encode_message(big)) == big


# ---------------------------------------------------------------- terms and indexes


@pytest.mark.parametrize("huge", [2**63, 2**64 - 1])
@pytest.mark.parametrize(
    "build",
    [
        lambda n: RequestVote(n, "s1", "s2", 0, 0, False, True),
        lambda n: RequestVote(1, "s1", "s2", n, 0),
        lambda n: TimeoutNow(n, "s1", "s2"),
        lambda n: AppendEntries(n, "s1", "s2", 0, 0, (), 0),
        lambda n: AppendEntries(1, "s1", "s2", 0, 0, (), n),
        lambda n: AppendEntriesResponse(1, "s2", "s1", True, n),
        lambda n: InstallSnapshotResponse(1, "s2", "s1", n),
    ],
    ids=["vote term", "vote index", "timeout-now", "append term", "commit", "match", "snap"],
)
def test_terms_and_indexes_at_or_above_2_63_are_refused(build: Any, huge: int) -> None:
    refused(build(huge), r"must be an int in \[0, 2\*\*63\)")


# ---------------------------------------------------------------- entries


def test_entries_must_follow_the_previous_index() -> None:
    refused(append(noop(5, 2)), r"entries\[0\]\.index must be 1")
    refused(append(noop(5, 1), noop(5, 3)), r"entries\[1\]\.index must be 2")
    refused(append(noop(5, 8), prev=6, prev_term=5), r"entries\[0\]\.index must be 7")


def test_entry_terms_never_exceed_the_message_term_nor_go_down() -> None:
    refused(append(noop(6, 1)), r"entries\[0\]\.term 6 is above the message's term 5")
    refused(append(noop(3, 1), noop(2, 2)), r"entries\[1\]\.term 2 is below")
    refused(append(noop(2, 5), prev=4, prev_term=3), r"entries\[0\]\.term 2 is below")
    refused(AppendEntries(2, "s1", "s2", 4, 3, (), 0), r"prev_log_term 3 is above")


def test_a_noop_entry_carries_nothing() -> None:
    refused(append(Entry(5, 1, EntryKind.NOOP, b"x")), r"a NOOP entry carries no data")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\xff\x00garbage", "not JSON"),
        (b"", "not JSON"),
        (b"{}", "not the canonical encoding"),
        (b'[["s1","127.0.0.1:1",1]]', "not the canonical encoding"),
        (b'[[1,"127.0.0.1:1",true]]', "not the canonical encoding"),
        (b'[["s1","a:1",true],["s1","b:1",true]]', "server s1 is listed twice"),
        (b'[["s1","a:1",true],["s2","a:1",true]]', "address a:1 is listed twice"),
        (b'[["s1","a:1",false]]', "no voter"),
        (b'[["","a:1",true]]', "an empty server id"),
        (b"[" * 5000, "not JSON"),
    ],
)
def test_a_configuration_entry_that_cannot_be_decoded_is_refused(data: bytes,
                                                                  complaint: str) -> None:
    assert configuration_problem(CONFIG.encode()) is None
    problem = configuration_problem(data)
    assert problem is not None and complaint in problem
    refused(append(Entry(5, 1, EntryKind.CONFIGURATION, data)),
            r"entries\[0\] is not a valid configuration: " + complaint)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\xc1", "not one msgpack value"),
        (encode_put("k", b"v") + b"\x00", "not one msgpack value"),
        (b"", "not one msgpack value"),
        (msgpack.packb(["put", "k", "v", None]), "put is"),
        (msgpack.packb(["put", "k", b"v"], use_bin_type=True), "put is"),
        (msgpack.packb(["put", "k", b"v", -1], use_bin_type=True), "put is"),
        (msgpack.packb(["put", "k", b"v", True], use_bin_type=True), "put is"),
        (msgpack.packb(["delete", 5]), "delete is"),
        (msgpack.packb(["drop", "k"]), "unknown command"),
        (msgpack.packb({"put": "k"}), "a command is an array"),
        (msgpack.packb(["batch", [["batch", []]]]), "batch[0]: unknown command"),
        (msgpack.packb(["batch", "x"]), "batch is"),
        (msgpack.packb(["put", b"\xff", b"v", None], use_bin_type=False), "not one msgpack"),
    ],
)
def test_a_command_that_is_not_a_kv_command_is_refused(data: bytes, complaint: str) -> None:
    problem = command_problem(data)
    assert problem is not None and complaint in problem, problem
    refused(append(Entry(5, 1, EntryKind.COMMAND, data)),
            r"entries\[0\] is not a valid command: ")


def test_a_valid_entry_after_an_invalid_one_does_not_save_the_message() -> None:
    refused(append(Entry(5, 1, EntryKind.COMMAND, b"\xc1"),
                   Entry(5, 2, EntryKind.COMMAND, encode_put("k", b"v"))),
            r"entries\[0\] is not a valid command")


# ---------------------------------------------------------------- snapshots


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\xff", "not JSON"),
        (b"", "not JSON"),
        (CONFIG.encode(), "not an indexed configuration"),
        (encode_indexed(11, CONFIG), "its index 11 is past the snapshot's index 10"),
        (encode_indexed(3, Configuration()), "no voter"),
    ],
)
def test_a_snapshot_configuration_that_cannot_be_decoded_is_refused(
    data: bytes, complaint: str
) -> None:
    problem = snapshot_configuration_problem(data, 10)
    assert problem is not None and complaint in problem, problem
    refused(install(data, snapshot_data(10)), "configuration is not valid: " + complaint)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"garbage!", "not one msgpack value"),
        (b"", "not one msgpack value"),
        (msgpack.packb([10]), "is \\[applied index, items\\]"),
        (msgpack.packb([10, [["k", "not bin", 1, 1]]]), r"items\[0\] is"),
        (msgpack.packb([10, [["k", b"v", 1]]], use_bin_type=True), r"items\[0\] is"),
        (msgpack.packb([-1, []]), "is \\[applied index, items\\]"),
        (msgpack.packb([10, {"k": b"v"}], use_bin_type=True), "is \\[applied index, items\\]"),
    ],
)
def test_a_snapshot_payload_that_cannot_be_decoded_is_refused(data: bytes,
                                                               complaint: str) -> None:
    problem = snapshot_data_problem(data)
    assert problem is not None and re.search(complaint, problem), problem
    # One message holding the whole snapshot: refused at the wire.
    refused(install(encode_indexed(3, CONFIG), data), "data is not a valid snapshot: ")
    if len(data) < 2:
        return
    # In two chunks each passes the wire (a chunk is not a whole snapshot); the core
    # refuses the assembled data with the check the runtime hands it, and installs nothing.
    node = RaftNode("s2", NodeSettings(), random.Random(1), snapshot_check=snapshot_data_problem)
    whole = install(encode_indexed(3, CONFIG), data)
    half = len(data) // 2
    chunks = [dataclasses.replace(whole, data=data[:half], done=False),
              dataclasses.replace(whole, data=data[half:], offset=half)]
    events, messages = [], []
    for chunk in chunks:
        ready = node.step(decode_message_bytes(encode_message(chunk)), 1.0)
        assert ready.snapshot is None and ready.restore is None
        events += [e.fields for e in ready.events if e.kind == "snapshot-refused"]
        messages += ready.messages
    assert len(events) == 1 and re.search(complaint, events[0]["problem"])
    assert node.snapshot is None
    assert [m.next_offset for m in messages if isinstance(m, InstallSnapshotResponse)] == [half]


def test_every_refusal_is_a_wire_error_never_anything_else() -> None:
    @given(st.binary(max_size=64), st.sampled_from(list(EntryKind)))
    def check(data: bytes, kind: EntryKind) -> None:
        for message in (append(Entry(5, 1, kind, data)),
                        install(data, data), install(encode_indexed(1, CONFIG), data)):
            try:
                decode_message_bytes(encode_message(message))
            except WireError:
                pass

    check()


# ---------------------------------------------------------------- elements per frame


def _empty_arrays(total: int, inner: int = 65535) -> bytes:
    """A notification whose params are arrays of ``inner`` empty arrays: about ``total``
    bytes, nearly all of them empty arrays (the attack: ~70 bytes of memory per byte)."""
    outer = max(total // inner, 1)
    body = (b"\xdc" + inner.to_bytes(2, "big") + b"\x90" * inner) * outer
    return b"\x93\x02\xadAppendEntries\xdc" + outer.to_bytes(2, "big") + body


def test_a_frame_of_four_mib_of_empty_arrays_is_refused_without_building_it() -> None:
    # Just under the frame limit, so the element limit is what refuses it.
    data = _empty_arrays(MAX_FRAME_BYTES - 128 * 1024)
    assert 3 * 1024 * 1024 < len(data) < MAX_FRAME_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(FrameError, match=f"more than {MAX_FRAME_ELEMENTS} elements"):
            FrameDecoder().feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Before the limit: ~280 MiB. After: the elements up to the limit and one chunk.
    assert peak < 40 * 1024 * 1024, peak
    with pytest.raises(FrameError, match="elements"):
        decode_frame(data)


def test_the_element_limit_counts_per_frame_not_per_stream() -> None:
    frame = _empty_arrays(MAX_FRAME_ELEMENTS // 6, inner=MAX_FRAME_ELEMENTS // 6)
    decoder = FrameDecoder()
    for _ in range(4):
        assert len(decoder.feed(frame)) == 1


def test_the_element_limit_holds_when_the_frame_arrives_byte_by_byte() -> None:
    decoder = FrameDecoder(max_elements=1000)
    frame = _empty_arrays(1000, inner=1000)
    with pytest.raises(FrameError, match="more than 1000 elements"):
        for position in range(0, len(frame), 7):
            decoder.feed(frame[position:position + 7])
    small = encode_message(append(*(Entry(5, n, EntryKind.NOOP) for n in range(1, 100))))
    decoder = FrameDecoder(max_elements=1000)
    got = [f for n in range(len(small)) for f in decoder.feed(small[n:n + 1])]
    assert len(got) == 1


def test_max_elements_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="max_elements"):
        FrameDecoder(max_elements=0)


# ---------------------------------------------------------------- the state machine


msgpack_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=4),
              st.binary(max_size=4), st.sampled_from(["put", "delete", "batch"])),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)


@given(st.one_of(st.binary(max_size=32),
                 msgpack_values.map(lambda v: msgpack.packb(v, use_bin_type=True))))
def test_applying_any_bytes_never_raises_and_changes_nothing_unless_valid(data: bytes) -> None:
    """A leader proposes only checked commands and followers refuse others at the wire;
    still, the store applies anything without raising, and what is no command is a no-op
    (in a batch: each command that is none)."""
    store = KVStore()
    store.apply(1, encode_put("kept", b"v"))
    before = store.digest()
    result = store.apply(2, data)
    if command_problem(data) is not None:
        assert result is False
        if not data.startswith(b"\x92\xa5batch"):
            assert store.digest() == before
    assert store.applied_index == 2


# ---------------------------------------------------------------- a server receiving it


def test_a_server_drops_a_refused_message_with_a_trace_event_and_changes_nothing() -> None:
    """The simulated network hands a server whole frames: a refused one becomes a
    ``bad-frame`` trace event saying why, and nothing is stepped, stored or applied."""
    class Nowhere:
        def send(self, target: str, data: bytes, meta: object = None) -> None:
            pass

    events: list[tuple[str, dict[str, Any]]] = []
    loop = VirtualTimeLoop()
    storage = MemoryStorage()
    hard_state, entries = bootstrap_state(CONFIG)
    storage.save(hard_state, tuple(entries), None)
    server = Server("s2", settings=NodeSettings(), rng=random.Random(1),
                    storage=storage, transport=Nowhere(), loop=loop,
                    observer=lambda sid, term, kind, fields: events.append((kind, fields)))
    try:
        server.start()
        node = server.node
        assert node is not None
        before = (node.term, node.log.last_index, storage.load().entries)
        forged = [
            append(Entry(9, 2, EntryKind.CONFIGURATION, b"\xffgarbage"), term=9, prev=1,
                   prev_term=1),
            append(Entry(9, 2, EntryKind.COMMAND, b"\xc1"), term=9, prev=1, prev_term=1),
            RequestVote(2**64 - 1, "s1", "s2", 9, 9, False, True),
        ]
        for message in forged:
            server.receive("s1", encode_message(dataclasses.replace(message, target="s2")))
        bad = [fields["error"] for kind, fields in events if kind == "bad-frame"]
        assert len(bad) == len(forged), bad
        assert "not a valid configuration" in bad[0] and "not a valid command" in bad[1]
        assert "2**63" in bad[2]
        assert (node.term, node.log.last_index, storage.load().entries) == before
        # A snapshot in several chunks is checked once assembled, by the core (with the
        # check the runtime hands it): refused whole, nothing installed.
        garbage = b"garbage, not a snapshot"
        whole = dataclasses.replace(install(encode_indexed(1, CONFIG), garbage, index=50),
                                    term=node.term, last_included_term=node.term)
        for chunk in (dataclasses.replace(whole, data=garbage[:8], done=False),
                      dataclasses.replace(whole, data=garbage[8:], offset=8)):
            server.receive("s1", encode_message(chunk))
        refusals = [fields for kind, fields in events if kind == "snapshot-refused"]
        assert [r["index"] for r in refusals] == [50]
        assert "not one msgpack value" in refusals[0]["problem"]
        assert (node.log.last_index, storage.load().entries, storage.load().snapshot) == (
            before[1], before[2], None)
    finally:
        server.crash()
        loop.close()
