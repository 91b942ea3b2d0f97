"""How fast the simulator runs: virtual seconds per wall second, idle and loaded, and
delivered messages per wall second (``raftsim bench sim``).

In the same run it measures the floor: a stock asyncio event loop (``BaseEventLoop``'s
own scheduling, its clock made virtual) that does, per message, what any message of a
simulation on asyncio must cost and nothing more: one msgpack pack of a heartbeat-sized
message, one ``call_later`` for its delivery, one msgpack unpack on arrival; no Raft
logic, no network model, no tracing. The idle and loaded message rates are also given as
fractions of it, so a figure from another machine can be read against that machine's.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from raftsim.compiled import active as compiled_build_active
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
    #: the floor's delivered messages per wall second (see the module docstring)
    floor_messages_per_second: float
    idle_fraction_of_floor: float
    loaded_fraction_of_floor: float
    #: rounds run (each: the floor, then idle, then loaded); every figure above is the
    #: median of the rounds, the fractions are of the median floor
    repeats: int
    #: the rounds' own figures, in the order they ran
    idle_realtime_factor_runs: list[float]
    loaded_messages_per_second_runs: list[float]
    floor_messages_per_second_runs: list[float]
    #: whether the compiled core and network ran (``raftsim compile``)
    compiled: bool
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


class _VirtualSelector:
    """The floor loop's selector: nothing to poll; waiting moves the virtual clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def select(self, timeout: float | None) -> list[Any]:
        if timeout:
            self.now += timeout
        return []

    def close(self) -> None:
        pass


class _FloorLoop(asyncio.BaseEventLoop):
    """asyncio's stock loop (its ``_run_once``, timer heap and handles) on virtual time."""

    def __init__(self) -> None:
        super().__init__()
        self._selector = _VirtualSelector()

    def time(self) -> float:
        return self._selector.now

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass


#: the floor's message: the shape and size of a heartbeat (AppendEntries with no entries)
_FLOOR_MESSAGE = [1, 7, "s1", "s2", 1234, 7, [], 1234]


def _floor(messages: int, servers: int) -> tuple[int, float]:
    """Messages ping-pong between servers with 1 ms latency, ``servers`` chains at once,
    until ``messages`` were delivered: (delivered, wall seconds)."""
    loop = _FloorLoop()
    pack = msgpack.Packer(use_bin_type=True).pack
    unpackb = msgpack.unpackb
    delivered = 0
    done = loop.create_future()

    def deliver(data: bytes) -> None:
        nonlocal delivered
        message = unpackb(data)
        delivered += 1
        if delivered >= messages:
            if not done.done():
                done.set_result(None)
            return
        message[2], message[3] = message[3], message[2]  # the reply goes back
        loop.call_later(0.001, deliver, pack(message))

    for _ in range(servers):
        loop.call_later(0.001, deliver, pack(_FLOOR_MESSAGE))
    start = time.perf_counter()
    try:
        loop.run_until_complete(done)
    finally:
        wall = time.perf_counter() - start
        loop.close()
    return delivered, wall


def run_sim_bench(servers: int = 5, idle_seconds: float = 600.0, loaded_seconds: float = 20.0,
                  rate: int = 2000, seed: int = 1, floor_messages: int = 200_000,
                  repeats: int = 3) -> SimBenchResult:
    """``repeats`` interleaved rounds of the floor, the idle run and the loaded run;
    medians (one round's figure moves a few percent with whatever else the machine
    does, so no single round is reported)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    floors: list[float] = []
    idles: list[tuple[float, float, int]] = []
    loadeds: list[tuple[float, float, int, int]] = []
    for _ in range(repeats):
        floor_delivered, floor_wall = _floor(floor_messages, servers)
        floors.append(floor_delivered / floor_wall)
        idles.append(_idle(servers, idle_seconds, seed))
        loadeds.append(_loaded(servers, loaded_seconds, rate, seed))
    floor = statistics.median(floors)
    iv, idle_delivered = idles[0][0], idles[0][2]  # the same every round: one seed
    lv, commits, delivered = loadeds[0][0], loadeds[0][2], loadeds[0][3]
    iw = statistics.median(run[1] for run in idles)
    lw = statistics.median(run[1] for run in loadeds)
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
        floor_messages_per_second=round(floor, 1),
        idle_fraction_of_floor=round(idle_delivered / iw / floor, 3),
        loaded_fraction_of_floor=round(delivered / lw / floor, 3),
        repeats=repeats,
        idle_realtime_factor_runs=[round(iv / run[1], 1) for run in idles],
        loaded_messages_per_second_runs=[round(run[3] / run[1], 1) for run in loadeds],
        floor_messages_per_second_runs=[round(f, 1) for f in floors],
        compiled=compiled_build_active(),
        python=platform.python_version(),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
    )
