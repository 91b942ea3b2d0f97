"""Large state (``raftsim bench snapshot``): event-loop stalls and a 200 MiB catch-up.

Two measurements, with ``values`` KV values of 512 KiB (400: 200 MiB of state):

- **stalls**: the longest time an asyncio loop could not run (a task that wakes every
  5 ms notes how late it woke) while one step of a snapshot's life runs, each on its own,
  the way a live server did before and does now:

  - serializing the KV state: one msgpack call on the loop / key by key in a worker
    thread, from a shallow copy;
  - restoring it: one unpack on the loop / key by key in a worker thread (from the
    bytearray the chunks were assembled into);
  - assembling the received chunks: one ``b"".join`` when the last arrives / each
    appended to a bytearray as it arrives (the core's PendingSnapshot, one chunk per
    loop turn);
  - writing the snapshot file (fsync on): ``FileStorage.save`` writing it on the loop /
    ``stage_snapshot`` writing it in a worker thread, then the ``save`` that publishes
    it on the loop (rename, fsync the directory, remove the older snapshot file).
- **catch-up**: three ``raftsim agent`` processes on loopback (compaction every 64
  entries, no trailing entries, fsync never); one is started only after ``values``
  writes, so it catches up by a streamed InstallSnapshot of the whole state. Reports the
  seconds from its start until it has applied everything, and checks that it logged
  installing the snapshot.

The machine's load average is reported with the figures: they mean little without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

from raftsim.core.messages import HardState, Snapshot
from raftsim.core.node import PendingSnapshot
from raftsim.live.launcher import ServerSpec, agent_command, plan_cluster
from raftsim.live.ports import free_port_run
from raftsim.runtime.kv import (
    MAX_VALUE_BYTES,
    KVItem,
    KVStore,
    decode_snapshot,
    encode_put,
    encode_snapshot,
)
from raftsim.storage.file import FileStorage

#: how often the stall-measuring task asks to wake up (seconds)
TICK = 0.005
#: snapshot chunks, as the core's default setting
CHUNK = 256 * 1024
#: seconds to wait for a leader, for writes and for the catch-up
TIMEOUT = 300.0
#: pause between polls of a condition (seconds)
POLL = 0.1


def _filled_store(values: int) -> KVStore:
    kv = KVStore()
    for n in range(values):
        kv.apply(n + 1, encode_put(f"k{n}", _value(n)))
    return kv


def _value(n: int) -> bytes:
    return n.to_bytes(4, "big") * (MAX_VALUE_BYTES // 4)


async def _longest_stall(step: Callable[[], Any]) -> float:
    """The longest the loop was late waking a 5 ms ticker while ``step`` ran (``step``
    may return an awaitable: it is awaited)."""
    loop = asyncio.get_running_loop()
    longest = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest
        while running:
            before = loop.time()
            await asyncio.sleep(TICK)
            longest = max(longest, loop.time() - before - TICK)

    task = loop.create_task(ticker())
    await asyncio.sleep(TICK * 2)
    longest = 0.0
    outcome = step()
    if asyncio.isfuture(outcome) or asyncio.iscoroutine(outcome):
        await outcome
    await asyncio.sleep(TICK * 2)
    running = False
    await task
    return longest


def _pack_whole(kv: KVStore) -> bytes:
    """The snapshot as live servers made it before: one packb call on the loop."""
    return msgpack.packb(
        [kv.applied_index, [[k, v.value, v.modify_index, v.create_index]
                            for k, v in sorted(kv.items.items())]], use_bin_type=True)


def _unpack_whole(data: bytes) -> dict[str, KVItem]:
    applied, items = msgpack.unpackb(data, raw=False)
    return {k: KVItem(bytes(v), m, c) for k, v, m, c in items}


async def _assemble_as_they_arrive(chunks: list[bytes]) -> bytearray:
    """The follower's way: each chunk appended as it arrives, one per loop turn."""
    pending = PendingSnapshot(1, 1, 1, b"")
    for chunk in chunks:
        pending.add(pending.size, chunk, 0)
        await asyncio.sleep(0)
    return pending.buffer


