"""Fail-stop on storage errors (raftsim/runtime/server.py's persist path), in the
simulated world: a server whose save fails stops at once, sends nothing more, fails what
is pending, and restarts from what its disk really holds; the invariant checker sees it
stop and never a durability violation. The ``ack_after_failed_save`` bug switch (a
server that swallows the error, as the zombie follower of issue 10 did) is caught."""

from __future__ import annotations

import errno
import random

import pytest

from raftsim.check.invariants import InvariantChecker
from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.node import bootstrap_state
from raftsim.core.settings import NodeSettings
from raftsim.runtime.errors import RequestFailed, ServerStopped
from raftsim.runtime.kv import encode_put
from raftsim.runtime.server import Server
from raftsim.sim.cluster import Cluster
from raftsim.sim.loop import VirtualTimeLoop
from raftsim.storage.base import StorageError
from raftsim.storage.crashdisk import CrashDiskStorage


class Nowhere:
    """A one-server cluster sends nothing."""

    def send(self, target: str, data: bytes, meta: object = None) -> None:
        pass


def records(cluster: Cluster, kind: str) -> list[dict[str, object]]:
    assert cluster.recorder is not None
    return [r for r in cluster.recorder.records if r["kind"] == kind]


def put(cluster: Cluster, checker: InvariantChecker, key: str, timeout: float = 5.0) -> bool:
    """One write through the leader; tells the checker when it was acknowledged."""
    leader = cluster.wait_for_leader()
    value = key.encode() + b"-value"
    try:
        result = cluster.run(cluster.servers[leader].propose(encode_put(key, value),
                                                             timeout=timeout))
    except RequestFailed:  # timed out, leadership lost, server stopped
        return False
    if result:
        checker.write_acknowledged(key, value)
    return result


@pytest.mark.parametrize(("operation", "code"), [("open", errno.EMFILE),
                                                 ("write", errno.ENOSPC),
                                                 ("fsync", errno.EIO)])
def test_a_follower_whose_save_fails_stops_at_once_and_recovers_from_its_disk(
        operation: str, code: int) -> None:
    with Cluster(3, seed=11, disk="crashdisk") as cluster:
        checker = InvariantChecker(cluster)
        for k in range(5):
            assert put(cluster, checker, f"a{k}")
        leader = cluster.wait_for_leader()
        follower = next(sid for sid in cluster.ids if sid != leader)
        server = cluster.servers[follower]
        cluster.fail_disk(follower, operation)
        assert put(cluster, checker, "b0")  # the other follower makes the majority
        (failure,) = records(cluster, "storage-failure")
        assert failure["server"] == follower
        assert (failure["operation"], failure["errno"]) == (operation, code)
        assert str(failure["file"]).startswith(f"{follower}/")
        assert not server.running
        assert isinstance(server.storage_failure, StorageError)
        failed_at = failure["t"]
        for k in range(1, 20):
            assert put(cluster, checker, f"b{k}")
        cluster.run_for(2.0)
        assert not server.running  # stays down until restarted
        sent_after = [r for r in records(cluster, "send")
                      if r["server"] == follower and r["t"] >= failed_at]
        assert sent_after == []
        cluster.restart(follower)
        leader_node = cluster.servers[cluster.wait_for_leader()].node
        assert leader_node is not None
        assert cluster.run_until(
            lambda: server.kv.applied_index == leader_node.commit_index, 5.0)
        assert server.kv.digest() == cluster.servers[cluster.wait_for_leader()].kv.digest()
        assert checker.finish() == []


def test_a_leader_whose_save_fails_acknowledges_nothing_and_fails_what_is_pending() -> None:
    with Cluster(3, seed=4, disk="crashdisk") as cluster:
        checker = InvariantChecker(cluster)
        assert put(cluster, checker, "before")
        leader = cluster.wait_for_leader()
        server = cluster.servers[leader]
        cluster.fail_disk(leader, "fsync")

        async def propose() -> bool:
            return await server.propose(encode_put("lost", b"x"), timeout=5.0)

        with pytest.raises(ServerStopped):
            cluster.run(propose())
        assert not server.running
        new_leader = cluster.wait_for_leader()
        assert new_leader != leader
        assert put(cluster, checker, "after")
        cluster.restart(leader)
        cluster.run_for(1.0)
        assert b"lost" not in repr(cluster.servers[new_leader].kv.digest()).encode()
        assert checker.finish() == []


