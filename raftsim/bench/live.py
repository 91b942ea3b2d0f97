"""How fast a live cluster commits (``raftsim bench live``).

Three server processes on loopback. Throughput is committed KV writes per second:

- ``inproc``: proposed in the leader's process, as PySyncObj's benchmark does it. The
  leader's process keeps a window of writes in flight (``Server.submit`` with a
  completion callback, like PySyncObj's ``callback=``) and counts completions over
  ``seconds``; each of a few window sizes is tried and the best is the peak. Once with
  ``fsync="never"``, once with ``fsync="always"``.
- ``http``: ``PUT /v1/kv/<key>`` from this process (aiohttp, a few dozen requests in
  flight) to the leader of a cluster of real ``raftsim agent`` processes (fsync always).
- latency: at half the peak rate (fsync never, and fsync always), offered open-loop in
  1 ms slots, the time from submitting a write to its completion: p50 and p99 in ms.
- ``--compare pysyncobj``: PySyncObj's replicated counter (3 processes, batching on,
  its default in-memory journal) measured exactly like ``inproc``.

Values are small (8 bytes, 10,000 keys). Every worker is a process started with
``python -m raftsim.bench.live``; the one that leads prints its figures as a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from raftsim.live.ports import free_port_run, free_ports
from raftsim.runtime.kv import encode_put

#: window sizes (writes in flight) tried for the peak; the best one counts
WINDOWS = (1000, 4000, 16000, 32000)
KEYS = 10_000
VALUE = b"v" * 8
#: seconds to wait for a leader, and for the last writes of a run to finish
SETTLE_TIMEOUT = 30.0


# ---------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Load:
    """Writes offered to one ``submit(command, done)`` function, closed- or open-loop.

    ``submit`` raises when the leader cannot take writes now; ``done`` is called with
    the result (a bool) or an exception, in the order the writes were submitted (a log
    applies in order), so latencies pair up with a queue of start times. Completions
    are counted only while ``counting``; with ``refill`` each completion submits anew
    (closed loop)."""

    def __init__(self, submit: Callable[[bytes, Callable[[Any], None]], None],
                 encode: Callable[[int], bytes], clock: Callable[[], float]) -> None:
        self.submit = submit
        self.encode = encode
        self.clock = clock
        self.sent = 0
        self.outstanding = 0
        self.completed = 0
        self.failed = 0
        self.counting = False
        self.refill = False
        self.latencies: list[float] | None = None
        self._starts: deque[float] = deque()

    def one(self) -> None:
        self.sent += 1
        self.outstanding += 1
        if self.latencies is not None:
            self._starts.append(self.clock())
        try:
            self.submit(self.encode(self.sent), self.done)
        except Exception:
            self.outstanding -= 1
            self.failed += 1
            if self.latencies is not None:
                self._starts.pop()

    def done(self, outcome: Any) -> None:
        self.outstanding -= 1
        if outcome.__class__ is bool:
            if self.counting:
                self.completed += 1
        else:
            self.failed += 1
        if self.latencies is not None:
            self.latencies.append(self.clock() - self._starts.popleft())
        if self.refill:
            self.one()


_KEY_NAMES = [f"k{n}" for n in range(KEYS)]


def _encode(n: int) -> bytes:
    return encode_put(_KEY_NAMES[n % KEYS], VALUE)


# ---------------------------------------------------------------------- raftsim worker


async def _raftsim_worker(args: argparse.Namespace) -> None:
    from raftsim.core.ready import Role
    from raftsim.live.agent import Agent, AgentConfig

    loop = asyncio.get_running_loop()
    peers = dict(p.split("=", 1) for p in args.peer)
    config = AgentConfig(server_id=args.id, node_name=f"{args.id}.global", rpc=args.rpc,
                         http=args.http, data_dir=Path(args.data_dir), peers=peers,
                         bootstrap=True, fsync=args.fsync, snapshot_threshold=0)
    agent = Agent(config, loop=loop)
    await agent.start()
    server = agent.server
    assert server is not None

    def leading() -> bool:
        node = server.node
        return node is not None and node.role is Role.LEADER and node.committed_in_term

    deadline = loop.time() + SETTLE_TIMEOUT
    while not leading():
        if loop.time() > deadline and server.role is not Role.LEADER:
            break
        await asyncio.sleep(0.05)
    if not leading():  # a follower: serve until the parent stops us
        await asyncio.Event().wait()
    warm_up = min(1.0, args.seconds)
    await asyncio.sleep(warm_up / 2)  # let the followers' connections settle
    load = Load(server.submit, _encode, time.perf_counter)
    result: dict[str, Any] = {"windows": {}}
    await _closed_loop(load, 1000, warm_up)
    for window in args.windows:
        result["windows"][str(window)] = round(await _closed_loop(load, window, args.seconds))
    peak = max(result["windows"].values())
    result["peak"] = peak
    if args.latency:
        latencies, achieved = await _open_loop(load, peak / 2, args.seconds)
        result["p50_ms"] = round(percentile(latencies, 0.50) * 1000, 3)
        result["p99_ms"] = round(percentile(latencies, 0.99) * 1000, 3)
        result["latency_rate"] = round(peak / 2)
        result["latency_achieved"] = round(achieved)
    result["failed"] = load.failed
    print(json.dumps(result), flush=True)
    await asyncio.Event().wait()


async def _drain(load: Load) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while load.outstanding and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def _closed_loop(load: Load, window: int, seconds: float) -> float:
    load.completed = 0
    load.refill = True
    for _ in range(window):
        load.one()
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
    await _drain(load)
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
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):  # type: ignore[misc]
        def __init__(self, me: str, others: list[str]) -> None:
            super().__init__(me, others, SyncObjConf(appendEntriesUseBatch=True))
            self.value = 0

        @replicated  # type: ignore[misc]
        def inc(self) -> int:
            self.value += 1
            return self.value

    counter = Counter(args.rpc, [p.split("=", 1)[1] for p in args.peer])
    pause = threading.Event()  # never set: bounded waits
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while counter._getLeader() is None and time.monotonic() < deadline:
        pause.wait(0.05)
    warm_up = min(1.0, args.seconds)
    pause.wait(warm_up)
    if counter._getLeader() != counter.selfNode:
        pause.wait()  # a follower: serve until the parent stops us
    lock = threading.RLock()  # a full queue calls back at once, inside inc()

    def submit(command: bytes, done: Callable[[Any], None]) -> None:
        def callback(result: Any, error: Any) -> None:
            with lock:
                done(True if error == FAIL_REASON.SUCCESS else RuntimeError(str(error)))

        counter.inc(callback=callback)

    load = Load(submit, lambda n: b"", time.perf_counter)
    result: dict[str, Any] = {"windows": {}}

    def closed_loop(window: int, seconds: float) -> float:
        with lock:
            load.completed = 0
            load.refill = True
            for _ in range(window):
                load.one()
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
        end = time.monotonic() + SETTLE_TIMEOUT
        while load.outstanding and time.monotonic() < end:
            pause.wait(0.01)
        return completed / elapsed

    closed_loop(1000, warm_up)
    for window in args.windows:
        result["windows"][str(window)] = round(closed_loop(window, args.seconds))
    result["peak"] = max(result["windows"].values())
    result["failed"] = load.failed
    print(json.dumps(result), flush=True)
    pause.wait()


# ---------------------------------------------------------------------- orchestration


async def _run_workers(kind: str, root: Path, *, fsync: str = "never", seconds: float,
                       windows: Sequence[int], latency: bool = False,
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
                       "--seconds", str(seconds), "--windows", ",".join(map(str, windows))]
            command += [arg for p, a in rpc.items() if p != sid for arg in ("--peer", f"{p}={a}")]
            if latency:
                command.append("--latency")
            processes.append(await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL))

        async def first_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if not line:
                await asyncio.Event().wait()  # this one exited without a result
            return json.loads(line)  # type: ignore[no-any-return]

        budget = SETTLE_TIMEOUT + (len(windows) + 2) * (seconds + 1.0) * 2 + 30
        waiters = [asyncio.ensure_future(first_line(p)) for p in processes]
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


async def _http_load(root: Path, seconds: float, concurrency: int = 48) -> float:
    """Committed PUTs per second through HTTP to the leader of three agent processes."""
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
            warm_up = min(1.0, seconds)
            stop = time.perf_counter() + seconds + warm_up

            async def client(k: int) -> None:
                nonlocal completed
                n = k
                while time.perf_counter() < stop:
                    n += concurrency
                    async with session.put(f"{base}k{n % KEYS}", data=VALUE) as response:
                        await response.read()
                        if response.status == 200 and counting:
                            completed += 1

            clients = [asyncio.ensure_future(client(k)) for k in range(concurrency)]
            await asyncio.sleep(warm_up)
            counting = True
            start = time.perf_counter()
            await asyncio.sleep(seconds)
            counting = False
            elapsed = time.perf_counter() - start
            await asyncio.gather(*clients)
            return completed / elapsed
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


def run_live_bench(seconds: float = 5.0, compare: str | None = None,
                   progress: TextIO | None = None,
                   windows: Sequence[int] = WINDOWS) -> dict[str, Any]:
    """Measure; returns the figures (see the module docstring) as a flat dict."""
    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    root = Path(tempfile.mkdtemp(prefix="raftsim-bench-"))
    load_before = round(os.getloadavg()[0], 2)
    try:
        async def measure() -> dict[str, Any]:
            # The reference runs between the two runs it is compared with, so that a
            # change in what else the machine is doing shows in both ratios alike.
            say("raftsim, proposals in the leader's process, fsync never ...")
            never = await _run_workers("raftsim-worker", root, fsync="never",
                                       seconds=seconds, windows=windows, latency=True)
            say(f"  {never}")
            reference = None
            if compare == "pysyncobj":
                say("PySyncObj replicated counter, proposals in the leader's process ...")
                reference = await _run_workers("pysyncobj-worker", root, seconds=seconds,
                                               windows=windows)
                say(f"  {reference}")
            say("raftsim, proposals in the leader's process, fsync always ...")
            always = await _run_workers("raftsim-worker", root, fsync="always",
                                        seconds=seconds, windows=windows, latency=True)
            say(f"  {always}")
            say("raftsim, PUT /v1/kv over HTTP (fsync always) ...")
            http = await _http_load(root, seconds)
            say(f"  {http:.0f}")
            result: dict[str, Any] = {
                "inproc_ops_per_second_fsync_never": never["peak"],
                "inproc_ops_per_second_fsync_always": always["peak"],
                "http_ops_per_second": round(http),
                "p50_ms": never["p50_ms"],
                "p99_ms": never["p99_ms"],
                "latency_offered_ops_per_second": never["latency_rate"],
                "latency_achieved_ops_per_second": never["latency_achieved"],
                "p50_ms_fsync_always": always["p50_ms"],
                "p99_ms_fsync_always": always["p99_ms"],
                "latency_offered_ops_per_second_fsync_always": always["latency_rate"],
                "latency_achieved_ops_per_second_fsync_always": always["latency_achieved"],
                "inproc_windows_fsync_never": never["windows"],
                "inproc_windows_fsync_always": always["windows"],
            }
            if reference is not None:
                result["pysyncobj_ops_per_second"] = reference["peak"]
                result["pysyncobj_windows"] = reference["windows"]
                result["ratio_fsync_never"] = round(never["peak"] / reference["peak"], 2)
                result["ratio_fsync_always"] = round(always["peak"] / reference["peak"], 2)
            result["seconds_per_run"] = seconds
            # the machine's 1-minute load average before and after: other processes
            # competing for the CPUs show here, and in the figures
            result["load_average_before"] = load_before
            result["load_average_after"] = round(os.getloadavg()[0], 2)
            result["python"] = platform.python_version()
            result["machine"] = _machine()
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
    parser.add_argument("--windows", type=lambda t: [int(w) for w in t.split(",")],
                        default=list(WINDOWS))
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args(argv)
    if args.kind == "pysyncobj-worker":
        _pysyncobj_worker(args)
    else:
        asyncio.run(_raftsim_worker(args))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
