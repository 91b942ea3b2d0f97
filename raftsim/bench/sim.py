"""How fast the simulator runs: virtual seconds per wall second, idle and loaded, and
delivered messages per wall second (``raftsim bench sim``)."""

from __future__ import annotations

import asyncio
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster


@dataclass(frozen=True)
class SimBenchResult:
    servers: int
    idle_virtual_seconds: float
    idle_wall_seconds: float
    idle_realtime_factor: float
    loaded_virtual_seconds: float
    loaded_wall_seconds: float
    loaded_realtime_factor: float
    loaded_commits: int
    messages_delivered: int
    idle_messages_per_second: float
    loaded_messages_per_second: float
    #: delivered messages per wall second over both runs together
    messages_per_second: float
    python: str
    machine: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _idle(servers: int, seconds: float, seed: int) -> tuple[float, float, int]:
    """A leader heartbeating an otherwise idle cluster: the cost of time passing."""
    with Cluster(servers, seed=seed, trace=False) as cluster:
        cluster.wait_for_leader()
        before = cluster.network.delivered
        start = time.perf_counter()
        cluster.run_for(seconds)
        return seconds, time.perf_counter() - start, cluster.network.delivered - before


def _loaded(servers: int, seconds: float, rate: int, seed: int) -> tuple[float, float, int, int]:
    """Clients propose ``rate`` writes per virtual second through the leader."""
    with Cluster(servers, seed=seed, trace=False) as cluster:
        cluster.wait_for_leader()
        delivered_before = cluster.network.delivered
        commits = 0

        async def client(k: int) -> None:
            nonlocal commits
            interval = 1.0 / rate
            end = cluster.now + seconds
            n = 0
            while cluster.now < end:
                leader = cluster.leader()
                if leader is not None:
                    fut = cluster.servers[leader].propose(
                        encode_put(f"k{n % 64}", b"v%d" % n), timeout=2.0)
                    task = asyncio.ensure_future(fut)
                    task.add_done_callback(_count)
                n += 1
                await asyncio.sleep(interval)

        def _count(task: asyncio.Future[bool]) -> None:
            nonlocal commits
            if not task.cancelled() and task.exception() is None:
                commits += 1

        start = time.perf_counter()
        cluster.run(client(0))
        cluster.run_for(1.0)
        wall = time.perf_counter() - start
        return seconds + 1.0, wall, commits, cluster.network.delivered - delivered_before


def run_sim_bench(servers: int = 5, idle_seconds: float = 600.0, loaded_seconds: float = 20.0,
                  rate: int = 2000, seed: int = 1) -> SimBenchResult:
    iv, iw, idle_delivered = _idle(servers, idle_seconds, seed)
    lv, lw, commits, delivered = _loaded(servers, loaded_seconds, rate, seed)
    return SimBenchResult(
        servers=servers,
        idle_virtual_seconds=iv, idle_wall_seconds=round(iw, 4),
        idle_realtime_factor=round(iv / iw, 1),
        loaded_virtual_seconds=lv, loaded_wall_seconds=round(lw, 4),
        loaded_realtime_factor=round(lv / lw, 2),
        loaded_commits=commits,
        messages_delivered=idle_delivered + delivered,
        idle_messages_per_second=round(idle_delivered / iw, 1),
        loaded_messages_per_second=round(delivered / lw, 1),
        messages_per_second=round((idle_delivered + delivered) / (iw + lw), 1),
        python=platform.python_version(),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
    )
