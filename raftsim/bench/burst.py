"""A burst of writes offered all at once to a live leader: does it survive overload?

Three real agent processes on loopback (file storage, TCP, the HTTP API up); the one that
leads offers ``count`` distinct writes (``put b<n> = v<n>``) in one go through the
in-process ``Server.submit``, one log entry per command (hashicorp/raft's way, and the
costliest for the leader), then waits for every write's outcome. It reports as one JSON
line: how many committed, how many were refused at once (``Overloaded``: backpressure),
how many failed otherwise or got no answer, how many the state machine lost (a committed
write whose value is not there, or a refused one whose value is), and how many times the
leader's role changed meanwhile. No timing is judged here: the figures are counts.

Used by the backpressure test (``tests/test_runtime_backpressure.py``): run a worker with
``python -m raftsim.bench.burst``, or all three with :func:`run_burst`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from raftsim.bench.live import first_json_line
from raftsim.live.ports import free_ports

#: seconds to wait for a leader, and for every write of the burst to be answered
SETTLE_TIMEOUT = 60.0
#: how often the waits look at their condition again
POLL = 0.02
#: the stall meter's tick (seconds)
STALL_TICK = 0.005


def _key(n: int) -> str:
    return f"b{n}"


def _value(n: int) -> bytes:
    return f"v{n}".encode()


async def _worker(args: argparse.Namespace) -> None:
    from raftsim.bench.live import RoleChanges, leader_or_serve
    from raftsim.core.ready import Role
    from raftsim.live.agent import LIVE_SETTINGS, AgentConfig
    from raftsim.runtime.errors import Overloaded
    from raftsim.runtime.kv import encode_put

    loop = asyncio.get_running_loop()
    peers = dict(p.split("=", 1) for p in args.peer)
    config = AgentConfig(server_id=args.id, node_name=f"{args.id}.global", rpc=args.rpc,
                         http=args.http, data_dir=Path(args.data_dir), peers=peers,
                         bootstrap=True, fsync="never", snapshot_threshold=0,
                         settings=replace(LIVE_SETTINGS, election_timeout_min=args.election_timeout,
                                          election_timeout_max=2 * args.election_timeout))
    server = await leader_or_serve(config, loop, settle=SETTLE_TIMEOUT)
    server.max_commands_per_entry = args.per_entry
    if args.max_pending:
        server.max_pending_commands = args.max_pending
    role_changes = RoleChanges(server)
    stall = _StallMeter(loop)
    total = max(args.total, args.count)
    outcomes: list[Any] = [None] * total
    answered = 0
    sent = 0
    refused = 0

    def offer() -> None:
        nonlocal sent, answered, refused
        n = sent
        sent += 1
        try:
            server.submit(encode_put(_key(n), _value(n)), completion(n))
        except Overloaded:
            refused += 1
            outcomes[n] = "refused"
            answered += 1

    def completion(n: int) -> Any:
        def done(outcome: bool | Exception) -> None:
            nonlocal answered
            if outcomes[n] is None:
                answered += 1
            outcomes[n] = outcome
            if sent < total:  # closed loop: each answer offers the next write
                offer()
        return done

    for _ in range(args.count):
        offer()
    deadline = loop.time() + SETTLE_TIMEOUT
    while answered < total and loop.time() < deadline:
        await asyncio.sleep(POLL)
    kv = server.kv
    committed = sum(1 for o in outcomes if o is True)
    failed = sum(1 for o in outcomes if isinstance(o, Exception) or o is False)
    lost = 0
    for n, outcome in enumerate(outcomes):
        item = kv.get(_key(n))
        if outcome is True and (item is None or item.value != _value(n)):
            lost += 1
        elif outcome == "refused" and item is not None:
            lost += 1  # refused, yet made: the client was told the wrong thing
    result = {"offered": total, "committed": committed, "refused": refused,
              "failed": failed, "unanswered": total - answered, "lost": lost,
              "leader_changes": role_changes.count,
              "still_leading": server.role is Role.LEADER,
              "longest_stall_ms": round(stall.stop() * 1000),
              "failures": sorted({str(o) for o in outcomes if isinstance(o, Exception)})[:5]}
    print(json.dumps(result), flush=True)
    await asyncio.Event().wait()


class _StallMeter:
    """The longest time the event loop went without running a callback scheduled to run
    every STALL_TICK seconds (a report, not a judgement: timing depends on the machine)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.longest = 0.0
        self._last = loop.time()
        self._handle = loop.call_later(STALL_TICK, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        self.longest = max(self.longest, now - self._last - STALL_TICK)
        self._last = now
        self._handle = self.loop.call_later(STALL_TICK, self._tick)

    def stop(self) -> float:
        self._handle.cancel()
        return self.longest


async def _run(count: int, total: int, root: Path, per_entry: int,
               election_timeout: float, max_pending: int) -> dict[str, Any]:
    ports = free_ports(6)
    ids = ["s1", "s2", "s3"]
    rpc = {sid: f"127.0.0.1:{ports[2 * k]}" for k, sid in enumerate(ids)}
    processes = []
    try:
        for k, sid in enumerate(ids):
            command = [sys.executable, "-m", "raftsim.bench.burst", "--id", sid,
                       "--rpc", rpc[sid], "--http", f"127.0.0.1:{ports[2 * k + 1]}",
                       "--data-dir", str(root / sid), "--count", str(count), "--total", str(total),
                       "--per-entry", str(per_entry), "--max-pending", str(max_pending),
                       "--election-timeout", str(election_timeout)]
            command += [arg for p, a in rpc.items() if p != sid for arg in ("--peer", f"{p}={a}")]
            processes.append(await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL))

        waiters = [asyncio.ensure_future(first_json_line(p)) for p in processes]
        done, pending = await asyncio.wait(waiters, timeout=3 * SETTLE_TIMEOUT,
                                           return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if not done:
            raise RuntimeError("no burst worker reported")
        return done.pop().result()
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
        for process in processes:
            await process.wait()


def run_burst(count: int, *, total: int = 0, per_entry: int = 1,
              election_timeout: float = 1.0, max_pending: int = 0,
              root: Path | None = None) -> dict[str, Any]:
    """Start three workers; the leader offers ``count`` writes at once, and (up to
    ``total`` in all) a new one each time one is answered; its report. ``max_pending``:
    the leader's bound on unanswered writes (0: the server's default,
    MAX_PENDING_COMMANDS)."""
    with tempfile.TemporaryDirectory(prefix="raftsim-burst-", dir=root) as directory:
        return asyncio.run(_run(count, total, Path(directory), per_entry,
                                election_timeout, max_pending))


def _worker_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m raftsim.bench.burst")
    parser.add_argument("--id", required=True)
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--election-timeout", type=float, default=1.0,
                        help="the shortest election timeout (s); the longest is twice it")
    parser.add_argument("--total", type=int, default=0,
                        help="writes offered in all: each answer offers the next (closed loop)")
    parser.add_argument("--per-entry", type=int, default=1,
                        help="commands per log entry at most (0: group commit's batching)")
    parser.add_argument("--max-pending", type=int, default=0,
                        help="the leader's bound on unanswered writes (0: the default)")
    args = parser.parse_args(argv)
    from raftsim.live.agent import run_live

    run_live(_worker(args))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
