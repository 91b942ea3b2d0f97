"""Forwarding between real agent processes when the leader goes away mid-request, a
follower is stopped while its answer arrives, or a server joins whose id sorts first."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import threading
import time
from pathlib import Path

from raftsim.api.forwarding import OUTCOME_UNKNOWN
from raftsim.live.launcher import ServerSpec, agent_command
from tests.livecluster import AgentProcesses, free_port_run, http, wait_until

#: the agents' election timeout is 1-2 s (LIVE_SETTINGS); a forward must end within one
ELECTION_TIMEOUT_MAX = 2.0
#: a bounded pause that lets a request travel to a stopped process's socket buffer
IN_FLIGHT = 0.3


def pause(seconds: float) -> None:
    """A bounded pause where no observable condition exists (bytes sitting in a stopped
    process's socket buffer)."""
    threading.Event().wait(seconds)


def timed(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes, float]:
    started = time.monotonic()
    status, answer = http(method, url, body, timeout=30)
    return status, answer, time.monotonic() - started


def test_forwards_to_a_leader_that_goes_silent_end_within_an_election_timeout(
        tmp_path: Path) -> None:
    """The leader is stopped (SIGSTOP: its connections stay open, mute) while a follower
    holds a forwarded write and a forwarded read: the write answers 500 saying its
    outcome is unknown, the read is answered by the new leader; neither waits 11 s."""
    with AgentProcesses(tmp_path) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.running() if s != leader)
        url = cluster.url(follower)
        assert http("PUT", f"{url}/v1/kv/k", b"before")[0] == 200
        cluster.processes[leader].send_signal(signal.SIGSTOP)
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                write = pool.submit(timed, "PUT", f"{url}/v1/kv/k", b"during")
                read = pool.submit(timed, "GET", f"{url}/v1/kv/k")
                w_status, w_body, w_took = write.result()
                r_status, r_body, r_took = read.result()
        finally:
            cluster.processes[leader].send_signal(signal.SIGCONT)
        assert w_status == 500, (w_status, w_body)
        assert w_body.decode().startswith(OUTCOME_UNKNOWN.split("{")[0]), w_body
        assert "outcome of this write is unknown" in w_body.decode()
        assert w_took < ELECTION_TIMEOUT_MAX + 2.0, w_took
        assert (r_status, r_body) == (200, b"before"), (r_status, r_body)
        assert r_took < 2 * ELECTION_TIMEOUT_MAX + 3.0, r_took


def test_a_forward_to_a_leader_whose_process_dies_ends_at_once(tmp_path: Path) -> None:
    """The leader's process is killed while it holds a forwarded write (it was stopped,
    so the write was never done): the connection closes and the write ends at once."""
    with AgentProcesses(tmp_path) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.running() if s != leader)
        url = cluster.url(follower)
        cluster.processes[leader].send_signal(signal.SIGSTOP)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            write = pool.submit(timed, "PUT", f"{url}/v1/kv/k", b"during")
            pause(IN_FLIGHT)
            killed = time.monotonic()
            cluster.kill(leader)
            status, body, _ = write.result()
            took = time.monotonic() - killed
        assert status == 500 and b"outcome of this write is unknown" in body, (status, body)
        assert took < ELECTION_TIMEOUT_MAX, took
        wait_until(lambda: cluster.agreed_leader() not in (None, leader), 30, "a new leader")


def test_a_follower_resumed_from_sigstop_reads_the_answer_waiting_for_it(
        tmp_path: Path) -> None:
    """The follower forwards a write and is stopped before the answer arrives; it resumes
    after its peers' idle timeout: the answer in its socket buffer is read, not lost."""
    with AgentProcesses(tmp_path) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.running() if s != leader)
        url = cluster.url(follower)
        leader_process = cluster.processes[leader]
        follower_process = cluster.processes[follower]
        leader_process.send_signal(signal.SIGSTOP)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            write = pool.submit(timed, "PUT", f"{url}/v1/kv/k", b"committed")
            pause(IN_FLIGHT)  # the forward sits in the stopped leader's socket
            follower_process.send_signal(signal.SIGSTOP)
            leader_process.send_signal(SIGCONT := signal.SIGCONT)
            # the leader commits the write with the third server and answers into the
            # stopped follower's socket
            wait_until(lambda: http("GET", f"{cluster.url(leader)}/v1/kv/k?stale")
                       == (200, b"committed"), 10, "the write to commit")
            # longer than the agents' --rpc-idle-timeout (2 s): the follower resumes to
            # connections that look idle
            pause(2.5)
            follower_process.send_signal(SIGCONT)
            status, body, _ = write.result()
        assert (status, body) == (200, b"true"), (status, body)


def status_of(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """``http``, with 0 for a server that does not listen yet."""
    try:
        return http(method, url, body, timeout=10)
    except OSError:
        return 0, b""


def _start(spec: ServerSpec, plan: list[ServerSpec], root: Path, *, bootstrap: bool
           ) -> subprocess.Popen[bytes]:
    log = open(root / f"{spec.id}.log", "ab")  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen(
            agent_command(spec, plan, bootstrap=bootstrap, fsync="never",
                          extra=["--rpc-idle-timeout", "2", "--rpc-frame-timeout", "1"]),
            stdout=subprocess.DEVNULL, stderr=log)
    finally:
        log.close()


def test_a_joining_server_whose_id_sorts_first_is_reached_and_unwedges_the_cluster(
        tmp_path: Path) -> None:
    """"s2" runs alone; "a1" (sorts below it) is added as a voter: two voters, so no
    write commits unless "s2" reaches "a1"."""
    base = free_port_run(4)
    founder = ServerSpec("s2", "s2.global", f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}",
                         tmp_path / "s2")
    joiner = ServerSpec("a1", "a1.global", f"127.0.0.1:{base + 2}", f"127.0.0.1:{base + 3}",
                        tmp_path / "a1")
    processes = [_start(founder, [founder], tmp_path, bootstrap=True),
                 _start(joiner, [joiner], tmp_path, bootstrap=False)]
    try:
        url = f"http://{founder.http}"
        wait_until(lambda: status_of("PUT", f"{url}/v1/kv/first", b"1")[0] == 200, 30,
                   "the founder to lead alone")
        status, body = http("PUT", f"{url}/v1/operator/raft/peer?id=a1&address={joiner.rpc}")
        assert status == 200, body
        assert http("PUT", f"{url}/v1/kv/second", b"2")[0] == 200
        wait_until(lambda: status_of("GET", f"http://{joiner.http}/v1/kv/second?stale")
                   == (200, b"2"), 10, "the joiner to have the write")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
