"""The simulated cluster's disks (memory or a crash disk with a write cache) and log
compaction with InstallSnapshot, in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from raftsim.core.settings import NodeSettings
from raftsim.runtime.errors import RequestFailed
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster
from raftsim.storage.crashdisk import CrashDiskStorage


def write(cluster: Cluster, count: int, prefix: str = "k") -> None:
    """``count`` writes through the leader, all proposed at once."""
    leader = cluster.wait_for_leader()
    server = cluster.servers[leader]

    async def all_writes() -> list[bool]:
        return await asyncio.gather(*(server.propose(encode_put(f"{prefix}{i}", b"%d" % i),
                                                     timeout=60.0) for i in range(count)))

    assert all(cluster.run(all_writes()))


def converged(cluster: Cluster) -> bool:
    leader = cluster.leader()
    if leader is None:
        return False
    node = cluster.servers[leader].node
    assert node is not None
    return all(s.kv.applied_index == node.commit_index
               for s in cluster.servers.values() if s.running)


def test_crash_disk_syncing_every_write_loses_nothing_when_every_server_crashes() -> None:
    with Cluster(3, seed=3, disk="crashdisk", trace=False) as cluster:
        write(cluster, 50)
        assert cluster.run_until(lambda: converged(cluster), 5.0)
        before = {sid: s.kv.digest() for sid, s in cluster.servers.items()}
        for sid in cluster.ids:
            assert isinstance(cluster.servers[sid].storage, CrashDiskStorage)
            cluster.crash(sid)
        for sid in cluster.ids:
            cluster.restart(sid)
        cluster.wait_for_leader()
        assert cluster.run_until(lambda: converged(cluster), 5.0)
        after = {sid: s.kv.digest() for sid, s in cluster.servers.items()}
        assert after == before
        assert len(after["s1"]) == 50


def test_crash_disk_with_a_write_cache_loses_acknowledged_entries_at_a_crash() -> None:
    """sync_every=16 acknowledges before syncing: a crashed follower loses part of the
    log tail it had acknowledged (a "disk-lost" fault in the trace). Raft assumes that
    never happens; here the leader, which counts those entries as matched, keeps
    committing with the other follower."""
    with Cluster(3, seed=5, disk="crashdisk", sync_every=16) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(sid for sid in cluster.ids if sid != leader)
        storage = cluster.servers[follower].storage
        assert isinstance(storage, CrashDiskStorage)
        server = cluster.servers[leader]
        writes = [cluster.loop.create_task(server.propose(encode_put(f"k{i}", b"%d" % i),
                                                          timeout=60.0)) for i in range(40)]
        # crash it before a commit index covering its unsynced entries makes it sync them
        assert cluster.run_until(lambda: storage.unsynced > 0, 5.0, step=0.0002)
        acknowledged = storage.last_index
        cluster.crash(follower)
        assert storage.last_index < acknowledged
        assert cluster.recorder is not None
        lost = [r for r in cluster.recorder.records
                if r.get("kind") == "fault" and r.get("fault") == "disk-lost"]
        assert lost and lost[0]["target"] == follower and lost[0]["entries"] > 0
        cluster.restart(follower)
        node = cluster.servers[follower].node
        assert node is not None and node.log.last_index < acknowledged
        assert cluster.run_until(lambda: all(w.done() for w in writes), 10.0)
        assert all(w.result() for w in writes)
        write(cluster, 5, prefix="after-")
        assert len(cluster.servers[leader].kv.digest()) == 45


def test_crash_disk_runs_are_deterministic() -> None:
    def run(seed: int) -> str:
        with Cluster(3, seed=seed, disk="crashdisk", sync_every=4) as cluster:
            write(cluster, 20)
            cluster.crash("s2")
            cluster.run_for(0.5)
            cluster.restart("s2")
            cluster.run_for(1.0)
            assert cluster.recorder is not None
            return cluster.recorder.digest()

    assert run(9) == run(9)


@pytest.mark.parametrize("kwargs", [{"disk": "ssd"}, {"disk": "crashdisk", "sync_every": 0}])
def test_disk_options_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Cluster(3, **kwargs)  # type: ignore[arg-type]


def test_server_down_for_10000_entries_catches_up_by_install_snapshot() -> None:
    """The simulator's half of the live check (fewer entries there): compaction every
    1,000 entries, s3 down while 10,000 entries commit, then InstallSnapshot."""
    with Cluster(3, seed=2, snapshot_threshold=1000, trace_messages=False) as cluster:
        leader = cluster.wait_for_leader()
        lagging = next(sid for sid in cluster.ids if sid != leader)
        cluster.crash(lagging)
        down_at = cluster.servers[lagging].storage.load().entries[-1].index
        write(cluster, 10_000)
        leader_node = cluster.servers[leader].node
        assert leader_node is not None
        assert leader_node.log.snapshot_index >= down_at + 9_000  # compacted past it
        cluster.restart(lagging)
        assert cluster.run_until(lambda: converged(cluster), 30.0)
        assert cluster.recorder is not None
        installed = [r for r in cluster.recorder.records
                     if r.get("kind") == "snapshot-installed" and r.get("server") == lagging]
        assert installed, "the lagging server should have caught up by InstallSnapshot"
        digests = {sid: s.kv.digest() for sid, s in cluster.servers.items()}
        assert len(digests[leader]) == 10_000
        assert digests[lagging] == digests[leader]


@pytest.mark.parametrize("seed", [1, 2])
def test_crash_disk_cluster_keeps_committing_through_crashes(seed: int) -> None:
    with Cluster(3, seed=seed, disk="crashdisk", trace=False) as cluster:
        for round_ in range(3):
            write(cluster, 10, prefix=f"r{round_}-")
            victim = cluster.wait_for_leader()
            cluster.crash(victim)
            cluster.wait_for_leader()
            cluster.restart(victim)
        assert cluster.run_until(lambda: converged(cluster), 5.0)
        digests = [s.kv.digest() for s in cluster.servers.values()]
        assert all(d == digests[0] for d in digests)
        assert len(digests[0]) == 30


def test_requests_fail_cleanly_when_the_leader_crashes_midway() -> None:
    with Cluster(3, seed=4, disk="crashdisk", sync_every=2, trace=False) as cluster:
        leader = cluster.wait_for_leader()
        server = cluster.servers[leader]

        async def write_then_crash() -> None:
            pending = asyncio.ensure_future(server.propose(encode_put("x", b"1"), timeout=1.0))
            cluster.loop.call_soon(cluster.crash, leader)  # after the proposal's first step
            with pytest.raises(RequestFailed):
                await pending

        cluster.run(write_then_crash())
        cluster.wait_for_leader()


@pytest.mark.parametrize("trailing_logs", [5000, 0])
def test_trailing_logs_let_a_restarted_follower_catch_up_from_the_log(
        trailing_logs: int) -> None:
    """hashicorp/raft's TrailingLogs: compaction keeps entries before the snapshot, so a
    follower that missed a few thousand writes gets them as AppendEntries; without
    them it needs an InstallSnapshot."""
    settings = NodeSettings(trailing_logs=trailing_logs)
    with Cluster(3, seed=8, settings=settings, snapshot_threshold=500,
                 disk="crashdisk") as cluster:
        leader = cluster.wait_for_leader()
        follower = next(sid for sid in cluster.ids if sid != leader)
        cluster.crash(follower)
        write(cluster, 3000)
        node = cluster.servers[leader].node
        assert node is not None and node.log.snapshot_index >= 2500
        storage = cluster.servers[leader].storage
        if trailing_logs:  # the kept entries are in memory and on disk
            assert node.log.oldest_index == 1
            assert storage.load().entries[0].index == 1
        else:
            assert node.log.oldest_index == node.log.snapshot_index + 1
        cluster.restart(follower)
        assert cluster.run_until(lambda: converged(cluster), 10.0)
        restarted = cluster.servers[follower]
        assert restarted.kv.digest() == cluster.servers[leader].kv.digest()
        assert cluster.recorder is not None
        install_snapshots = [r for r in cluster.recorder.records
                             if r["kind"] == "send" and r.get("msg") == "InstallSnapshot"]
        if trailing_logs:
            assert install_snapshots == []
        else:
            assert install_snapshots and {r["to"] for r in install_snapshots} == {follower}


def test_disk_fault_calls_need_a_crash_disk_and_a_sane_save_time() -> None:
    with Cluster(3, seed=1) as cluster:
        for call in (lambda: cluster.torn_write("s1"), lambda: cluster.corrupt_disk("s1"),
                     lambda: cluster.slow_disk("s1", 0.1)):
            with pytest.raises(ValueError, match="needs a cluster built with "
                                                 "disk='crashdisk'"):
                call()
    with Cluster(3, seed=1, disk="crashdisk") as cluster:
        with pytest.raises(ValueError, match="a save takes from 0 to 60 seconds, got -1"):
            cluster.slow_disk("s1", -1)
        with pytest.raises(ValueError, match="unknown server 's9'"):
            cluster.corrupt_disk("s9")


@pytest.mark.parametrize("drift", [0.0, 0.2])
def test_a_slow_follower_acknowledges_only_after_its_save_and_runs_repeat(
        drift: float) -> None:
    def run() -> tuple[str, list[float]]:
        with Cluster(5, seed=4, disk="crashdisk", clock_drift=drift) as cluster:
            leader = cluster.wait_for_leader()
            slow = next(sid for sid in cluster.ids if sid != leader)
            cluster.slow_disk(slow, 0.04)
            write(cluster, 20)
            cluster.run_for(1.0)
            assert cluster.run_until(lambda: converged(cluster), 5.0)
            recorder = cluster.recorder
            assert recorder is not None
            appended = {}  # last index -> when the slow follower saved it
            gaps = []
            for rec in recorder.records:
                if rec["server"] != slow:
                    continue
                if rec["kind"] == "append":
                    appended[rec["to"]] = rec["t"]
                elif (rec["kind"] == "send" and rec["msg"] == "AppendEntriesResponse"
                      and rec["ok"] and rec["match"] in appended):
                    gaps.append(rec["t"] - appended.pop(rec["match"]))
            return recorder.digest(), gaps

    digest, gaps = run()
    assert gaps and min(gaps) >= 0.04 * (1 - drift) - 1e-6  # by the follower's clock
    assert run()[0] == digest
