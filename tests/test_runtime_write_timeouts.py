"""A group-commit write that cannot commit fails with RequestTimeout at its own deadline;
the writes waiting with the same timeout share one timer (not one each: a timer handle,
a heap push and a cancel on every HTTP write's path)."""

from __future__ import annotations

import asyncio

import pytest

from raftsim.core.settings import NodeSettings
from raftsim.runtime.errors import RequestTimeout
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster


def test_writes_that_cannot_commit_time_out_at_their_deadlines_sharing_one_timer() -> None:
    # without CheckQuorum, the cut-off leader keeps leading (and its writes keep waiting)
    cluster = Cluster(3, seed=11, group_commit=True, trace=False,
                      settings=NodeSettings(check_quorum=False))
    try:
        leader_id = cluster.wait_for_leader()
        cluster.run_for(0.5)
        leader = cluster.servers[leader_id]
        cluster.isolate(leader_id)  # nothing it proposes commits
        loop = cluster.loop
        ended: dict[str, float] = {}

        async def write(name: str, timeout: float) -> None:
            try:
                await leader.propose(encode_put(name, b"v"), timeout=timeout)
            except RequestTimeout as exc:
                assert str(exc) == "timed out waiting for the entry to commit"
                ended[name] = loop.time()

        start = loop.time()
        timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
        tasks = [loop.create_task(write(f"w{n}", 1.0)) for n in range(100)]
        cluster.run_for(0.001)
        assert len(loop._scheduled) - timers_before <= 2  # type: ignore[attr-defined]
        early = loop.create_task(write("early", 0.5))  # before the others' deadline
        cluster.run(asyncio.gather(*tasks, early))
        assert ended["early"] - start == pytest.approx(0.501, abs=0.002)
        assert all(ended[f"w{n}"] - start == pytest.approx(1.0, abs=0.002) for n in range(100))
    finally:
        cluster.close()
