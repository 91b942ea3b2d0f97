"""Live servers write snapshot files off the event loop, and still never acknowledge a
snapshot before its file is durable (raftsim/runtime/server.py, ``background_snapshots``).

These servers run on a real asyncio loop with a real FileStorage (fsync on). The fsync of
the snapshot file is held (the disk is slow) until the test releases it: meanwhile the
loop must keep running (a follower keeps hearing its leader, a leader keeps committing),
and nothing that says the snapshot is on disk may leave (the InstallSnapshotResponse
that acknowledges it, an AppendEntriesResponse matching past it).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
)
from raftsim.core.node import bootstrap_state
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import KVStore, encode_put
from raftsim.runtime.server import Server
from raftsim.storage.file import FileStorage

#: how long a held fsync waits for the test to release it before going on anyway (on a
#: server that writes the snapshot on the event loop, the test cannot run to release it)
HOLD_LIMIT = 10.0
#: seconds the tests wait for a condition
DEADLINE = 20.0
#: pause between polls of a condition
POLL = 0.01
SETTINGS = NodeSettings(heartbeat_interval=0.1, election_timeout_min=1.0,
                        election_timeout_max=2.0, snapshot_chunk_bytes=64 * 1024)
#: the installed snapshot's index and term
INDEX, TERM = 40, 2


class SnapshotFsyncHold:
    """``os.fsync`` that waits, for files named ``snapshot-*``, until released; only in
    the first thread that fsyncs one (a worker thread, on a server that writes snapshot
    files off its loop)."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        self._fsync = os.fsync
        self._holder: int | None = None

    def fsync(self, fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        thread = threading.get_ident()
        if (name.startswith("snapshot-") and not self.release.is_set()
                and self._holder in (None, thread)):
            self._holder = thread
            self.holding.set()
            self.release.wait(HOLD_LIMIT)
        self._fsync(fd)


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnapshotFsyncHold]:
    held = SnapshotFsyncHold()
    monkeypatch.setattr(os, "fsync", held.fsync)
    try:
        yield held
    finally:
        held.release.set()


