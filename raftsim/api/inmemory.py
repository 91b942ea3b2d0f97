"""The API in the simulated world: real HTTP/1.1 requests through aiohttp's own request
handling, over an in-memory transport, in virtual time. No port is opened.

``SimApi(cluster)`` serves every server of a simulated cluster; each call of
``request`` is one HTTP exchange with one server's application and one ``api`` record in
the cluster's trace (method, path, status, and the start of the body for errors: never a
header, so never a token).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from raftsim.api.acl import Acl
from raftsim.api.app import build_app
from raftsim.api.directory import MemberDirectory
from raftsim.api.exchange import (
    ApiResponse,
    close_local_http_server,
    encode_request,
    exchange,
)
from raftsim.api.forwarding import FORWARD_METHOD
from raftsim.runtime.server import RpcHandler
from raftsim.sim.cluster import Cluster

__all__ = ["ApiResponse", "SimApi"]

#: how much of an error body the trace keeps
ERROR_EXCERPT = 120


def traced_path(path_with_query: str) -> str:
    """The path as the trace records it: any query parameter naming a token dropped."""
    path, _, query = path_with_query.partition("?")
    if not query:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if "token" not in k.lower()]
    if len(kept) == len(pairs):
        return path_with_query
    return f"{path}?{urlencode(kept)}" if kept else path


class SimApi:
    """Clients for every server of ``cluster``. Applications are built on first use; every
    server can be forwarded to from the first request on, so followers reach the leader."""

    def __init__(self, cluster: Cluster, *, acl_token: str | None = None,
                 leader_hold: float = 5.0, request_timeout: float = 5.0) -> None:
        self.cluster = cluster
        self._acl = Acl(acl_token)
        self._directory = MemberDirectory(cluster.node_names)
        self._leader_hold = leader_hold
        self._request_timeout = request_timeout
        self._apps: dict[str, web.Application] = {}
        self._lazy_forwarding()

    def app(self, server_id: str) -> web.Application:
        """``server_id``'s application (built on first use)."""
        app = self._apps.get(server_id)
        if app is None:
            server = self.cluster.servers.get(server_id)
            if server is None:
                known = ", ".join(self.cluster.ids)
                raise ValueError(f"unknown server {server_id!r}; servers are {known}")
            app = build_app(server, directory=self._directory, acl=self._acl,
                            leader_hold=self._leader_hold,
                            request_timeout=self._request_timeout)
            self._apps[server_id] = app
        self._lazy_forwarding()
        return app

    def _lazy_forwarding(self) -> None:
        """Let every server answer forwarded requests, building its app when one comes
        (servers the cluster adds later are hooked at the next ``app``/``request``)."""
        for server_id, server in self.cluster.servers.items():
            if FORWARD_METHOD not in server.rpc_handlers:
                server.rpc_handlers[FORWARD_METHOD] = self._build_on_forward(server_id)

    def _build_on_forward(self, server_id: str) -> RpcHandler:
        async def handle(source: str, params: list[Any]) -> Any:
            self.app(server_id)  # replaces this handler with the app's own
            handler = self.cluster.servers[server_id].rpc_handlers[FORWARD_METHOD]
            return await handler(source, params)

        return handle

    async def request(self, server_id: str, method: str, path_with_query: str, *,
                      body: bytes = b"", headers: dict[str, str] | None = None
                      ) -> ApiResponse:
        """One HTTP request to ``server_id``'s API (``path_with_query`` as in a request
        line; non-ASCII is percent-encoded). A server that is not running refuses the
        connection (``ConnectionRefusedError``), as a stopped process would. A paused
        server (SIGSTOP) answers nothing: the request waits in its socket and is
        handled after it resumes (the request is handled as ``server_id``'s own
        process, which the loop freezes while it is paused)."""
        app = self.app(server_id)
        self._lazy_forwarding()
        server = self.cluster.servers[server_id]
        raw = encode_request(method, path_with_query, list((headers or {}).items()), body)
        if not server.running:
            self._record(server_id, method, path_with_query, 0, b"connection refused")
            raise ConnectionRefusedError(f"server {server_id} is not running")
        handling = self.cluster.in_process(server_id, exchange(app, raw))
        # a client that gives up closes its end; the server, if paused, still handles
        # the request once it resumes (and answers into a closed connection)
        response = await asyncio.shield(handling)
        # aiohttp's Date header is the one wall-clock reading in a response; leaving it
        # out keeps what a simulated client sees a function of the seed alone
        response.headers.pop("Date", None)
        self._record(server_id, method, path_with_query, response.status, response.body)
        return response

    def _record(self, server_id: str, method: str, path: str, status: int,
                body: bytes) -> None:
        recorder = self.cluster.recorder
        if recorder is None:
            return
        node = self.cluster.servers[server_id].node
        fields: dict[str, Any] = {"method": method, "path": traced_path(path),
                                  "status": status}
        if status >= 400 or status == 0:
            fields["error"] = body[:ERROR_EXCERPT].decode("utf-8", errors="replace")
        recorder.record(server_id, node.term if node is not None else 0, "api", fields)

    async def aclose(self) -> None:
        for app in self._apps.values():
            await close_local_http_server(app)

    def close(self) -> None:
        """Release the applications; call while the cluster's loop is not running
        (from a coroutine on it, await ``aclose()`` instead)."""
        if self._apps and not self.cluster.loop.is_closed():
            self.cluster.run(self.aclose())
        self._apps.clear()
