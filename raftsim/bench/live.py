"""How fast a live cluster commits, side by side with PySyncOj (``raftsim bench live``).

Three server processes on loopback, each measured run in fresh processes. Like for like:

- **the same command**: every write is one 22-byte msgpack ``put`` of an 8-byte value
  (10,000 keys), applied to a key-value dict on both systems (PySyncObj gets the bytes as
  its replicated method's argument and applies them the same way);
- **the same durability**: PySyncObj keeps its journal in memory, so the compared raftsim
  runs use ``fsync="never"``; ``fsync_always_batched_ops_per_second`` is raftsim alone;
- **the same batching**, both ways: *unbatched*, one log entry per command on both
  (raftsim with ``max_commands_per_entry=1``, as hashicorp/raft does); *batched*,
  raftsim's group commit (the commands of one event-loop turn in one entry, at most
  64 KiB) and PySyncObj given the same: the commands submitted since its last batch go
  as one replicated call of at most 64 KiB of commands;
- **in process**: the leader's process keeps a fixed window of writes in flight (a
  completion callback submits the next) and counts completions for ``seconds``;
- **every failure counted**: a write that fails (leadership lost, a queue full, no
  answer) is counted, as is any leadership change during a run; a figure from a run
  with either is marked invalid (``valid`` false), never dropped or replaced;
- **latency at one common offered rate** (``latency_rate``, the same for both, one entry
  per command, fsync never): writes offered open-loop in 1 ms slots; p50 and p99 of the
  time from submit to completion;
- **medians of interleaved repeats**: each repeat runs every configuration once, in the
  same order (raftsim then PySyncObj, so machine noise hits both alike), and each figure
  is the median over the repeats.

``http_ops_per_second``: ``PUT /v1/kv/<key>`` from this process (aiohttp, 48 requests in
flight) to the leader of three real ``raftsim agent`` processes (fsync always); a non-200
answer counts as a failed write. For load generators such as ``wrk`` and the etcd and
hashicorp/raft reference programs, see docs/benchmarks.md.

Every worker is a process started with ``python -m raftsim.bench.live``; the one that
leads prints its figures as a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from raftsim.compiled import active as compiled_build_active
from raftsim.live.ports import free_port_run, free_ports
from raftsim.runtime.kv import encode_put

if TYPE_CHECKING:
    from raftsim.live.agent import AgentConfig
    from raftsim.runtime.server import Server

#: writes in flight in the closed loop (both systems)
WINDOW = 8000
#: the common offered rate (writes/s) at which latency is measured on both systems
LATENCY_RATE = 2000
#: interleaved repeats; each figure is their median
REPEATS = 3
KEYS = 10_000
VALUE = b"v" * 8
#: seconds to wait for a leader, and for the last writes of a run to finish
SETTLE_TIMEOUT = 30.0
#: a batch (both systems) holds at most this many command bytes (raftsim's group commit)
MAX_BATCH_BYTES = 64 * 1024
#: how often a waiting loop looks at its condition again
POLL = 0.01
#: the keys of ``--json``, which other tools read
JSON_KEYS = ("unbatched_ops_per_second", "batched_ops_per_second",
             "fsync_always_batched_ops_per_second", "pysyncobj_unbatched_ops_per_second",
             "pysyncobj_batched_ops_per_second", "failed_writes", "leader_changes",
             "latency_rate", "p50_ms", "p99_ms", "pysyncobj_p50_ms", "pysyncobj_p99_ms",
             "http_ops_per_second")


# ---------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Load:
    """Writes offered to one ``submit(command, done)`` function, closed- or open-loop.

    ``submit`` raises when the leader cannot take a write now: a refusal meant as
    backpressure (``refuse``: raftsim's Overloaded) is counted in ``refused`` and the
    write is not made; anything else is a failed write. ``done`` is called with the
    result (True) or what failed it, in the order the writes were submitted (a log
    applies in order), so latencies pair up with a queue of start times. Completions
    are counted only while ``counting``; with ``refill`` each answer tops the writes
    in flight up to ``window`` again (closed loop; after a refusal, at the next
    answer)."""

    def __init__(self, submit: Callable[[bytes, Callable[[Any], None]], None],
                 encode: Callable[[int], bytes], clock: Callable[[], float],
                 refuse: tuple[type[BaseException], ...] = ()) -> None:
        self.submit = submit
        self.encode = encode
        self.clock = clock
        self.refuse = refuse
        self.sent = 0
        self.outstanding = 0
        self.completed = 0
        self.failed = 0
        self.refused = 0
        #: writes still unanswered when the run gave up waiting (counted as failed)
        self.unanswered = 0
        self.window = 0
        self.counting = False
        self.refill = False
        self.latencies: list[float] | None = None
        self._starts: deque[float] = deque()

    def one(self) -> bool:
        """Offer one write; False if it was refused or failed at once."""
        self.sent += 1
        self.outstanding += 1
        if self.latencies is not None:
            self._starts.append(self.clock())
        try:
            self.submit(self.encode(self.sent), self.done)
        except Exception as exc:
            self.outstanding -= 1
            if isinstance(exc, self.refuse):
                self.refused += 1
            else:
                self.failed += 1
            if self.latencies is not None:
                self._starts.pop()
            return False
        return True

    def top_up(self) -> None:
        while self.outstanding < self.window and self.one():
            pass

    def done(self, outcome: Any) -> None:
        self.outstanding -= 1
        if outcome is True:
            if self.counting:
                self.completed += 1
        else:
            self.failed += 1
        if self.latencies is not None:
            self.latencies.append(self.clock() - self._starts.popleft())
        if self.refill:
            self.top_up()


_KEY_NAMES = [f"k{n}" for n in range(KEYS)]


def _encode(n: int) -> bytes:
    return encode_put(_KEY_NAMES[n % KEYS], VALUE)


@dataclass
class RunFigures:
    """What one measured run (one system, one configuration, fresh processes) gave."""

    ops_per_second: float
    failed: int
    leader_changes: int
    refused: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_achieved: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ops_per_second": round(self.ops_per_second), "failed": self.failed,
                "leader_changes": self.leader_changes, "refused": self.refused,
                "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
                "latency_achieved": self.latency_achieved}


def _latency_figures(figures: dict[str, Any], latencies: list[float], achieved: float) -> None:
    figures["p50_ms"] = round(percentile(latencies, 0.50) * 1000, 3)
    figures["p99_ms"] = round(percentile(latencies, 0.99) * 1000, 3)
    figures["latency_achieved"] = round(achieved)


# ---------------------------------------------------------------------- raftsim worker



async def first_json_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """The JSON object a worker process prints first; never returns for a worker that
    exits without one (the one that leads prints, the followers serve until stopped)."""
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        await asyncio.Event().wait()  # this one exited without a result
    return json.loads(line)  # type: ignore[no-any-return]


class RoleChanges:
    """Counts ``server``'s role changes (a leader change makes a run invalid), passing
    every record on to the observer it had."""

    def __init__(self, server: Server) -> None:
        self.count = 0
        self._observer = server.observer
        server.observer = self._watch

    def _watch(self, sid: str, term: int, kind: str, fields: dict[str, Any]) -> None:
        if kind == "role":
            self.count += 1
        if self._observer is not None:
            self._observer(sid, term, kind, fields)


async def leader_or_serve(config: AgentConfig, loop: asyncio.AbstractEventLoop, *,
                          settle: float = SETTLE_TIMEOUT) -> Server:
    """Start a benchmark agent. Its server once it leads and has committed in its term
    (waiting up to ``settle`` seconds); a follower serves (never returns) until the
    parent process stops it."""
    from raftsim.core.ready import Role
    from raftsim.live.agent import Agent

    agent = Agent(config, loop=loop)
    await agent.start()
    server = agent.server
    assert server is not None

    def leading() -> bool:
        node = server.node
        return node is not None and node.role is Role.LEADER and node.committed_in_term

    deadline = loop.time() + settle
    while not leading() and loop.time() < deadline:
        await asyncio.sleep(POLL)
    if not leading():
        await asyncio.Event().wait()
    return server

async def _raftsim_worker(args: argparse.Namespace) -> None:
    from raftsim.live.agent import AgentConfig
    from raftsim.runtime.errors import Overloaded

    loop = asyncio.get_running_loop()
    peers = dict(p.split("=", 1) for p in args.peer)
    config = AgentConfig(server_id=args.id, node_name=f"{args.id}.global", rpc=args.rpc,
                         http=args.http, data_dir=Path(args.data_dir), peers=peers,
                         bootstrap=True, fsync=args.fsync, snapshot_threshold=0)
    server = await leader_or_serve(config, loop)
    server.max_commands_per_entry = 1 if args.mode == "unbatched" else 0
    role_changes = RoleChanges(server)
    warm_up = min(1.0, args.seconds)
    await asyncio.sleep(warm_up / 2)  # let the followers' connections settle
    load = Load(server.submit, _encode, time.perf_counter, refuse=(Overloaded,))
    await _closed_loop(load, min(args.window, 1000), warm_up)
    figures: dict[str, Any] = {"ops_per_second": await _closed_loop(load, args.window,
                                                                    args.seconds)}
    if args.latency_rate:
        latencies, achieved = await _open_loop(load, args.latency_rate, args.seconds)
        _latency_figures(figures, latencies, achieved)
    figures["failed"] = load.failed + load.unanswered
    figures["refused"] = load.refused
    figures["leader_changes"] = role_changes.count
    print(json.dumps(figures), flush=True)
    await asyncio.Event().wait()


async def _drain(load: Load) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while load.outstanding and time.monotonic() < deadline:
        await asyncio.sleep(POLL)
    load.unanswered = load.outstanding  # never answered: as good as failed


async def _closed_loop(load: Load, window: int, seconds: float) -> float:
    load.completed = 0
    load.window = window
    load.refill = True
    load.top_up()
    await asyncio.sleep(0.2)  # reach the steady state before counting
    load.counting = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    load.counting = False
    elapsed = time.perf_counter() - start
    load.refill = False
    await _drain(load)
    return load.completed / elapsed


async def _open_loop(load: Load, rate: float, seconds: float) -> tuple[list[float], float]:
    """Offer ``rate`` writes/s in 1 ms slots for ``seconds``: the latencies, and the
    rate of completions meanwhile (below ``rate``: the offer was more than the machine
    could take at that moment, and the latencies are queueing)."""
    latencies: list[float] = []
    load.latencies = latencies
    load.completed = 0
    load.counting = True
    start = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate) - sent
        for _ in range(due):
            load.one()
        sent += due
        await asyncio.sleep(0.001)
    achieved = load.completed / (time.perf_counter() - start)
    await _drain(load)
    load.counting = False
    load.latencies = None
    return latencies, achieved


# ---------------------------------------------------------------------- PySyncObj worker


def _pysyncobj_worker(args: argparse.Namespace) -> None:
    """PySyncObj's replicated KV: the same command bytes applied the same way; batched:
    the commands submitted since the last batch, at most MAX_BATCH_BYTES, as one call."""
    import msgpack
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    class Store(SyncObj):  # type: ignore[misc]
        def __init__(self, me: str, others: list[str]) -> None:
            super().__init__(me, others, SyncObjConf(appendEntriesUseBatch=True))
            self.items: dict[str, bytes] = {}

        @replicated  # type: ignore[misc]
        def apply(self, command: bytes) -> bool:
            _, key, value, _ = msgpack.unpackb(command)
            self.items[key] = value
            return True

        @replicated  # type: ignore[misc]
        def apply_batch(self, commands: list[bytes]) -> list[bool]:
            items = self.items
            for command in commands:
                _, key, value, _ = msgpack.unpackb(command)
                items[key] = value
            return [True] * len(commands)

    store = Store(args.rpc, [p.split("=", 1)[1] for p in args.peer])
    pause = threading.Event()  # never set: bounded waits
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while store._getLeader() is None and time.monotonic() < deadline:
        pause.wait(POLL)
    warm_up = min(1.0, args.seconds)
    pause.wait(warm_up)
    if store._getLeader() != store.selfNode:
        pause.wait()  # a follower: serve until the parent stops us
    lock = threading.RLock()  # a full queue calls back at once, inside apply()
    batching = args.mode == "batched"
    queued: list[tuple[bytes, Callable[[Any], None]]] = []
    wake = threading.Condition(lock)

    def submit(command: bytes, done: Callable[[Any], None]) -> None:
        if batching:
            queued.append((command, done))
            wake.notify()
            return

        def callback(result: Any, error: Any) -> None:
            with lock:
                done(True if error == FAIL_REASON.SUCCESS else RuntimeError(str(error)))

        store.apply(command, callback=callback)

    def batcher() -> None:
        """PySyncObj's group commit: whatever was submitted meanwhile, as one call."""
        while True:
            with lock:
                while not queued:
                    wake.wait()
                taken = queued[:]
                del queued[:]
            start = 0
            while start < len(taken):
                end, size = start, 0
                while end < len(taken) and (end == start
                                            or size + len(taken[end][0]) <= MAX_BATCH_BYTES):
                    size += len(taken[end][0])
                    end += 1
                group = taken[start:end]
                start = end

                def callback(result: Any, error: Any,
                             group: list[tuple[bytes, Callable[[Any], None]]] = group) -> None:
                    outcome: Any = True
                    if error != FAIL_REASON.SUCCESS:
                        outcome = RuntimeError(str(error))
                    with lock:
                        for _, done in group:
                            done(outcome)

                store.apply_batch([c for c, _ in group], callback=callback)

    if batching:
        threading.Thread(target=batcher, daemon=True).start()
    term = store.getStatus()["raft_term"]
    load = Load(submit, _encode, time.perf_counter)

    def closed_loop(window: int, seconds: float) -> float:
        with lock:
            load.completed = 0
            load.window = window
            load.refill = True
            load.top_up()
        pause.wait(0.2)
        with lock:
            load.counting = True
        start = time.perf_counter()
        pause.wait(seconds)
        with lock:
            load.counting = False
            load.refill = False
            completed = load.completed
        elapsed = time.perf_counter() - start
        drain()
        return completed / elapsed

    def drain() -> None:
        end = time.monotonic() + SETTLE_TIMEOUT
        while load.outstanding and time.monotonic() < end:
            pause.wait(POLL)
        with lock:
            load.unanswered = load.outstanding

    def open_loop(rate: float, seconds: float) -> tuple[list[float], float]:
        latencies: list[float] = []
        with lock:
            load.latencies = latencies
            load.completed = 0
            load.counting = True
        start = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * rate) - sent
            with lock:
                for _ in range(due):
                    load.one()
            sent += due
            pause.wait(0.001)
        achieved = load.completed / (time.perf_counter() - start)
        drain()
        with lock:
            load.counting = False
            load.latencies = None
        return latencies, achieved

    closed_loop(min(args.window, 1000), warm_up)
    figures: dict[str, Any] = {"ops_per_second": closed_loop(args.window, args.seconds)}
    if args.latency_rate:
        latencies, achieved = open_loop(args.latency_rate, args.seconds)
        _latency_figures(figures, latencies, achieved)
    figures["failed"] = load.failed + load.unanswered
    figures["refused"] = 0
    status = store.getStatus()
    figures["leader_changes"] = (status["raft_term"] - term
                                 + (0 if status["leader"] == store.selfNode else 1))
    print(json.dumps(figures), flush=True)
    pause.wait()


