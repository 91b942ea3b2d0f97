"""Streamed InstallSnapshot and byte-based flow control, on core nodes.

A snapshot travels in chunks of ``snapshot_chunk_bytes`` with an offset and a ``done``
flag (hashicorp/raft streams snapshots; etcd bounds every message by MaxSizePerMsg), paced
by ``max_inflight_bytes`` and resumable by offset. AppendEntries carry at most
``max_bytes_per_message`` of entries (always one), at most ``max_inflight_bytes`` are
unacknowledged per follower, and a leader holding ``max_uncommitted_bytes`` of
uncommitted commands refuses more (etcd's MaxUncommittedEntriesSize).
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.errors import ProposalDropped, UncommittedLimitReached
from raftsim.core.messages import (
    AppendEntries,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
)
from raftsim.core.node import RaftNode, bootstrap_state
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

CHUNK = 1000


def lagging_follower(settings: NodeSettings, state: bytes) -> CoreNet:
    """a leads, c was down while a committed 30 entries and compacted them into a
    snapshot holding ``state``; c is back and the next tick starts the stream."""
    net = CoreNet(seed=51, settings=settings)
    net.campaign("a")
    net.crash("c")
    for n in range(30):
        net.propose("a", f"x{n}".encode())
    net.tick(0.1)
    a = net.nodes["a"]
    net.handle("a", a.compact(a.applied, state, net.now))
    net.start("c")
    return net


def chunks_to(net: CoreNet, target: str) -> list[InstallSnapshot]:
    return [m for m in net.sent if isinstance(m, InstallSnapshot) and m.target == target]


def state_of(size: int) -> bytes:
    return bytes(n % 251 for n in range(size))


def test_a_snapshot_travels_in_chunks_no_larger_than_the_setting() -> None:
    state = state_of(10 * CHUNK + 500)
    net = lagging_follower(NodeSettings(snapshot_chunk_bytes=CHUNK), state)
    net.tick(0.3)
    chunks = chunks_to(net, "c")
    assert [m.offset for m in chunks] == [n * CHUNK for n in range(11)]
    assert all(len(m.data) <= CHUNK for m in chunks)
    assert [m.done for m in chunks] == [False] * 10 + [True]
    assert b"".join(m.data for m in chunks) == state
    c = net.nodes["c"]
    assert c.snapshot is not None and c.snapshot.data == state
    assert c.log.last_index == net.nodes["a"].log.last_index
    assert c.pending_snapshot is None


def test_the_leader_keeps_at_most_the_inflight_bytes_of_chunks_unacknowledged() -> None:
    state = state_of(20 * CHUNK)
    settings = NodeSettings(snapshot_chunk_bytes=CHUNK, max_inflight_bytes=3 * CHUNK)
    net = lagging_follower(settings, state)
    held: list[Message] = []

    def hold_snapshot_answers(m: Message) -> bool:
        if isinstance(m, InstallSnapshotResponse):
            held.append(m)
            return True
        return False

    net.dropped = hold_snapshot_answers
    net.tick(0.05)
    assert len(chunks_to(net, "c")) == 3  # the window is full: it waits for answers
    net.heal()
    net.queue.extend(held[:1])  # one chunk acknowledged: one more may go
    net.deliver_where(lambda m: isinstance(m, InstallSnapshotResponse))
    assert [m.offset for m in chunks_to(net, "c")] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]
    net.queue.extend(held[1:])
    net.tick(0.3)
    assert net.nodes["c"].snapshot is not None and net.nodes["c"].snapshot.data == state


def test_a_lost_chunk_is_resent_from_what_the_follower_holds() -> None:
    """Chunks after the lost one are held (messages may be reordered); once nothing
    progresses for an election timeout, the leader resends from the gap."""
    state = state_of(10 * CHUNK)
    net = lagging_follower(NodeSettings(snapshot_chunk_bytes=CHUNK), state)
    lost: list[InstallSnapshot] = []

    def lose_the_third_chunk_once(m: Message) -> bool:
        if isinstance(m, InstallSnapshot) and m.offset == 2 * CHUNK and not lost:
            lost.append(m)
            return True
        return False

    net.dropped = lose_the_third_chunk_once
    net.tick(1.0)  # nothing progresses for an election timeout: resent from the gap
    offsets = [m.offset for m in chunks_to(net, "c")]
    assert lost and offsets.count(0) == 1, "the stream goes on from the gap, not from 0"
    assert offsets.count(2 * CHUNK) == 2
    gap_answers = [m for m in net.sent if isinstance(m, InstallSnapshotResponse)
                   and m.next_offset < m.offset]
    assert gap_answers and all(m.next_offset == 2 * CHUNK for m in gap_answers)
    c = net.nodes["c"]
    assert c.snapshot is not None and c.snapshot.data == state
    assert c.log.last_index == net.nodes["a"].log.last_index


def test_a_follower_that_lost_its_partial_snapshot_gets_it_again_from_offset_0() -> None:
    state = state_of(10 * CHUNK)
    settings = NodeSettings(snapshot_chunk_bytes=CHUNK, max_inflight_bytes=2 * CHUNK)
    net = lagging_follower(settings, state)
    # c takes the first four chunks, then restarts: its partial snapshot is gone
    net.dropped = lambda m: isinstance(m, InstallSnapshot) and m.offset >= 4 * CHUNK
    net.tick(0.1)
    pending = net.nodes["c"].pending_snapshot
    assert pending is not None and pending.size == 4 * CHUNK
    net.heal()
    net.crash("c")
    net.start("c")
    assert net.nodes["c"].pending_snapshot is None
    net.sent.clear()
    net.tick(1.0)
    restarted = [m for m in net.sent if isinstance(m, InstallSnapshotResponse)
                 and m.offset > 0 and m.next_offset == 0]
    assert restarted, "c says it holds nothing of the snapshot"
    assert 0 in [m.offset for m in chunks_to(net, "c")]
    c = net.nodes["c"]
    assert c.snapshot is not None and c.snapshot.data == state
    assert c.log.last_index == net.nodes["a"].log.last_index


def test_a_snapshot_that_fits_one_chunk_is_one_message() -> None:
    net = lagging_follower(NodeSettings(), b"small state")
    net.tick(0.3)
    assert [(m.offset, m.done, m.data) for m in chunks_to(net, "c")] == [
        (0, True, b"small state")]
    assert net.nodes["c"].snapshot is not None


# ---------------------------------------------------------------------- flow control


def entry_bytes(m: AppendEntries) -> int:
    return sum(len(e.data) for e in m.entries)


def test_an_append_entries_carries_at_most_the_byte_limit_but_always_one_entry() -> None:
    net = CoreNet(seed=3, settings=NodeSettings(max_bytes_per_message=3 * CHUNK))
    net.campaign("a")
    net.crash("c")
    for n in range(12):
        net.propose("a", bytes([n]) * CHUNK)
    net.propose("a", b"big" * (2 * CHUNK))  # one entry over the limit on its own
    net.tick(0.1)
    net.start("c")
    net.sent.clear()
    net.tick(0.5)
    to_c = [m for m in net.sent if isinstance(m, AppendEntries) and m.target == "c"
            and m.entries]
    assert to_c
    for m in to_c:
        assert entry_bytes(m) <= 3 * CHUNK or len(m.entries) == 1
    assert max(len(m.entries) for m in to_c) == 3
    assert net.nodes["c"].log.last_index == net.nodes["a"].log.last_index


def test_the_leader_keeps_at_most_the_inflight_bytes_unacknowledged() -> None:
    settings = NodeSettings(max_bytes_per_message=CHUNK, max_inflight_bytes=4 * CHUNK)
    net = CoreNet(seed=3, settings=settings)
    net.campaign("a")
    net.tick(0.1)
    held: list[Message] = []

    def hold_answers_from_c(m: Message) -> bool:
        if m.source == "c":
            held.append(m)
            return True
        return False

    net.dropped = hold_answers_from_c
    net.sent.clear()
    for n in range(20):
        net.propose("a", bytes([n]) * CHUNK)
    net.deliver_all()
    sent = [m for m in net.sent if isinstance(m, AppendEntries) and m.target == "c"]
    assert sum(entry_bytes(m) for m in sent) == 4 * CHUNK  # the rest waits for answers
    assert net.nodes["a"].commit_index == net.nodes["a"].log.last_index  # b keeps up
    net.heal()
    net.queue.extend(held)
    net.tick(0.5)
    assert net.nodes["c"].log.last_index == net.nodes["a"].log.last_index


def test_a_leader_refuses_proposals_past_the_uncommitted_byte_limit() -> None:
    net = CoreNet(seed=3, settings=NodeSettings(max_uncommitted_bytes=5 * CHUNK))
    net.campaign("a")
    net.tick(0.1)
    a = net.nodes["a"]
    net.partition(["a"], ["b", "c"])  # a slow quorum: nothing commits
    for n in range(5):
        net.propose("a", bytes([n]) * CHUNK)
    with pytest.raises(UncommittedLimitReached, match="5000 bytes are waiting to commit") as err:
        net.propose("a", b"one more")
    assert isinstance(err.value, ProposalDropped)
    last = a.log.last_index
    assert a.uncommitted_bytes == 5 * CHUNK
    net.heal()
    net.tick(0.3)
    assert a.commit_index == last and a.uncommitted_bytes == 0
    net.propose("a", b"accepted again")
    # a command larger than the limit is still accepted when nothing is uncommitted
    net.tick(0.3)
    net.propose("a", bytes(6 * CHUNK))
    net.tick(0.3)
    assert a.commit_index == a.log.last_index


def test_flow_control_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_bytes_per_message must be at least 1"):
        NodeSettings(max_bytes_per_message=0)
    with pytest.raises(ValueError, match="snapshot_chunk_bytes must be at least 1"):
        NodeSettings(snapshot_chunk_bytes=0)
    with pytest.raises(ValueError, match="max_uncommitted_bytes must be >= 0"):
        NodeSettings(max_uncommitted_bytes=-1)


@pytest.mark.parametrize("seed", range(6))
def test_a_stream_survives_loss_duplication_and_reordering(seed: int) -> None:
    """Whatever the network does to chunks and answers, the follower ends with exactly
    the leader's snapshot (never a mix of two, never a hole)."""
    rng = random.Random(seed)
    state = state_of(40 * CHUNK + 123)
    settings = NodeSettings(snapshot_chunk_bytes=CHUNK, max_inflight_bytes=8 * CHUNK)
    net = lagging_follower(settings, state)
    net.dropped = lambda m: rng.random() < 0.2
    for _ in range(600):
        net.now += 0.01
        for i in net.ids:
            node = net.nodes[i]
            if i not in net.down and node.deadline() <= net.now:
                net.handle(i, node.on_timeout(net.now))
        rng.shuffle(net.queue)
        if net.queue and rng.random() < 0.3:
            net.queue.append(net.queue[0])  # a duplicate
        net.deliver_all(limit=len(net.queue))
        if net.nodes["c"].snapshot is not None:
            break
    c = net.nodes["c"]
    assert c.snapshot is not None and c.snapshot.data == state


