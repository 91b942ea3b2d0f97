"""Live servers on real disks that fail: a tmpfs that fills up, a data directory that is
read-only, a process out of file descriptors. Each server that cannot persist exits with
status 1 after one log line naming the file, the operation and the errno, and after a
majority restarts no acknowledged write is lost.

Needs root (tmpfs mounts, lowering another process's RLIMIT_NOFILE); skipped with the
reason otherwise. The first test reproduces issue 10's zombie follower: a follower whose
disk was full kept acknowledging entries it had not written, and a majority restarted
after a crash lost ten acknowledged writes.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.livecluster import AgentProcesses, caught_up, get_many, http, wait_until

#: a value big enough that a few of them need fresh pages of a full tmpfs
VALUE_BYTES = 2048
#: how long a write may wait for its answer (the API gives up after 5 s)
PUT_TIMEOUT = 15.0
#: a file descriptor limit below every descriptor a running agent holds past stdio
FD_LIMIT = 3


class Mounts:
    """tmpfs mounts made by a test, unmounted at its end."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, path: Path, size: str, *, read_only: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       check=True, capture_output=True, timeout=10)
        self.points.append(path)

    def remount(self, path: Path, *, read_only: bool) -> None:
        options = "remount," + ("ro" if read_only else "rw")
        subprocess.run(["mount", "-o", options, str(path)], check=True, capture_output=True,
                       timeout=10)

    def unmount_all(self) -> None:
        for path in reversed(self.points):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)
        self.points.clear()


def _mounting_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    with tempfile.TemporaryDirectory() as name:
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", name],
                              capture_output=True, timeout=10)
        if made.returncode != 0:
            return f"cannot mount a tmpfs: {made.stderr.decode(errors='replace').strip()}"
        subprocess.run(["umount", name], capture_output=True, timeout=10)
    return None


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    reason = _mounting_unavailable()
    if reason is not None:
        pytest.skip(reason)
    made = Mounts()
    try:
        yield made
    finally:
        made.unmount_all()


# ---------------------------------------------------------------------- helpers


def _put(url: str, key: str, value: bytes) -> bool:
    try:
        status, body = http("PUT", f"{url}/v1/kv/{key}", value, timeout=PUT_TIMEOUT)
    except OSError:
        return False
    return (status, body) == (200, b"true")


def put_all(url: str, items: dict[str, bytes]) -> dict[str, bytes]:
    """PUT every item at once; the ones acknowledged (200, ``true``)."""
    with ThreadPoolExecutor(len(items)) as pool:
        answers = list(pool.map(lambda item: _put(url, *item), items.items()))
    return {key: value for (key, value), ok in zip(items.items(), answers, strict=True) if ok}