# ---------------------------------------------------------------------- orchestration


async def _run_workers(kind: str, root: Path, *, fsync: str = "never", seconds: float,
                       mode: str, window: int, latency_rate: int = 0,
                       servers: int = 3) -> dict[str, Any]:
    """Start ``servers`` worker processes; the leader's JSON line."""
    ports = free_ports(2 * servers)
    ids = [f"s{k}" for k in range(1, servers + 1)]
    rpc = {sid: f"127.0.0.1:{ports[2 * k]}" for k, sid in enumerate(ids)}
    data = Path(tempfile.mkdtemp(prefix=f"{kind}-{fsync}-", dir=root))
    processes = []
    try:
        for k, sid in enumerate(ids):
            command = [sys.executable, "-m", "raftsim.bench.live", kind, "--id", sid,
                       "--rpc", rpc[sid], "--http", f"127.0.0.1:{ports[2 * k + 1]}",
                       "--data-dir", str(data / sid), "--fsync", fsync,
                       "--seconds", str(seconds), "--mode", mode, "--window", str(window),
                       "--latency-rate", str(latency_rate)]
            command += [arg for p, a in rpc.items() if p != sid for arg in ("--peer", f"{p}={a}")]
            processes.append(await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL))

        budget = 2 * SETTLE_TIMEOUT + 4 * (seconds + 1.0) + 30
        waiters = [asyncio.ensure_future(first_json_line(p)) for p in processes]
        done, pending = await asyncio.wait(waiters, timeout=budget,
                                           return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if not done:
            raise RuntimeError(f"no {kind} worker reported within {budget:.0f} s")
        return done.pop().result()
    finally:
        await _stop(processes, signal.SIGKILL)


async def _http_load(root: Path, seconds: float,
                     concurrency: int = 48) -> tuple[float, int]:
    """Committed PUTs per second through HTTP to the leader of three agent processes,
    and how many PUTs failed (an answer other than 200, or none)."""
    import aiohttp

    from raftsim.live.launcher import agent_command, plan_cluster

    plan = plan_cluster(3, root / "http", free_port_run(6))
    processes = [await asyncio.create_subprocess_exec(
        *agent_command(spec, plan, fsync="always"), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL) for spec in plan]
    try:
        from raftsim.live.launcher import agreed_leader

        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency),
                timeout=aiohttp.ClientTimeout(total=10)) as session:
            deadline = time.monotonic() + SETTLE_TIMEOUT
            leader = None
            while leader is None and time.monotonic() < deadline:
                leader = await agreed_leader(session, plan)
                if leader is None:
                    await asyncio.sleep(0.1)
            if leader is None:
                raise RuntimeError("the HTTP benchmark's cluster elected no leader")
            base = f"http://{leader.http}/v1/kv/"
            counting = False
            completed = 0
            failed = 0
            warm_up = min(1.0, seconds)
            stop = time.perf_counter() + seconds + warm_up

            async def client(k: int) -> None:
                nonlocal completed, failed
                n = k
                while time.perf_counter() < stop:
                    n += concurrency
                    try:
                        async with session.put(f"{base}k{n % KEYS}", data=VALUE) as response:
                            await response.read()
                            ok = response.status == 200
                    except (aiohttp.ClientError, TimeoutError):
                        ok = False
                    if not ok:
                        failed += 1
                    elif counting:
                        completed += 1

            clients = [asyncio.ensure_future(client(k)) for k in range(concurrency)]
            await asyncio.sleep(warm_up)
            counting = True
            start = time.perf_counter()
            await asyncio.sleep(seconds)
            counting = False
            elapsed = time.perf_counter() - start
            await asyncio.gather(*clients)
            return completed / elapsed, failed
    finally:
        await _stop(processes, signal.SIGTERM)


