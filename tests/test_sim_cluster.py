"""The simulated cluster harness: determinism, fault tolerance end to end, validation."""

from __future__ import annotations

import asyncio

import pytest

from raftsim.runtime.errors import RequestFailed
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster

# Sleeps in these tests are virtual: they run on the simulator's VirtualTimeLoop.
RETRY = 0.05
PARTITION_AT = 2.0
PARTITION_FOR = 3.0
WRITE_INTERVAL = 0.0005  # 2,000 writes per virtual second


def run_workload(seed: int, writes: int = 20) -> str:
    with Cluster(5, seed=seed) as cluster:
        cluster.wait_for_leader()
        for k in range(writes):
            cluster.run(cluster.propose(encode_put(f"k{k}", b"v")))
        leader = cluster.leader()
        assert leader is not None
        cluster.crash(leader)
        cluster.wait_for_leader()
        cluster.run_for(1.0)
        assert cluster.recorder is not None
        return cluster.recorder.digest()


def test_same_seed_gives_identical_trace_digest() -> None:
    assert run_workload(7) == run_workload(7)


def test_different_seed_gives_different_trace() -> None:
    assert run_workload(7) != run_workload(8)


def test_lossy_reordering_partitioned_cluster_commits_1000_proposals_and_converges() -> None:
    """5 servers, 5% loss, reordering, a partition that heals: a leader is elected, 1,000
    proposals commit, and every server's applied KV state is equal at the end."""
    with Cluster(5, seed=11, loss=0.05, reorder=0.1, latency=(0.001, 0.01),
                 trace=False) as cluster:
        cluster.wait_for_leader()
        committed = 0

        async def client(name: str, count: int) -> None:
            nonlocal committed
            done = 0
            attempt = 0
            while done < count:
                attempt += 1
                leader = cluster.leader()
                if leader is None:
                    await asyncio.sleep(RETRY)
                    continue
                try:
                    await cluster.servers[leader].propose(
                        encode_put(f"{name}-{done}", b"%d" % attempt), timeout=1.0)
                except (RequestFailed, Exception):
                    await asyncio.sleep(RETRY)
                    continue
                done += 1
                committed += 1

        async def faults() -> None:
            await asyncio.sleep(PARTITION_AT)
            cluster.partition([["s1", "s2"], ["s3", "s4", "s5"]])
            await asyncio.sleep(PARTITION_FOR)
            cluster.heal()

        async def main() -> None:
            await asyncio.gather(faults(), *(client(f"c{i}", 250) for i in range(4)))

        cluster.run(main())
        assert committed == 1000
        leader = cluster.leader()
        assert leader is not None
        assert cluster.run_until(
            lambda: len({s.node.commit_index for s in cluster.servers.values()
                         if s.node is not None}) == 1
            and all(s.kv.applied_index == cluster.servers[leader].kv.applied_index
                    for s in cluster.servers.values()),
            timeout=10.0)
        states = {sid: s.kv.digest() for sid, s in cluster.servers.items()}
        reference = states[leader]
        assert len(reference) == 1000
        assert all(state == reference for state in states.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"servers": 0}, "servers must be at least 1"),
        ({"servers": ["a", "b", "a"]}, "duplicate ids: a"),
        ({"latency": (-0.1, 0.2)}, "latency must not be negative"),
        ({"latency": (0.3, 0.2)}, "min <= max"),
        ({"loss": 1.5}, "loss must be between 0 and 1"),
        ({"loss": -0.1}, "loss must be between 0 and 1"),
        ({"duplication": 2.0}, "duplication must be between 0 and 1"),
        ({"nonvoters": ["zz"]}, "nonvoters names unknown servers: zz"),
    ],
)
def test_invalid_cluster_parameters_raise_one_clear_value_error(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Cluster(**kwargs)


def test_followers_receive_each_entry_once_when_nothing_is_lost() -> None:
    """Latency jitter without loss or reordering costs no resends: each follower gets
    each entry in one AppendEntries (1.05 M entries were sent for 40 k needed while the
    simulated network reordered every link by jitter alone)."""
    delivered_entries = 0

    class CountEntries:
        def on_deliver(self, serial: int, source: str, target: str, meta: object) -> None:
            nonlocal delivered_entries
            delivered_entries += len(getattr(meta, "entries", ()))

    writes = 400
    with Cluster(5, seed=3, trace=False) as cluster:
        cluster.wait_for_leader()
        leader = cluster.leader()
        assert leader is not None
        cluster.network.observer = CountEntries()

        async def offer() -> None:
            pending = []
            for k in range(writes):
                pending.append(asyncio.ensure_future(
                    cluster.servers[leader].propose(encode_put(f"k{k}", b"v"))))
                await asyncio.sleep(WRITE_INTERVAL)
            assert all(await asyncio.gather(*pending))

        cluster.run(offer())
        cluster.run_for(1.0)
        assert cluster.leader() == leader
    assert delivered_entries == writes * 4
