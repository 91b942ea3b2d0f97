"""Group commit, the live servers' mode of the runtime Server: Readies of one event-loop
turn share one storage write, commands submitted in one turn share one log entry, the
commit index alone is written lazily, applying is sliced. Servers here run on the
virtual-time loop with in-memory storage, so every step is deterministic."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.errors import NotLeader
from raftsim.core.messages import Entry, EntryKind, HardState, Snapshot
from raftsim.core.node import bootstrap_state
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from raftsim.runtime import server as server_module
from raftsim.runtime.errors import LeadershipLost, ServerStopped
from raftsim.runtime.kv import (
    CommandError,
    KVStore,
    encode_batch,
    encode_delete,
    encode_put,
)
from raftsim.runtime.server import Server
from raftsim.sim.cluster import Cluster
from raftsim.sim.loop import VirtualTimeLoop
from raftsim.storage.memory import MemoryStorage
from tests.lone_server import Nowhere, lone_server


class CountingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[tuple[HardState | None, tuple[Entry, ...], Snapshot | None]] = []

    def save(self, hard_state: HardState | None, entries: tuple[Entry, ...],
             snapshot: Snapshot | None) -> None:
        self.saves.append((hard_state, entries, snapshot))
        super().save(hard_state, entries, snapshot)



@pytest.fixture
def solo() -> Iterator[tuple[VirtualTimeLoop, Server, CountingStorage]]:
    """A one-server cluster with group commit, leading."""
    loop = VirtualTimeLoop()
    storage = CountingStorage()
    server = lone_server(loop, name="solo", address="x:1", storage=storage)
    loop.run_for(1.0)
    assert server.role is Role.LEADER
    try:
        yield loop, server, storage
    finally:
        server.crash()
        loop.close()


def submit_all(loop: VirtualTimeLoop, server: Server, commands: list[bytes]) -> list[Any]:
    outcomes: list[Any] = [None] * len(commands)
    for position, command in enumerate(commands):
        server.submit(command, lambda outcome, p=position: outcomes.__setitem__(p, outcome))
    loop.run_for(0.1)
    return outcomes


def test_commands_submitted_in_one_turn_become_one_entry_with_one_result_each(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage]) -> None:
    loop, server, storage = solo
    assert server.node is not None
    last = server.node.log.last_index
    saves = len(storage.saves)
    commands = [encode_put("a", b"1"), encode_put("a", b"2", cas=0), encode_delete("b"),
                encode_put("c", b"3")]
    assert submit_all(loop, server, commands) == [True, False, True, True]
    assert server.node.log.last_index == last + 1
    entry = server.node.log.slice(last + 1, last + 2)[0]
    assert entry.kind is EntryKind.COMMAND and entry.data == encode_batch(commands)
    assert len(storage.saves) == saves + 1  # one write for the turn
    assert server.kv.digest() == {"a": b"1", "c": b"3"}


def test_a_single_command_is_its_own_entry(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage]) -> None:
    loop, server, _ = solo
    assert submit_all(loop, server, [encode_put("k", b"v")]) == [True]
    assert server.node is not None
    assert server.node.log.slice(server.node.log.last_index,
                                 server.node.log.last_index + 1)[0].data == encode_put("k", b"v")


def test_a_turn_holding_more_than_max_batch_bytes_is_split_into_entries(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage]) -> None:
    loop, server, _ = solo
    assert server.node is not None
    last = server.node.log.last_index
    value = bytes(server_module.MAX_BATCH_BYTES // 3)
    outcomes = submit_all(loop, server, [encode_put(f"k{i}", value) for i in range(7)])
    assert outcomes == [True] * 7
    assert server.node.log.last_index - last == 4  # 2 + 2 + 2 + 1 commands per entry


def test_only_the_commit_index_moving_is_written_at_most_once_a_second(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage]) -> None:
    loop, server, storage = solo
    loop.run_for(server_module.COMMIT_SAVE_INTERVAL)
    hard_states = [hs for hs, _, _ in storage.saves if hs is not None]
    for n in range(20):
        submit_all(loop, server, [encode_put(f"k{n}", b"v")])
    written = [hs for hs, _, _ in storage.saves if hs is not None][len(hard_states):]
    assert len(written) <= 3  # 20 commits in 2 virtual seconds
    assert server.node is not None
    assert storage.hard_state.commit <= server.node.commit_index
    assert storage.hard_state.term == server.node.term


def test_a_new_term_is_written_at_once(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage]) -> None:
    loop, server, storage = solo
    submit_all(loop, server, [encode_put("k", b"v")])
    assert server.node is not None
    term = server.node.term
    server.crash()
    server.start()  # a restart campaigns again: term + 1, voted for itself
    loop.run_for(1.0)
    assert server.node is not None and server.node.term == term + 1
    assert storage.hard_state.term == term + 1 and storage.hard_state.voted_for == "solo"


def test_a_large_backlog_is_applied_in_slices_across_turns(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage],
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop, server, _ = solo
    monkeypatch.setattr(server_module, "APPLY_BUDGET", 1)  # one entry per turn
    monkeypatch.setattr(server_module, "MAX_BATCH_BYTES", 1)  # one command per entry
    outcomes: list[Any] = []
    for n in range(5):
        server.submit(encode_put(f"k{n}", b"v"), outcomes.append)
    seen: list[int] = []

    def probe() -> None:  # runs once per event-loop turn
        seen.append(len(outcomes))
        if len(seen) < 20:
            loop.call_soon(probe)

    loop.call_soon(probe)
    loop.run_for(0.1)
    assert outcomes == [True] * 5
    steps = [b - a for a, b in zip(seen, seen[1:], strict=False) if b != a]
    assert steps and max(steps) == 1  # one more applied per turn


@pytest.mark.parametrize("command", [b"\xc1", b"\x94\xa3put", encode_put("a", b"1") * 2])
def test_submit_refuses_what_is_not_one_msgpack_value(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage], command: bytes) -> None:
    loop, server, _ = solo
    with pytest.raises(CommandError):
        server.submit(command, lambda outcome: None)
    assert submit_all(loop, server, [encode_put("k", b"v")]) == [True]


def test_submit_refuses_when_not_leading_or_not_in_group_commit_mode() -> None:
    loop = VirtualTimeLoop()
    storage = MemoryStorage()
    config = Configuration((ServerInfo("a", "x:1"), ServerInfo("b", "x:2")))
    hard_state, entries = bootstrap_state(config)
    storage.save(hard_state, tuple(entries), None)
    follower = Server("a", settings=NodeSettings(), rng=random.Random(1), storage=storage,
                      transport=Nowhere(), loop=loop, group_commit=True)
    plain = Server("b", settings=NodeSettings(), rng=random.Random(2), storage=MemoryStorage(),
                   transport=Nowhere(), loop=loop)
    try:
        follower.start()
        with pytest.raises(NotLeader):
            follower.submit(encode_put("k", b"v"), lambda outcome: None)
        plain.start()
        with pytest.raises(RuntimeError, match="group_commit"):
            plain.submit(encode_put("k", b"v"), lambda outcome: None)
    finally:
        follower.crash()
        plain.crash()
        loop.close()


def test_a_crash_fails_what_was_submitted(
        solo: tuple[VirtualTimeLoop, Server, CountingStorage]) -> None:
    _, server, _ = solo
    outcomes: list[Any] = []
    server.submit(encode_put("k", b"v"), outcomes.append)
    server.crash()
    assert [type(o) for o in outcomes] == [ServerStopped]


def test_losing_leadership_fails_what_had_not_committed() -> None:
    with Cluster(3, seed=1, trace=False) as cluster:
        for server in cluster.servers.values():
            server.group_commit = True
        leader = cluster.wait_for_leader()
        committed: list[Any] = []
        cluster.servers[leader].submit(encode_put("before", b"v"), committed.append)
        cluster.run_for(0.1)
        assert committed == [True]
        cluster.isolate(leader)
        lost: list[Any] = []
        cluster.servers[leader].submit(encode_put("during", b"v"), lost.append)
        cluster.run_for(2.0)  # CheckQuorum: the isolated leader steps down
        assert cluster.servers[leader].role is not Role.LEADER
        assert [type(o) for o in lost] == [LeadershipLost]
        with pytest.raises(NotLeader):
            cluster.servers[leader].submit(encode_put("after", b"v"), lost.append)


def test_the_kv_store_applies_batches_command_by_command() -> None:
    kv = KVStore()
    batch = encode_batch([encode_put("a", b"1"), encode_put("a", b"2", cas=0),
                          encode_put("b", b"3", cas=None), b"\xa4junk", encode_delete("a")])
    assert kv.apply_batch(7, batch) == [True, False, True, False, True]
    assert kv.applied_index == 7 and kv.digest() == {"b": b"3"}
    assert kv.apply(8, encode_batch([encode_put("c", b"4")])) is True
    assert kv.apply(9, encode_batch([encode_put("c", b"5", cas=1)])) is False
    assert kv.get("c") is not None and kv.get("c").modify_index == 8  # type: ignore[union-attr]
    assert kv.apply_batch(10, encode_put("d", b"6")) == [True]
    assert kv.apply_batch(11, b"\xc1") == [False]


@pytest.mark.parametrize("command", [
    b"\x94\xa3put\xa1k\x05\xc0",  # ["put", "k", 5, nil]: a value that is not bytes
    b"\x94\xa3put\x05\xc4\x01v\xc0",  # a key that is not a str
    b"\x92\xa5batch\x05",  # a batch that is not a list
])
def test_malformed_commands_take_no_effect(command: bytes) -> None:
    kv = KVStore()
    assert kv.apply(1, command) is False
    assert kv.items == {}