async def _stop(processes: Sequence[asyncio.subprocess.Process], signum: int) -> None:
    """Send ``signum`` to each process still running and wait for all of them."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signum)
    for process in processes:
        await process.wait()


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(runs: dict[str, list[RunFigures]], http: Sequence[tuple[float, int]],
              latency_rate: int) -> dict[str, Any]:
    """The ``--json`` figures from every run: medians over the repeats; failed writes
    and leader changes summed over every run. ``valid`` only if both are 0."""
    def ops(name: str) -> int | None:
        median = _median([r.ops_per_second for r in runs.get(name, [])])
        return None if median is None else round(median)

    def latency(name: str, field: str) -> float | None:
        median = _median([getattr(r, field) for r in runs.get(name, [])])
        return None if median is None else round(median, 3)

    every = [r for figures in runs.values() for r in figures]
    failed = sum(r.failed for r in every) + sum(f for _, f in http)
    changes = sum(r.leader_changes for r in every)
    http_median = _median([ops for ops, _ in http])
    result: dict[str, Any] = {
        "unbatched_ops_per_second": ops("raftsim-unbatched"),
        "batched_ops_per_second": ops("raftsim-batched"),
        "fsync_always_batched_ops_per_second": ops("raftsim-batched-fsync-always"),
        "pysyncobj_unbatched_ops_per_second": ops("pysyncobj-unbatched"),
        "pysyncobj_batched_ops_per_second": ops("pysyncobj-batched"),
        "failed_writes": failed,
        "leader_changes": changes,
        "latency_rate": latency_rate,
        "p50_ms": latency("raftsim-unbatched", "p50_ms"),
        "p99_ms": latency("raftsim-unbatched", "p99_ms"),
        "pysyncobj_p50_ms": latency("pysyncobj-unbatched", "p50_ms"),
        "pysyncobj_p99_ms": latency("pysyncobj-unbatched", "p99_ms"),
        "http_ops_per_second": None if http_median is None else round(http_median),
    }
    result["valid"] = failed == 0 and changes == 0
    return result


#: (name, worker kind, mode, fsync, measure latency): the runs of one repeat, in order
_CONFIGURATIONS = (
    ("raftsim-unbatched", "raftsim-worker", "unbatched", "never", True),
    ("pysyncobj-unbatched", "pysyncobj-worker", "unbatched", "never", True),
    ("raftsim-batched", "raftsim-worker", "batched", "never", False),
    ("pysyncobj-batched", "pysyncobj-worker", "batched", "never", False),
    ("raftsim-batched-fsync-always", "raftsim-worker", "batched", "always", False),
)


def run_live_bench(seconds: float = 5.0, compare: str | None = None,
                   progress: TextIO | None = None, window: int = WINDOW,
                   repeats: int = REPEATS, latency_rate: int = LATENCY_RATE,
                   http: bool = True) -> dict[str, Any]:
    """Measure; the ``JSON_KEYS`` figures (None where not measured), ``valid``, and the
    details: every run's own figures, the machine, its load average before and after."""
    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    root = Path(tempfile.mkdtemp(prefix="raftsim-bench-"))
    load_before = round(os.getloadavg()[0], 2)
    configurations = [c for c in _CONFIGURATIONS
                      if compare == "pysyncobj" or not c[0].startswith("pysyncobj")]
    try:
        async def measure() -> dict[str, Any]:
            runs: dict[str, list[RunFigures]] = {name: [] for name, *_ in configurations}
            https: list[tuple[float, int]] = []
            for repeat in range(1, repeats + 1):
                for name, kind, mode, fsync, with_latency in configurations:
                    say(f"[{repeat}/{repeats}] {name} ...")
                    line = await _run_workers(kind, root, fsync=fsync, seconds=seconds,
                                              mode=mode, window=window,
                                              latency_rate=latency_rate if with_latency else 0)
                    figures = RunFigures(**line)
                    runs[name].append(figures)
                    say(f"  {figures.as_dict()}")
                if http:
                    say(f"[{repeat}/{repeats}] raftsim PUT /v1/kv over HTTP (fsync always) ...")
                    https.append(await _http_load(root, seconds))
                    say(f"  {https[-1][0]:.0f} ops/s, {https[-1][1]} failed")
            result = summarize(runs, https, latency_rate)
            result["details"] = {
                "runs": {name: [r.as_dict() for r in figures] for name, figures in runs.items()},
                "http_runs": [{"ops_per_second": round(o), "failed": f} for o, f in https],
                "window": window, "repeats": repeats, "seconds_per_run": seconds,
                # the machine's 1-minute load average before and after: other processes
                # competing for the CPUs show here, and in the figures
                "load_average_before": load_before,
                "load_average_after": round(os.getloadavg()[0], 2),
                "python": platform.python_version(), "machine": _machine(),
                # the workers run the compiled build exactly when this process does
                # (same environment, same sources): raftsim/compiled.py
                "compiled": compiled_build_active(),
            }
            return result

        return asyncio.run(measure())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _worker_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m raftsim.bench.live")
    parser.add_argument("kind", choices=("raftsim-worker", "pysyncobj-worker"))
    parser.add_argument("--id", required=True)
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fsync", choices=("always", "never"), default="never")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mode", choices=("unbatched", "batched"), default="batched")
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--latency-rate", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "pysyncobj-worker":
        _pysyncobj_worker(args)
    else:
        from raftsim.live.agent import run_live

        run_live(_raftsim_worker(args))  # the agent's own event loop (uvloop if there)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