def values(prefix: str, count: int) -> dict[str, bytes]:
    return {f"{prefix}{k}": f"{prefix}{k}:".encode().ljust(VALUE_BYTES, b".")
            for k in range(count)}


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (remove it to free space)."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: close() has nothing left
        chunk = b"\0" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def exit_code(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The process's exit status once it exits, None if it is still running."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def start_with_follower(cluster: AgentProcesses, follower: str) -> str:
    """Start the other two servers first (they elect the leader), then ``follower``."""
    others = [s.id for s in cluster.plan if s.id != follower]
    for sid in others:
        cluster.start(sid)
    leader = cluster.wait_for_leader(others)
    cluster.start(follower)
    wait_until(lambda: cluster.agreed_leader() == leader, 30.0, f"{follower} following")
    return leader


def lost_after_majority_restart(cluster: AgentProcesses, down: list[str],
                                acknowledged: dict[str, bytes]) -> dict[str, bytes | None]:
    """Start ``down`` (with the running ones, a majority), wait for them to agree and
    apply; the acknowledged writes the leader does not hold."""
    for sid in down:
        cluster.start(sid)
    running = cluster.running()
    leader = cluster.wait_for_leader(running, timeout=45.0)
    urls = [cluster.url(sid) for sid in running]
    wait_until(lambda: caught_up(urls), 30.0, "the restarted majority applied everything")
    found = asyncio.run(get_many(cluster.url(leader), list(acknowledged)))
    return {key: found[key] for key, value in acknowledged.items() if found[key] != value}


def fatal_lines(cluster: AgentProcesses, sid: str) -> list[str]:
    return [line for line in cluster.log(sid).splitlines() if "fatal" in line]


# ---------------------------------------------------------------------- tests


def test_a_follower_on_a_full_tmpfs_exits_and_no_acknowledged_write_is_lost(
        tmp_path: Path, mounts: Mounts) -> None:
    """Issue 10, what was seen 1: the follower on a 2 MiB tmpfs must stop, not keep
    acknowledging what it could not write."""
    with AgentProcesses(tmp_path) as cluster:
        zombie = "s2"
        data = cluster.spec(zombie).data_dir
        mounts.tmpfs(data, "2m")
        leader = start_with_follower(cluster, zombie)
        other = next(s.id for s in cluster.plan if s.id not in (leader, zombie))
        acknowledged = put_all(cluster.url(leader), values("a", 5))
        assert len(acknowledged) == 5
        cluster.kill(other)  # from now on a write needs the zombie's acknowledgement
        filler = fill(data)
        acknowledged |= put_all(cluster.url(leader), values("b", 10))
        status = exit_code(cluster.processes[zombie], 10.0)
        cluster.kill(leader)
        cluster.kill(zombie)
        filler.unlink()
        lost = lost_after_majority_restart(cluster, [zombie, other], acknowledged)
        assert lost == {}, f"{len(lost)} acknowledged writes lost"
        assert status == 1
        (line,) = fatal_lines(cluster, zombie)
        assert re.search(rf"{zombie}: fatal: cannot persist: (write|fsync|open) "
                         rf"{re.escape(str(data))}/\S+: \[Errno 28\] No space left on device$",
                         line), line


def test_a_read_only_data_dir_stops_the_server_at_start_and_nothing_is_lost(
        tmp_path: Path, mounts: Mounts) -> None:
    """A server whose data directory became read-only while it was down must refuse to
    start, not run as a follower that cannot write (the server even started on it)."""
    with AgentProcesses(tmp_path) as cluster:
        victim = "s2"
        data = cluster.spec(victim).data_dir
        mounts.tmpfs(data, "8m")
        leader = start_with_follower(cluster, victim)
        other = next(s.id for s in cluster.plan if s.id not in (leader, victim))
        acknowledged = put_all(cluster.url(leader), values("a", 5))
        assert len(acknowledged) == 5
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 30.0,
                   "every server applied the first writes")
        cluster.kill(victim)
        mounts.remount(data, read_only=True)
        cluster.start(victim)
        status = exit_code(cluster.processes[victim], 20.0)
        cluster.kill(other)  # a write now needs the read-only server
        acknowledged |= put_all(cluster.url(leader), values("b", 10))
        cluster.kill(leader)
        cluster.kill(victim)
        mounts.remount(data, read_only=False)
        lost = lost_after_majority_restart(cluster, [victim, other], acknowledged)
        assert lost == {}, f"{len(lost)} acknowledged writes lost"
        assert status == 1
        (line,) = [line for line in cluster.log(victim).splitlines()
                   if "cannot start" in line]
        assert line.endswith(
            f"{victim}: cannot start: open {data}/.raftsim-write-probe: [Errno 30] "
            f"Read-only file system (the data directory {data} must be writable)"), line


def test_a_server_out_of_file_descriptors_exits_and_nothing_is_lost(tmp_path: Path) -> None:
    """RLIMIT_NOFILE lowered under a running follower so that no file can be opened:
    its next hard-state write fails with EMFILE and it stops."""
    with AgentProcesses(tmp_path) as cluster:
        victim = "s2"
        leader = start_with_follower(cluster, victim)
        other = next(s.id for s in cluster.plan if s.id not in (leader, victim))
        acknowledged = put_all(cluster.url(leader), values("a", 5))
        assert len(acknowledged) == 5
        pid = cluster.processes[victim].pid
        hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
        # Below the descriptors it holds (they stay valid): every new one fails.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (FD_LIMIT, hard))
        cluster.kill(other)
        # The commit index is written at most once a second (group commit): write until
        # that write needs a file the process can no longer open.
        keys = iter(values("b", 1000).items())

        def wrote_until_exit() -> bool:
            if cluster.processes[victim].poll() is None:
                key, value = next(keys)
                if _put(cluster.url(leader), key, value):
                    acknowledged[key] = value
            return cluster.processes[victim].poll() is not None

        wait_until(wrote_until_exit, 30.0, f"{victim} to exit")
        status = exit_code(cluster.processes[victim], 1.0)
        cluster.kill(leader)
        cluster.kill(victim)
        lost = lost_after_majority_restart(cluster, [victim, other], acknowledged)
        assert lost == {}, f"{len(lost)} acknowledged writes lost"
        assert status == 1
        (line,) = fatal_lines(cluster, victim)
        data = cluster.spec(victim).data_dir
        assert re.search(rf"{victim}: fatal: cannot persist: open {re.escape(str(data))}\S*: "
                         r"\[Errno 24\] Too many open files$", line), line
