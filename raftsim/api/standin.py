"""A stand-in Nomad server set in this process: a cluster on an ordinary real-time
asyncio loop in a background thread, every server serving its API on its own loopback
HTTP port. Real HTTP clients (python-nomad, curl, ``raftsim operator``) talk to it; the
servers still talk to each other over the in-process simulated network.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from raftsim.api.acl import Acl
from raftsim.api.app import build_app
from raftsim.api.directory import MemberDirectory
from raftsim.api.exchange import close_local_http_server
from raftsim.api.serve import bound_port, serve_http
from raftsim.sim.cluster import Cluster

T = TypeVar("T")


class StandIn:
    """Start with ``StandIn(3)``; stop with ``close()`` (or use it as a context manager).
    ``url(server_id)`` is the base URL of a server's API."""

    def __init__(self, servers: int = 3, *, seed: int = 0, acl_token: str | None = None,
                 host: str = "127.0.0.1", leader_hold: float = 5.0,
                 request_timeout: float = 5.0, trace: bool = True,
                 node_names: dict[str, str] | None = None) -> None:
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.cluster = Cluster(servers, seed=seed, loop=self.loop, trace=trace,
                               trace_messages=False, node_names=node_names)
        directory = MemberDirectory(self.cluster.node_names)
        acl = Acl(acl_token)
        self.apps: dict[str, web.Application] = {
            sid: build_app(self.cluster.servers[sid], directory=directory, acl=acl,
                           leader_hold=leader_hold, request_timeout=request_timeout)
            for sid in self.cluster.ids
        }
        self.ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="raftsim-standin",
                                        daemon=True)
        self._thread.start()
        try:
            self.call(self._serve_all())
        except BaseException:
            self.close()
            raise

    async def _serve_all(self) -> None:
        for sid, app in self.apps.items():
            runner = await serve_http(app, self.host, 0)
            self._runners.append(runner)
            self.ports[sid] = bound_port(runner)

    def url(self, server_id: str) -> str:
        return f"http://{self.host}:{self.ports[server_id]}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the cluster's loop and wait (at most ``timeout`` seconds)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def inspect(self, read: Callable[[Cluster], T], timeout: float = 10.0) -> T:
        """``read(cluster)`` evaluated on the loop's thread (a consistent snapshot)."""
        async def run() -> T:
            return read(self.cluster)

        return self.call(run(), timeout)

    def wait_until(self, predicate: Callable[[Cluster], bool], timeout: float = 10.0,
                   interval: float = 0.02) -> bool:
        """Poll ``predicate(cluster)`` on the loop until it holds; False at the deadline."""
        async def poll() -> bool:
            deadline = self.loop.time() + timeout
            while not predicate(self.cluster):
                if self.loop.time() >= deadline:
                    return False
                await asyncio.sleep(interval)
            return True

        return self.call(poll(), timeout + 5.0)

    def leader(self, timeout: float = 10.0) -> str:
        if not self.wait_until(lambda c: c.leader() is not None, timeout):
            raise TimeoutError(f"no leader elected within {timeout} seconds")
        leader = self.inspect(lambda c: c.leader())
        assert leader is not None
        return leader

    def close(self) -> None:
        if self._thread.is_alive():
            async def stop() -> None:
                for runner in self._runners:
                    await runner.cleanup()
                for app in self.apps.values():
                    await close_local_http_server(app)

            try:
                self.call(stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join()
        self.cluster.close()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