class Recorder:
    """A transport that keeps what was sent and whether the snapshot file existed then."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sent: list[tuple[Message, bool]] = []

    def send(self, target: str, data: bytes, meta: object = None) -> None:
        if isinstance(meta, Message):
            durable = (self.directory / f"snapshot-{INDEX}-{TERM}.bin").exists()
            self.sent.append((meta, durable))

    def acknowledging(self) -> list[tuple[Message, bool]]:
        """What says this server holds the snapshot (or more)."""
        return [(m, durable) for m, durable in self.sent
                if (isinstance(m, InstallSnapshotResponse) and m.match_index >= INDEX)
                or (isinstance(m, AppendEntriesResponse) and m.success
                    and m.match_index >= INDEX)]


async def wait_until(condition: Callable[[], object], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)


def founding(directory: Path, ids: tuple[str, ...]) -> FileStorage:
    storage = FileStorage(directory)
    configuration = Configuration(tuple(ServerInfo(i, f"{i}:1") for i in ids))
    hard_state, entries = bootstrap_state(configuration)
    storage.save(hard_state, tuple(entries), None)
    return storage


def kv_snapshot() -> bytes:
    kv = KVStore()
    for n in range(INDEX - 1):
        kv.apply(n + 2, encode_put(f"k{n}", bytes([n]) * 20_000))
    kv.advance(INDEX)
    return kv.snapshot()


IDS = ("f", "g", "leader")


def install_snapshot_chunks(data: bytes) -> list[InstallSnapshot]:
    configuration = Configuration(tuple(ServerInfo(i, f"{i}:1") for i in IDS))
    chunk = SETTINGS.snapshot_chunk_bytes
    return [InstallSnapshot(TERM, "leader", "f", INDEX, TERM,
                            encode_indexed(1, configuration), data[o:o + chunk], o,
                            o + chunk >= len(data))
            for o in range(0, len(data), chunk)]


def test_a_follower_acknowledges_an_installed_snapshot_only_once_its_file_is_durable(
        tmp_path: Path, hold: SnapshotFsyncHold) -> None:
    ids = IDS
    data = kv_snapshot()
    chunks = install_snapshot_chunks(data)
    assert len(chunks) > 4

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        storage = founding(tmp_path, ids)
        transport = Recorder(tmp_path)
        server = Server("f", settings=SETTINGS, rng=random.Random(1), storage=storage,
                        transport=transport, loop=loop, group_commit=True,
                        background_snapshots=True)
        server.start()
        try:
            for message in chunks:
                server.receive_message("leader", message)
            await wait_until(hold.holding.is_set, "the snapshot file's fsync")
            # The loop runs (this test does) while the file is being written...
            heartbeat = AppendEntries(TERM, "leader", "f", INDEX, TERM, (), INDEX)
            for _ in range(3):
                server.receive_message("leader", heartbeat)
                await asyncio.sleep(POLL)
            assert server.role is Role.FOLLOWER and server.node is not None
            assert server.node.leader_id == "leader"
            # ...but nothing acknowledges the snapshot before the file is durable.
            assert transport.acknowledging() == []
            hold.release.set()
            await wait_until(transport.acknowledging, "the acknowledgement")
            assert all(durable for _, durable in transport.acknowledging())
            await wait_until(lambda: server.kv.applied_index == INDEX, "the restore")
            assert server.kv.digest() == {f"k{n}": bytes([n]) * 20_000
                                          for n in range(INDEX - 1)}
        finally:
            server.crash()
            storage.close()
        await loop.shutdown_default_executor()  # the worker threads' writes are done
        reopened = FileStorage(tmp_path)
        try:
            state = reopened.load()
            assert state.snapshot is not None and state.snapshot.data == data
            assert state.hard_state.term == TERM
        finally:
            reopened.close()

    asyncio.run(scenario())


def test_a_leader_keeps_committing_while_its_snapshot_file_is_written(
        tmp_path: Path, hold: SnapshotFsyncHold) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        storage = founding(tmp_path, ("solo",))
        server = Server("solo", settings=SETTINGS, rng=random.Random(1), storage=storage,
                        transport=Recorder(tmp_path), loop=loop, group_commit=True,
                        background_snapshots=True, snapshot_threshold=20)
        server.start()
        try:
            await wait_until(lambda: server.role is Role.LEADER, "leadership")
            for n in range(30):
                assert await server.propose(encode_put(f"a{n}", b"x" * 1000))
            await wait_until(hold.holding.is_set, "the snapshot file's fsync")
            # While the compaction's snapshot file is being written, writes commit.
            for n in range(10):
                assert await server.propose(encode_put(f"b{n}", b"y"), timeout=2.0)
            assert server.node is not None and server.node.log.snapshot_index == 0
            hold.release.set()
            await wait_until(lambda: server.node is not None
                             and server.node.log.snapshot_index > 0, "the compaction")
        finally:
            server.crash()
            storage.close()
        await loop.shutdown_default_executor()  # the worker threads' writes are done
        reopened = FileStorage(tmp_path)
        try:
            state = reopened.load()
            assert state.snapshot is not None and state.snapshot.index >= 20
            restored = KVStore()
            restored.restore(state.snapshot.data)
            assert restored.applied_index == state.snapshot.index
        finally:
            reopened.close()

    asyncio.run(scenario())


def test_a_clean_stop_while_a_snapshot_file_is_written_leaves_a_directory_that_starts(
        tmp_path: Path, hold: SnapshotFsyncHold) -> None:
    """The final save of a stopping server (group commit's lazily written commit index)
    must not get ahead of a snapshot file still being written."""
    data = kv_snapshot()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        storage = founding(tmp_path, IDS)
        transport = Recorder(tmp_path)
        server = Server("f", settings=SETTINGS, rng=random.Random(1), storage=storage,
                        transport=transport, loop=loop, group_commit=True,
                        background_snapshots=True)
        server.start()
        try:
            for message in install_snapshot_chunks(data):
                server.receive_message("leader", message)
            await wait_until(hold.holding.is_set, "the snapshot file's fsync")
            server.finish()
            assert server.running
            assert transport.acknowledging()
            assert all(durable for _, durable in transport.acknowledging())
        finally:
            hold.release.set()
            server.crash()
            storage.close()
        await loop.shutdown_default_executor()  # the worker threads' writes are done
        reopened = FileStorage(tmp_path)  # raised "commit index past the log" before
        try:
            state = reopened.load()
            assert state.snapshot is not None and state.snapshot.index == INDEX
            assert state.hard_state.commit == INDEX
        finally:
            reopened.close()

    asyncio.run(scenario())


def test_a_live_follower_refuses_a_snapshot_whose_assembled_data_is_not_a_snapshot(
        tmp_path: Path) -> None:
    """Each chunk passes the wire (a chunk is no whole snapshot); the data is checked in
    the worker thread that would write the file: refused, nothing written or
    acknowledged, and the server starts again from its disk."""
    garbage = b"\xc1 not msgpack " * 20_000
    chunks = install_snapshot_chunks(garbage)
    assert len(chunks) > 2

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        storage = founding(tmp_path, IDS)
        transport = Recorder(tmp_path)
        events: list[tuple[str, dict[str, object]]] = []
        server = Server("f", settings=SETTINGS, rng=random.Random(1), storage=storage,
                        transport=transport, loop=loop, group_commit=True,
                        background_snapshots=True,
                        observer=lambda sid, term, kind, fields: events.append((kind, fields)))
        server.start()
        try:
            for message in chunks:
                server.receive_message("leader", message)
            await wait_until(lambda: any(k == "snapshot-refused" for k, _ in events),
                             "the refusal")
            refused = next(f for k, f in events if k == "snapshot-refused")
            assert refused["index"] == INDEX and "msgpack" in str(refused["problem"])
            await wait_until(lambda: server.node is not None, "the restart")
            assert [k for k, _ in events].count("start") == 2
            assert server.node is not None and server.node.snapshot is None
            assert transport.acknowledging() == []
            assert not list(tmp_path.glob("snapshot-*"))
        finally:
            server.crash()
            storage.close()
        await loop.shutdown_default_executor()
        reopened = FileStorage(tmp_path)
        try:
            assert reopened.load().snapshot is None
        finally:
            reopened.close()

    asyncio.run(scenario())
