"""Live clusters for the live tests: agents on one event loop in a thread, or agent
processes. Real TCP on loopback with free ports, real files in a temporary directory.

Every wait here is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from raftsim.live.agent import LIVE_SETTINGS, Agent, AgentConfig
from raftsim.live.launcher import ServerSpec, agent_command, plan_cluster
from raftsim.live.ports import free_port_run, free_ports
from raftsim.live.transport import LinkSettings
from raftsim.runtime.server import Server

T = TypeVar("T")

#: quick failure detection for tests (the defaults are 5 s)
TEST_LINKS = LinkSettings(idle_timeout=2.0, frame_timeout=1.0, backoff_max=0.5)
#: how often a deadline-bounded wait looks at its condition again
POLL_INTERVAL = 0.05
#: how long a client waits before it retries a request that failed (a leader change)
RETRY_PAUSE = 0.05


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str,
               interval: float = POLL_INTERVAL) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        event.wait(interval)  # nobody sets it: a bounded pause between polls


# ---------------------------------------------------------------------- HTTP


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0,
         token: str | None = None) -> tuple[int, bytes]:
    headers = {"X-Nomad-Token": token} if token else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_json(url: str, timeout: float = 10.0) -> Any:
    status, body = http("GET", url, timeout=timeout)
    assert status == 200, (url, status, body)
    return json.loads(body)


# ---------------------------------------------------------------------- clients


async def put_many(base_urls: Sequence[str], items: Sequence[tuple[str, bytes]], *,
                   token: str | None = None, concurrency: int = 16) -> None:
    """PUT every item (to the base URLs in turn); each must be acknowledged."""
    headers = {"X-Nomad-Token": token} if token else {}
    queue = list(enumerate(items))
    async with aiohttp.ClientSession(headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker() -> None:
            while queue:
                n, (key, value) = queue.pop()
                url = f"{base_urls[n % len(base_urls)]}/v1/kv/{key}"
                async with session.put(url, data=value) as response:
                    body = await response.read()
                    assert (response.status, body) == (200, b"true"), (url, body)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def get_many(base_url: str, keys: Sequence[str], *, token: str | None = None,
                   concurrency: int = 32) -> dict[str, bytes | None]:
    """Each key's value as ``base_url`` has it locally (``?stale``); None if absent."""
    headers = {"X-Nomad-Token": token} if token else {}
    found: dict[str, bytes | None] = {}
    queue = list(keys)
    async with aiohttp.ClientSession(headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker() -> None:
            while queue:
                key = queue.pop()
                async with session.get(f"{base_url}/v1/kv/{key}?stale") as response:
                    body = await response.read()
                    assert response.status in (200, 404), (key, response.status, body)
                    found[key] = body if response.status == 200 else None

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return found


def raft_stats(base_url: str, token: str | None = None) -> dict[str, str]:
    status, body = http("GET", f"{base_url}/v1/agent/self", token=token)
    assert status == 200, body
    return json.loads(body)["stats"]["raft"]  # type: ignore[no-any-return]


def configuration(base_url: str, token: str | None = None) -> dict[str, Any]:
    """``base_url``'s own committed configuration (``?stale``)."""
    status, body = http("GET", f"{base_url}/v1/operator/raft/configuration?stale",
                        token=token)
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def caught_up(base_urls: Sequence[str], token: str | None = None) -> bool:
    """Every server has applied everything the most advanced one has committed."""
    try:
        stats = [raft_stats(url, token) for url in base_urls]
    except OSError:
        return False
    commit = max(int(s["commit_index"]) for s in stats)
    return all(int(s["applied_index"]) >= commit for s in stats)


def observe_for(seconds: float, check: Callable[[], None]) -> None:
    """Call ``check`` repeatedly for ``seconds`` (it raises if what it watches breaks):
    an observation window, not a sleep."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check()


async def until_async(predicate: Callable[[], bool], timeout: float) -> None:
    """``wait_until`` inside a coroutine."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        await asyncio.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------- in one process


class ThreadedCluster:
    """Agents on one asyncio loop in a background thread: fast to start, easy to look
    into (``inspect``), and still real sockets and files."""

    def __init__(self, root: Path, servers: int = 3, *, links: LinkSettings = TEST_LINKS,
                 snapshot_threshold: int = 0, fsync: str = "never",
                 settings: NodeSettings = LIVE_SETTINGS) -> None:
        ports = free_ports(2 * servers)
        ids = [f"s{k}" for k in range(1, servers + 1)]
        rpc = {sid: f"127.0.0.1:{ports[2 * k]}" for k, sid in enumerate(ids)}
        self.configs = {
            sid: AgentConfig(server_id=sid, node_name=f"{sid}.global", rpc=rpc[sid],
                             http=f"127.0.0.1:{ports[2 * k + 1]}", data_dir=root / sid,
                             peers={p: a for p, a in rpc.items() if p != sid},
                             bootstrap=True, fsync=fsync,  # type: ignore[arg-type]
                             snapshot_threshold=snapshot_threshold, links=links,
                             settings=settings)
            for k, sid in enumerate(ids)}
        self.loop = asyncio.new_event_loop()
        self.agents = {sid: Agent(config, loop=self.loop) for sid, config in self.configs.items()}
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        try:
            for agent in self.agents.values():
                self.call(agent.start())
        except BaseException:
            self.close()
            raise

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def inspect(self, read: Callable[[], T]) -> T:
        async def run() -> T:
            return read()

        return self.call(run())

    def server(self, sid: str) -> Server:
        server = self.agents[sid].server
        assert server is not None
        return server

    def leader(self) -> str | None:
        def read() -> str | None:
            leaders = [(s.node.term, sid) for sid, a in self.agents.items()
                       if (s := a.server) is not None and s.node is not None
                       and s.node.role is Role.LEADER]
            return max(leaders)[1] if leaders else None

        return self.inspect(read)

    def wait_for_leader(self, timeout: float = 15.0) -> str:
        return wait_until(self.leader, timeout, "a leader")

    def rpc_address(self, sid: str) -> tuple[str, int]:
        host, port = self.configs[sid].rpc.rsplit(":", 1)
        return host, int(port)

    def close(self) -> None:
        if self._thread.is_alive():
            async def stop() -> None:
                for agent in self.agents.values():
                    await agent.stop()

            try:
                self.call(stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> ThreadedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- processes


class AgentProcesses:
    """``raftsim agent`` processes, one per server, started and killed one by one."""

    def __init__(self, root: Path, servers: int = 3, *, fsync: str = "always",
                 extra: Sequence[str] = ("--rpc-idle-timeout", "2", "--rpc-frame-timeout", "1"),
                 plan: Sequence[ServerSpec] | None = None,
                 wrap: Callable[[ServerSpec], list[str]] = lambda spec: []) -> None:
        """``wrap(spec)``: words to run the agent's command with (e.g. ``ip netns exec``)."""
        self.root = root
        self.wrap = wrap
        self.plan = list(plan) if plan is not None else plan_cluster(
            servers, root / "data", free_port_run(2 * servers))
        self.fsync = fsync
        self.extra = list(extra)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def spec(self, sid: str) -> ServerSpec:
        return next(s for s in self.plan if s.id == sid)

    def url(self, sid: str) -> str:
        return f"http://{self.spec(sid).http}"

    def start(self, sid: str | None = None) -> None:
        for spec in self.plan if sid is None else [self.spec(sid)]:
            log = self.root / f"{spec.id}.log"
            self.logs[spec.id] = log
            with open(log, "ab") as err:
                self.processes[spec.id] = subprocess.Popen(
                    self.wrap(spec) + agent_command(spec, self.plan, fsync=self.fsync,
                                                    extra=self.extra),
                    stdout=subprocess.DEVNULL, stderr=err)

    def log(self, sid: str) -> str:
        return self.logs[sid].read_text(errors="replace")

    def kill(self, sid: str, signum: int = signal.SIGKILL) -> None:
        process = self.processes[sid]
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        process.wait(30)

    def running(self) -> list[str]:
        return [sid for sid, p in self.processes.items() if p.poll() is None]

    def status_leader(self, sid: str) -> str | None:
        """The leader's RPC address as ``sid`` sees it (None if it is unreachable)."""
        try:
            status, body = http("GET", f"{self.url(sid)}/v1/status/leader?stale", timeout=2)
        except OSError:
            return None
        return json.loads(body) or None if status == 200 else None

    def agreed_leader(self, among: Sequence[str] | None = None) -> str | None:
        ids = list(among) if among is not None else self.running()
        seen = {self.status_leader(sid) for sid in ids}
        if len(seen) != 1 or None in seen:
            return None
        address = seen.pop()
        return next((s.id for s in self.plan if s.rpc == address), None)

    def wait_for_leader(self, among: Sequence[str] | None = None, timeout: float = 30.0) -> str:
        return wait_until(lambda: self.agreed_leader(among), timeout, "an agreed leader")

    def stats(self, sid: str) -> dict[str, str]:
        return raft_stats(self.url(sid))

    def close(self) -> None:
        for sid in list(self.processes):
            if self.processes[sid].poll() is None:
                self.kill(sid, signal.SIGTERM)

    def __enter__(self) -> AgentProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def cluster_command(root: Path, servers: int = 3, *, data_dir: Path | None = None,
                    acl_token: str | None = None, base_port: int | None = None,
                    timeout: float = 30.0, tls: bool = False
                    ) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """``raftsim cluster`` running until the block ends (then SIGTERM); yields the process
    and the ready file's contents once it is written."""
    ready = root / f"ready-{time.monotonic_ns()}.json"
    base = base_port if base_port is not None else free_port_run(2 * servers)
    command = [sys.executable, "-m", "raftsim.cli", "cluster", "--servers", str(servers),
               "--base-port", str(base), "--ready-file", str(ready),
               "--data-dir", str(data_dir or root / "data")] + (["--tls"] if tls else [])
    env = dict(os.environ)
    if acl_token:
        env["RAFTSIM_ACL_TOKEN"] = acl_token
    out = open(root / "cluster.out", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    try:
        def read_ready() -> dict[str, Any] | None:
            if process.poll() is not None:
                raise AssertionError(f"raftsim cluster exited with {process.returncode}: "
                                     + (root / "cluster.out").read_text(errors="replace"))
            return json.loads(ready.read_text()) if ready.exists() else None

        yield process, wait_until(read_ready, timeout, "the ready file")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        out.close()
