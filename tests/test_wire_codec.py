"""The msgpack encoding of Raft messages (raftsim/wire/codec.py): every message
round-trips exactly, the wire layout is the documented one, and anything that is not a
valid message raises a WireError naming what was wrong, never any other exception."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.messages import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import MAX_VALUE_BYTES, encode_put
from raftsim.wire import (
    MAX_FRAME_BYTES,
    MAX_UINT,
    FrameError,
    MessageError,
    Notification,
    Request,
    Response,
    RoundEncoder,
    WireError,
    codec,
    decode_frame,
    decode_message,
    decode_message_bytes,
    encode_frame,
    encode_message,
)

# ---------------------------------------------------------------- strategies

uints = st.one_of(st.integers(0, 1000), st.sampled_from([0, 2**31, 2**32, MAX_UINT]))
ids = st.text(max_size=12)  # any unicode, NUL included
payloads = st.binary(max_size=48)  # NUL bytes included
entries = st.builds(Entry, term=uints, index=uints, kind=st.sampled_from(EntryKind), data=payloads)
entry_tuples = st.one_of(
    st.just(()),
    st.lists(entries, max_size=8).map(tuple),
    st.lists(entries, min_size=50, max_size=120).map(tuple),
)
_BY_ANNOTATION: dict[str, st.SearchStrategy[Any]] = {
    "int": uints,
    "str": ids,
    "bool": st.booleans(),
    "bytes": payloads,
    "tuple[Entry, ...]": entry_tuples,
}
CONFIG = Configuration((ServerInfo("s1", "10.0.0.1:4647"), ServerInfo("s\x00☃", "[::1]:1", False)))


def _payload(kind: EntryKind, data: bytes) -> bytes:
    """A payload of ``kind`` that a server could send, made from drawn bytes."""
    if kind is EntryKind.COMMAND:
        return encode_put(data.decode("latin-1"), data, len(data) or None)
    if kind is EntryKind.CONFIGURATION:
        return CONFIG.encode()
    return b""


def _as_sent(message: Message) -> Message:
    """``message`` with its fields made consistent as a server's are (payloads that
    decode, entries that follow each other, no term above the message's): the wire
    refuses anything else, and ``test_wire_validation`` checks that it does."""
    if isinstance(message, AppendEntries):
        prev = min(message.prev_log_index, MAX_UINT - len(message.entries))
        terms = sorted(max(e.term, message.prev_log_term) for e in message.entries)
        fixed = tuple(Entry(term, prev + n, e.kind, _payload(e.kind, e.data))
                      for n, (term, e) in enumerate(zip(terms, message.entries, strict=True),
                                                    start=1))
        top = max([message.term, message.prev_log_term, *terms])
        return dataclasses.replace(message, term=top, prev_log_index=prev, entries=fixed)
    if isinstance(message, InstallSnapshot):
        data = msgpack.packb([message.last_included_index,
                              [[message.source, message.data, 1, 1]]], use_bin_type=True)
        return dataclasses.replace(
            message, term=max(message.term, message.last_included_term),
            configuration=encode_indexed(min(len(message.configuration),
                                             message.last_included_index), CONFIG),
            data=data)
    if isinstance(message, RequestVote):
        return dataclasses.replace(message, term=max(message.term, message.last_log_term))
    return message


def message_strategy(cls: type) -> st.SearchStrategy[Message]:
    """Every field drawn from its annotation, so a new field is covered at once."""
    return st.builds(
        cls, **{field.name: _BY_ANNOTATION[str(field.type)] for field in dataclasses.fields(cls)}
    ).map(_as_sent)


messages = st.one_of([message_strategy(cls) for cls in MESSAGE_TYPES])

msgpack_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


def assert_identical(decoded: object, original: object) -> None:
    """Equal, and every field of exactly the same type (EntryKind, not int; tuple, not
    list), since dataclass equality alone would accept 1 for EntryKind.NOOP."""
    assert decoded == original
    assert type(decoded) is type(original)
    for field in dataclasses.fields(original):  # type: ignore[arg-type]
        got, want = getattr(decoded, field.name), getattr(original, field.name)
        assert type(got) is type(want), field.name
        if isinstance(want, tuple):
            for got_entry, want_entry in zip(got, want, strict=True):
                assert_identical(got_entry, want_entry)


# ---------------------------------------------------------------- round trips


@given(messages)
def test_every_message_round_trips_through_bytes(message: Message) -> None:
    assert_identical(decode_message_bytes(encode_message(message)), message)


@given(messages)
def test_every_message_round_trips_through_a_notification_frame(message: Message) -> None:
    frame = decode_frame(encode_message(message))
    assert isinstance(frame, Notification)
    assert frame.method == type(message).__name__
    assert len(frame.params) == len(dataclasses.fields(message))
    decoded = decode_message(frame)
    assert_identical(decoded, message)
    assert hash(decoded) == hash(message)
    assert repr(decoded) == repr(message)


def test_many_entries_and_odd_bytes_and_ids_round_trip() -> None:
    many = tuple(
        Entry(7, i, kind, _payload(kind, b"\x00" * (i % 5) + bytes([i % 256])))
        for i, kind in ((i, EntryKind(i % 3)) for i in range(1, 5001))
    )
    message = AppendEntries(7, "s\x00rvér-☃", "日本", 0, 0, many, 4999, MAX_UINT)
    assert_identical(decode_message_bytes(encode_message(message)), message)
    data = msgpack.packb([10, [["\x00", b"\x00" * 1000 + b"\xff", 3, 2]]], use_bin_type=True)
    snapshot = InstallSnapshot(3, "", "🦀", 10, 2, encode_indexed(4, CONFIG), data)
    assert_identical(decode_message_bytes(encode_message(snapshot)), snapshot)


def test_decoded_messages_are_still_frozen() -> None:
    decoded = decode_message_bytes(encode_message(TimeoutNow(1, "a", "b")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.term = 2  # type: ignore[misc]


def test_every_message_type_has_a_codec_and_the_fast_construction() -> None:
    assert set(codec.GENERATED_SOURCE) == {cls.__name__ for cls in MESSAGE_TYPES}
    assert all(codec.FAST_CONSTRUCTION.values()), codec.FAST_CONSTRUCTION


# ---------------------------------------------------------------- the wire layout


def test_the_wire_layout_is_positional_fields_in_declaration_order() -> None:
    message = AppendEntries(
        term=3,
        source="s1",
        target="s2",
        prev_log_index=4,
        prev_log_term=2,
        entries=(Entry(3, 5, EntryKind.NOOP, b""), Entry(3, 6, EntryKind.COMMAND, b"\x90")),
        leader_commit=4,
        context=9,
    )
    wire_entries = [[3, 5, 1, b""], [3, 6, 0, b"\x90"]]
    expected = [2, "AppendEntries", [3, "s1", "s2", 4, 2, wire_entries, 4, 9]]
    assert encode_message(message) == msgpack.packb(expected, use_bin_type=True)


@pytest.mark.parametrize(
    ("message", "params"),
    [
        (RequestVote(1, "a", "b", 2, 1, True, False), [1, "a", "b", 2, 1, True, False]),
        (RequestVoteResponse(1, "b", "a", False, True), [1, "b", "a", False, True]),
        (AppendEntriesResponse(2, "b", "a", True, 5, 1, 3, 7), [2, "b", "a", True, 5, 1, 3, 7]),
        (InstallSnapshot(2, "a", "b", 9, 2, b"c", b"d", 512, False),
         [2, "a", "b", 9, 2, b"c", b"d", 512, False]),
        (InstallSnapshotResponse(2, "b", "a", 3, 9, 256, 512), [2, "b", "a", 3, 9, 256, 512]),
        (TimeoutNow(4, "a", "b"), [4, "a", "b"]),
    ],
)
def test_each_message_encodes_as_the_documented_notification(
    message: Message, params: list[Any]
) -> None:
    assert msgpack.unpackb(encode_message(message)) == [2, type(message).__name__, params]
    assert encode_message(message) == encode_frame(Notification(type(message).__name__, params))


# ---------------------------------------------------------------- what cannot be encoded


@pytest.mark.parametrize(
    "value",
    [object(), Entry(1, 1), Notification("TimeoutNow", [1, "a", "b"]), None, "TimeoutNow"],
    ids=repr,
)
def test_encoding_a_non_message_raises_message_error(value: object) -> None:
    with pytest.raises(MessageError, match="not a Raft message"):
        encode_message(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        TimeoutNow(2**64, "a", "b"),
        TimeoutNow(1, "\ud800", "b"),
        InstallSnapshot(1, "a", "b", 1, 1, b"", {1}),  # type: ignore[arg-type]
        AppendEntries(1, "a", "b", 0, 0, (None,), 0),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_unencodable_values_raise_message_error(message: Message) -> None:
    with pytest.raises(MessageError, match="cannot encode"):
        encode_message(message)


# ---------------------------------------------------------------- what cannot be decoded

HEARTBEAT = [1, "a", "b", 0, 0, [], 0, 0]
ENTRY = [1, 1, 0, b"x"]


def with_param(position: int, value: object) -> list[Any]:
    params = list(HEARTBEAT)
    params[position] = value
    return params


def with_entry(entry: object) -> list[Any]:
    return with_param(5, [ENTRY, entry])


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        (with_param(0, "1"), r"AppendEntries\.term must be an int in \[0, 2\*\*63\), got str '1'"),
        (with_param(0, True), r"AppendEntries\.term must be an int in \[0, 2\*\*63\), got bool"),
        (with_param(0, 1.0), r"AppendEntries\.term must be an int in \[0, 2\*\*63\), got float"),
        (with_param(0, None), r"AppendEntries\.term must be an int in \[0, 2\*\*63\), got nil"),
        (
            with_param(3, -1),
            r"AppendEntries\.prev_log_index must be an int in \[0, 2\*\*63\), got int -1",
        ),
        (with_param(1, b"a"), r"AppendEntries\.source must be a str, got bin of 1 bytes"),
        (with_param(5, {"a": 1}), r"AppendEntries\.entries must be an array of entries, got map"),
        (with_param(5, None), r"AppendEntries\.entries must be an array of entries, got nil"),
        (with_entry([1, 2, 99, b""]), r"entries\[1\]\.kind must be an EntryKind .*got int 99"),
        (with_entry([1, 2, -1, b""]), r"entries\[1\]\.kind must be an EntryKind"),
        (with_entry([1, 2, True, b""]), r"entries\[1\]\.kind must be an EntryKind .*got bool"),
        (with_entry([1, 2, 0, "x"]), r"entries\[1\]\.data must be bin, got str 'x'"),
        (with_entry([1, -2, 0, b""]), r"entries\[1\]\.index must be an int in \[0, 2\*\*63\)"),
        (with_entry([False, 2, 0, b""]), r"entries\[1\]\.term must be an int in \[0, 2\*\*63\)"),
        (with_entry([1, 2, 0]), r"entries\[1\] takes 4 params \[term, index, kind, data\], got 3"),
        (with_entry([1, 2, 0, b"", 5]), r"entries\[1\] takes 4 params"),
        (with_entry({"term": 1}), r"entries\[1\] must be an array \[term, index, kind, data\]"),
        (with_entry(7), r"entries\[1\] must be an array"),
        (HEARTBEAT[:7], r"AppendEntries takes 8 params \[term, source, .*context\], got 7"),
        (HEARTBEAT + [0], r"AppendEntries takes 8 params .*, got 9"),
        ([], r"AppendEntries takes 8 params"),
    ],
)
def test_append_entries_with_wrong_params_is_rejected(params: list[Any], complaint: str) -> None:
    with pytest.raises(MessageError, match=complaint):
        decode_message(Notification("AppendEntries", params))
    data = encode_frame(Notification("AppendEntries", params))
    with pytest.raises(MessageError, match=complaint):
        decode_message_bytes(data)


@pytest.mark.parametrize(
    ("method", "params", "complaint"),
    [
        ("RequestVote", [1, "a", "b", 1, 1, 1, False], r"RequestVote\.pre_vote must be a bool"),
        ("RequestVoteResponse", [1, "a", "b", None, False], r"granted must be a bool, got nil"),
        ("InstallSnapshot", [1, "a", "b", 1, 1, "c", b"", 0, True],
         r"configuration must be bin, got str"),
        ("InstallSnapshot", [1, "a", "b", 1, 1, b"", b"", 0, 1], r"done must be a bool, got int"),
        ("InstallSnapshotResponse", [1, "a", "b", -5, 0, 0, 0],
         r"match_index must be an int in"),
        ("InstallSnapshotResponse", [1, "a", "b", 5, 0, -1, 0], r"offset must be an int in"),
        ("TimeoutNow", [1, "a"], r"TimeoutNow takes 3 params \[term, source, target\], got 2"),
        ("TimeoutNow", [1, "a", ["b"]], r"TimeoutNow\.target must be a str, got array"),
        ("AppendEntriesResponse", [1, "a", "b", 0, 0, 0, 0, 0], r"success must be a bool, got int"),
    ],
)
def test_other_messages_with_wrong_params_are_rejected(
    method: str, params: list[Any], complaint: str
) -> None:
    with pytest.raises(MessageError, match=complaint):
        decode_message(Notification(method, params))


@pytest.mark.parametrize(
    "method", ["Bogus", "appendentries", "Entry", "HardState", "", "__init__", "AppendEntries "]
)
def test_unknown_methods_are_rejected(method: str) -> None:
    with pytest.raises(MessageError, match="unknown Raft message"):
        decode_message(Notification(method, HEARTBEAT))
    with pytest.raises(MessageError, match="unknown Raft message"):
        decode_message_bytes(encode_frame(Notification(method, HEARTBEAT)))


@pytest.mark.parametrize(
    "frame", [Request(1, "AppendEntries", HEARTBEAT), Response(1, None, HEARTBEAT)], ids=repr
)
def test_raft_messages_only_travel_as_notifications(frame: Request | Response) -> None:
    with pytest.raises(MessageError, match="travel as notifications"):
        decode_message(frame)  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="travel as notifications"):
        decode_message_bytes(encode_frame(frame))


def test_hand_built_notifications_with_bad_fields_are_rejected() -> None:
    with pytest.raises(MessageError, match="unknown Raft message"):
        decode_message(Notification(["AppendEntries"], HEARTBEAT))  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="params must be an array"):
        decode_message(Notification("AppendEntries", {"term": 1}))  # type: ignore[arg-type]


def test_a_frame_level_problem_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="params must be an array"):
        decode_message_bytes(msgpack.packb([2, "AppendEntries", {"term": 1}]))
    with pytest.raises(FrameError, match="method must be a str"):
        decode_message_bytes(msgpack.packb([2, 5, HEARTBEAT]))


def test_every_truncation_of_a_message_is_a_frame_error() -> None:
    data = encode_message(
        AppendEntries(1, "a", "b", 0, 0, (Entry(1, 1, EntryKind.COMMAND, b"xyz"),), 0)
    )
    for end in range(len(data)):
        with pytest.raises(FrameError, match="truncated"):
            decode_message_bytes(data[:end])
    with pytest.raises(FrameError, match="left over"):
        decode_message_bytes(data + b"\x00")


@given(st.sampled_from([cls.__name__ for cls in MESSAGE_TYPES]), st.lists(msgpack_values))
def test_arbitrary_params_decode_or_raise_wire_error(method: str, params: list[Any]) -> None:
    try:
        decode_message(Notification(method, params))
    except WireError:
        pass


@given(messages, st.data())
def test_one_corrupted_param_decodes_exactly_or_raises_message_error(
    message: Message, data: st.DataObject
) -> None:
    params = msgpack.unpackb(encode_message(message))[2]
    position = data.draw(st.integers(0, len(params) - 1))
    params[position] = data.draw(msgpack_values)
    try:
        decoded = decode_message_bytes(encode_frame(Notification(type(message).__name__, params)))
    except MessageError:
        return
    # Whatever got through must be a well-typed message that encodes to these params.
    assert msgpack.unpackb(encode_message(decoded))[2] == params


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_garbage_bytes_raise_wire_error_only(data: bytes) -> None:
    try:
        decode_message_bytes(data)
    except WireError:
        pass


# ---------------------------------------------------------------- the generator itself


@dataclasses.dataclass(frozen=True)
class _Checked:
    """Not slotted and with a __post_init__: must be built through __init__."""

    term: int
    entries: tuple[Entry, ...]
    seen: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "seen", not self.seen)


def test_classes_that_are_not_plain_frozen_slots_are_built_by_calling_them() -> None:
    encode, decode, source = codec._generate(_Checked)
    assert "_Checked(m0, m1, m2)" in source
    assert "new(_Checked)" not in source
    original = _Checked(3, (Entry(3, 1, EntryKind.NOOP, b""),))
    assert original.seen
    data = encode(original)
    decoded = decode(msgpack.unpackb(data)[2])
    assert isinstance(decoded, _Checked)
    assert (decoded.term, decoded.entries) == (original.term, original.entries)
    assert type(decoded.entries[0].kind) is EntryKind
    assert not decoded.seen  # __post_init__ ran on the decoded value too


@dataclasses.dataclass(frozen=True, slots=True)
class _Unknown:
    ratio: float


def test_a_field_type_the_wire_does_not_know_fails_at_generation() -> None:
    with pytest.raises(TypeError, match=r"no encoding for _Unknown\.ratio: float"):
        codec._generate(_Unknown)


def test_the_largest_messages_the_default_settings_allow_fit_in_a_frame() -> None:
    """A snapshot chunk, and an AppendEntries just under the byte limit plus the one
    entry that may overshoot it (a whole KV value), stay far below the frame limit."""
    settings = NodeSettings()
    chunk = InstallSnapshot(2**40, "s" * 256, "t" * 256, 2**40, 2**40, b"c" * 4096,
                            bytes(settings.snapshot_chunk_bytes), 2**40, False)
    command = encode_put("k" * 512, bytes(MAX_VALUE_BYTES))
    count = settings.max_bytes_per_message // len(command) + 1
    entries = tuple(Entry(2**40, 2**40 + n, EntryKind.COMMAND, command) for n in range(count))
    append = AppendEntries(2**40, "s" * 256, "t" * 256, 2**40, 2**40, entries, 2**40)
    assert sum(len(e.data) for e in entries[:-1]) <= settings.max_bytes_per_message
    for message in (chunk, append):
        assert len(encode_message(message)) <= MAX_FRAME_BYTES // 2


def test_a_round_encodes_every_message_as_encode_message_does() -> None:
    """A leader's round: the same new entries to each follower (packed once), entries
    some followers already have, heartbeats, other messages, then other entries."""
    log = [Entry(3, i, EntryKind.COMMAND, encode_put(f"k{i}", b"v" * i)) for i in range(1, 9)]
    log[0] = Entry(3, 1, EntryKind.NOOP)
    fresh = tuple(log[4:8])
    round_ = [
        AppendEntries(3, "a", "b", 4, 3, fresh, 4),
        AppendEntries(3, "a", "c", 4, 3, tuple(log[4:8]), 4, 7),
        AppendEntries(3, "a", "d", 2, 3, tuple(log[2:8]), 2),
        AppendEntries(3, "a", "b", 8, 3, (), 8),
        RequestVoteResponse(3, "a", "e", False),
        AppendEntries(3, "a", "e", 0, 0, tuple(log[0:4]), 4),
        AppendEntries(3, "a", "b", 4, 3, fresh[:3], 4),
        AppendEntries(3, "a", "c", 4, 3, fresh, 2**63 - 1, 2**63 - 1),
    ]
    encoder = RoundEncoder()
    assert [encoder.encode(m) for m in round_] == [encode_message(m) for m in round_]
    assert [decode_message_bytes(encoder.encode(m)) for m in round_] == round_


def test_a_round_refuses_what_cannot_be_encoded_and_goes_on() -> None:
    encoder = RoundEncoder()
    entries = (Entry(1, 1, EntryKind.COMMAND, encode_put("k", b"v")),)
    with pytest.raises(MessageError, match="cannot encode AppendEntries"):
        encoder.encode(AppendEntries(2**64, "a", "b", 0, 0, entries, 0))
    good = AppendEntries(1, "a", "b", 0, 0, entries, 0)
    assert encoder.encode(good) == encode_message(good)