def test_seeded_disk_faults_stop_servers_and_never_break_an_invariant() -> None:
    def run(seed: int) -> tuple[int, int, str]:
        with Cluster(3, seed=seed, disk="crashdisk", disk_fault_rate=0.02) as cluster:
            checker = InvariantChecker(cluster)
            acknowledged = 0
            for k in range(60):
                for sid in cluster.ids:
                    if not cluster.servers[sid].running:
                        cluster.restart(sid)
                acknowledged += put(cluster, checker, f"k{k}", timeout=2.0)
            for sid in cluster.ids:  # every server crashes, then a majority comes back
                cluster.crash(sid)
            for sid in cluster.ids[:2]:
                cluster.restart(sid)
            cluster.run_for(3.0)
            assert checker.finish() == [], checker.violations
            faults = sum(len([r for r in records(cluster, "storage-failure")
                              if r["server"] == sid]) for sid in cluster.ids)
            assert cluster.recorder is not None
            return faults, acknowledged, cluster.recorder.digest()

    faults, acknowledged, digest = run(21)
    assert faults >= 3 and acknowledged >= 40
    assert run(21)[2] == digest  # the faults come from the seed


def _zombie_run(swallow: bool) -> tuple[InvariantChecker, bool]:
    """Both followers' next save fails; one write; then every server crashes and only
    the followers come back (a majority). Returns the checker and whether the write
    was acknowledged."""
    with Cluster(3, seed=7, disk="crashdisk", ack_after_failed_save=swallow) as cluster:
        checker = InvariantChecker(cluster)
        assert put(cluster, checker, "first")
        cluster.run_for(0.5)
        leader = cluster.wait_for_leader()
        followers = [sid for sid in cluster.ids if sid != leader]
        for sid in followers:
            cluster.fail_disk(sid, "open")
        acknowledged = put(cluster, checker, "doomed", timeout=1.0)
        cluster.run_for(0.3)  # the followers hear the commit index
        for sid in cluster.ids:
            cluster.crash(sid)
        for sid in followers:
            cluster.restart(sid)
        assert put(cluster, checker, "later")
        cluster.restart(leader)
        cluster.run_for(2.0)
        checker.finish()
        return checker, acknowledged


def test_the_checker_catches_a_server_that_acknowledges_after_a_failed_save() -> None:
    checker, acknowledged = _zombie_run(swallow=True)
    assert acknowledged  # the followers acknowledged entries their disks never got
    caught = {v.invariant for v in checker.violations}
    assert "fail-stop" in caught  # it kept sending after the failure
    assert "durability" in caught  # a follower came back without what it committed
    assert "state-machine-safety" in caught  # and the new majority overwrote it


def test_the_same_faults_with_fail_stop_lose_nothing_acknowledged() -> None:
    checker, acknowledged = _zombie_run(swallow=False)
    assert not acknowledged  # no majority could persist it, so no client heard yes
    assert checker.violations == []


def test_disk_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="disk_fault_rate needs disk='crashdisk'"):
        Cluster(3, disk_fault_rate=0.1)
    with Cluster(3, seed=1) as cluster, pytest.raises(ValueError, match="needs a cluster built "
                                                                        "with disk='crashdisk'"):
        cluster.fail_disk("s1")
    with Cluster(3, seed=1, disk="crashdisk") as cluster:
        with pytest.raises(ValueError, match="unknown disk fault 'melt'; faults are open, "
                                             "write, fsync"):
            cluster.fail_disk("s1", "melt")
        storage = cluster.servers["s1"].storage
        assert isinstance(storage, CrashDiskStorage) and storage.faults == 0


def test_group_commit_fails_every_submitted_command_and_applies_nothing() -> None:
    """The live servers' mode: the Readies of one turn share one save; when it fails,
    none of them is acted on and every command submitted in the turn fails."""
    loop = VirtualTimeLoop()
    storage = CrashDiskStorage(random.Random(3), name="solo")
    hard_state, entries = bootstrap_state(Configuration((ServerInfo("solo", "x:1"),)))
    storage.save(hard_state, tuple(entries), None)
    events: list[tuple[str, dict[str, object]]] = []
    stopped: list[Exception] = []
    server = Server("solo", settings=NodeSettings(), rng=random.Random(1), storage=storage,
                    transport=Nowhere(), loop=loop, group_commit=True,
                    observer=lambda sid, term, kind, fields: events.append((kind, fields)))
    server.on_storage_failure = stopped.append
    try:
        server.start()
        loop.run_for(1.0)
        applied = server.kv.applied_index
        storage.fail_next("fsync", error=errno.EIO)
        outcomes: list[object] = []
        for k in range(3):
            server.submit(encode_put(f"k{k}", b"v"), outcomes.append)
        loop.run_for(0.5)
        assert [type(o) for o in outcomes] == [ServerStopped] * 3
        assert not server.running and len(stopped) == 1
        failure = next(fields for kind, fields in events if kind == "storage-failure")
        assert failure == {"file": "solo/wal", "operation": "fsync", "errno": errno.EIO,
                           "error": "Input/output error"}
        assert server.kv.applied_index == applied
        assert storage.unsynced == 0  # the failed fsync left what a crash would
        server.start()  # recovers from what the disk holds, and commits that
        loop.run_for(1.0)
        assert server.running and server.storage_failure is None
        node = server.node
        assert node is not None
        assert server.kv.applied_index == node.commit_index == node.log.last_index
    finally:
        server.crash()
        loop.close()