def test_a_compaction_during_a_stream_does_not_restart_it() -> None:
    """The leader streams the snapshot it started with (as hashicorp/raft keeps the
    snapshot it sends open); the follower then catches up on what followed."""
    state = state_of(10 * CHUNK)
    settings = NodeSettings(snapshot_chunk_bytes=CHUNK, max_inflight_bytes=2 * CHUNK)
    net = lagging_follower(settings, state)
    net.dropped = lambda m: isinstance(m, InstallSnapshot) and m.offset >= 4 * CHUNK
    net.tick(0.1)
    a = net.nodes["a"]
    first = a.log.snapshot_index
    net.heal()
    for n in range(10):
        net.propose("a", f"y{n}".encode())
    net.deliver_all()
    net.handle("a", a.compact(a.applied, b"newer state", net.now))
    assert a.log.snapshot_index > first
    net.tick(1.0)
    chunks = chunks_to(net, "c")
    assert {m.last_included_index for m in chunks} <= {first, a.log.snapshot_index}
    assert [m.offset for m in chunks if m.last_included_index == first].count(0) == 1
    installed = [e.fields["index"] for _, node, _, e in net.trace
                 if node == "c" and e.kind == "snapshot-installed"]
    assert installed[0] == first
    c = net.nodes["c"]
    assert c.log.last_index == a.log.last_index and c.commit_index == a.commit_index


def test_completing_a_large_snapshot_does_not_copy_it_whole() -> None:
    """The follower builds the snapshot as its chunks arrive: the last one costs about a
    chunk, not a copy of the whole state (which stalled a live server's event loop for
    ~150 ms at 200 MiB)."""
    chunk = 256 * 1024
    state = bytes(range(256)) * (64 * chunk // 256)  # 16 MiB
    configuration = Configuration((ServerInfo("a", "a:1"), ServerInfo("c", "c:1")))
    hard_state, entries = bootstrap_state(configuration)
    node = RaftNode("c", NodeSettings(snapshot_chunk_bytes=chunk), random.Random(1),
                    hard_state=hard_state, entries=entries)
    messages = [InstallSnapshot(2, "a", "c", 50, 2, encode_indexed(1, configuration),
                                state[o:o + chunk], o, o + chunk >= len(state))
                for o in range(0, len(state), chunk)]
    tracemalloc.start()
    try:
        for message in messages[:-1]:
            node.step(message, 1.0)
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        ready = node.step(messages[-1], 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ready.snapshot is not None and ready.snapshot.data == state
    assert peak - before < len(state) // 4