async def _stalls(values: int, directory: Path) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    kv = _filled_store(values)
    data = kv.snapshot()
    chunks = [data[o:o + CHUNK] for o in range(0, len(data), CHUNK)]
    assembled = bytearray(data)
    storage = FileStorage(directory, fsync="always")
    storage.save(HardState(term=1), (), None)
    result: dict[str, float] = {"snapshot_bytes": float(len(data))}

    def in_thread(function: Callable[..., Any], *args: Any) -> Any:
        return loop.run_in_executor(None, function, *args)

    written, staged = Snapshot(values, 1, b"", data), Snapshot(values + 1, 1, b"", assembled)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("serialize_on_loop_before", lambda: _pack_whole(kv)),
        ("serialize_in_thread_after",
         lambda: in_thread(encode_snapshot, kv.applied_index, dict(kv.items))),
        ("restore_on_loop_before", lambda: _unpack_whole(data)),
        ("restore_in_thread_after", lambda: in_thread(decode_snapshot, assembled)),
        ("assemble_chunks_joined_on_loop_before", lambda: b"".join(chunks)),
        ("assemble_chunks_as_they_arrive_after", lambda: _assemble_as_they_arrive(chunks)),
        ("write_snapshot_file_on_loop_before", lambda: storage.save(None, (), written)),
        ("write_snapshot_file_in_thread_after",
         lambda: in_thread(storage.stage_snapshot, staged)),
        ("publish_snapshot_file_on_loop_after", lambda: storage.save(None, (), staged)),
    ]
    try:
        for name, step in steps:
            result[f"{name}_max_stall_ms"] = round(await _longest_stall(step) * 1000, 1)
    finally:
        storage.close()
    return result


# ---------------------------------------------------------------------- catch-up


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _stats(spec: ServerSpec) -> dict[str, str] | None:
    try:
        return _get_json(f"http://{spec.http}/v1/agent/self")["stats"]["raft"]  # type: ignore[no-any-return]
    except OSError:
        return None


def _wait(predicate: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL)


async def _write_all(url: str, values: int) -> None:
    keys = list(range(values))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        async def worker() -> None:
            while keys:
                n = keys.pop()
                while True:
                    async with session.put(f"{url}/v1/kv/k{n}", data=_value(n)) as response:
                        body = await response.read()
                        if response.status == 200:
                            break
                        if response.status != 429:
                            raise RuntimeError(f"PUT k{n}: {response.status} {body!r}")
                    await asyncio.sleep(POLL)

        await asyncio.gather(*(worker() for _ in range(4)))


def _catch_up(values: int, root: Path) -> dict[str, Any]:
    plan = plan_cluster(3, root / "data", free_port_run(6))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    # no trailing entries (the agent keeps 10,240 by default): the lagging server must
    # need the snapshot
    extra = ["--snapshot-threshold", "64", "--trailing-logs", "0"]

    def start(spec: ServerSpec) -> None:
        with open(root / f"{spec.id}.log", "ab") as log:
            processes[spec.id] = subprocess.Popen(
                agent_command(spec, plan, fsync="never", extra=extra),
                stdout=subprocess.DEVNULL, stderr=log)

    try:
        for spec in plan[:2]:
            start(spec)

        def leader_url() -> str | None:
            for spec in plan[:2]:
                stats = _stats(spec)
                if stats is not None and stats.get("state") == "Leader":
                    return f"http://{spec.http}"
            return None

        url = _wait(leader_url, "a leader")
        began = time.monotonic()
        asyncio.run(_write_all(url, values))
        write_seconds = time.monotonic() - began
        lagging = plan[2]
        started = time.monotonic()
        start(lagging)

        def caught_up() -> bool:
            stats = [_stats(spec) for spec in plan]
            if any(s is None for s in stats):
                return False
            commit = max(int(s["commit_index"]) for s in stats if s is not None)
            last = stats[2]
            return last is not None and int(last["applied_index"]) >= commit

        _wait(caught_up, "the lagging server to catch up")
        seconds = time.monotonic() - started
        installed = "installed a snapshot" in (root / f"{lagging.id}.log").read_text()
        return {"catch_up_seconds": round(seconds, 2), "write_seconds": round(write_seconds, 2),
                "installed_snapshot": installed}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def run_snapshot_bench(*, values: int = 400, stalls: bool = True,
                       catch_up: bool = True) -> dict[str, Any]:
    """Both measurements (or one); figures in a flat dict."""
    result: dict[str, Any] = {"values": values, "value_bytes": MAX_VALUE_BYTES,
                              "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="raftsim-bench-snapshot-") as tmp:
        root = Path(tmp)
        if stalls:
            result.update(asyncio.run(_stalls(values, root / "stalls")))
        if catch_up:
            result.update(_catch_up(values, root))
    result["load_average_after"] = os.getloadavg()[0]
    result["python"] = sys.version.split()[0]
    return result
