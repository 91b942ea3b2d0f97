"""``build_app``: one server's HTTP application (the only way one is made)."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from raftsim.api import agent, autopilot, kv, operator, status
from raftsim.api.acl import Acl
from raftsim.api.directory import MemberDirectory
from raftsim.api.errors import PAGE_NOT_FOUND, ApiError, error_for, text_response
from raftsim.api.forwarding import FORWARD_METHOD, forward_handler
from raftsim.api.meta import KNOWN_LEADER, known_leader
from raftsim.api.state import STATE, ApiState
from raftsim.runtime.kv import MAX_VALUE_BYTES
from raftsim.runtime.server import Server

__all__ = ["build_app"]

log = logging.getLogger(__name__)


@web.middleware
async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request's one middleware (one layer instead of three: each layer is a
    coroutine and a wrapper on every request's path). In order:

    - an absolute-form request target (``GET http://host:port/v1/... HTTP/1.1``, which
      RFC 9112 says a server must accept) is served as its origin form, ``/v1/...``:
      handlers and forwarding read the raw path, escapes and all;
    - on a real port, the whole body is read within the body timeout before the handler
      runs (aiohttp would wait for a half-sent body forever); 408 otherwise. A body that
      is already here (every in-memory exchange, most small writes) is not waited for;
    - refusals become text/plain answers and ``X-Nomad-KnownLeader`` goes on every
      response. An exception that is no refusal is a bug: it is logged (method, route
      and traceback; never headers) and answered 500.
    """
    state = request.app[STATE]
    try:
        raw = request.raw_path
        if not raw.startswith("/"):
            parts = urlsplit(raw)
            origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            request = request.clone(rel_url=URL(origin, encoded=True))
        timeout = state.body_timeout
        if timeout is not None and request.body_exists and not request.content.is_eof():
            try:
                async with asyncio.timeout(timeout):
                    await request.read()  # kept by aiohttp for the handler's own read()
            except TimeoutError:
                late = text_response(408, f"the request body did not arrive within "
                                          f"{timeout:g} s")
                late.force_close()
                return _with_known_leader(late, state)
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own: no route, body too large...
        message = PAGE_NOT_FOUND if exc.status == 404 else (exc.text or exc.reason)
        response = text_response(exc.status, message)
    except Exception as exc:
        route = request.match_info.route.resource
        error = answer_for(exc, request.method,
                           route.canonical if route is not None else "?")
        response = text_response(error.status, error.message)
    return _with_known_leader(response, state)


def answer_for(exc: Exception, method: str, where: str) -> ApiError:
    """What a request that raised ``exc`` is answered. An exception that is no refusal is a
    bug: it is logged (method, route and traceback; never headers) and answered 500."""
    error = error_for(exc)
    if error is None:
        log.exception("unexpected error answering %s %s", method, where, exc_info=exc)
        error = ApiError(500, f"internal error: {type(exc).__name__}")
    return error


def _with_known_leader(response: web.StreamResponse, state: ApiState) -> web.StreamResponse:
    if KNOWN_LEADER not in response.headers:
        response.headers[KNOWN_LEADER] = "true" if known_leader(state) else "false"
    return response


def build_app(
    server: Server,
    *,
    directory: MemberDirectory | None = None,
    acl: Acl | None = None,
    leader_hold: float = 5.0,
    request_timeout: float = 5.0,
    wall_offset: float = 0.0,
) -> web.Application:
    """The application ``server`` serves, and its ``api.forward`` RPC method (so the
    other servers can forward requests to it while it leads).

    ``directory`` names the servers (ids it does not know are listed as
    ``"(unknown)"``); ``acl`` with a management token turns ACLs on; ``leader_hold`` is
    how long a request waits for a leader; ``request_timeout`` how long a write waits
    to commit; ``wall_offset`` turns the server's loop time into Unix time for dates
    (a live server's loop clock is monotonic, not the wall clock).
    """
    if leader_hold < 0 or request_timeout <= 0:
        raise ValueError("leader_hold must be >= 0 and request_timeout > 0")
    app = web.Application(middlewares=[front_door],
                          client_max_size=MAX_VALUE_BYTES)
    app[STATE] = ApiState(server=server, directory=directory or MemberDirectory(),
                          acl=acl or Acl(), leader_hold=leader_hold,
                          request_timeout=request_timeout, created_at=server.loop.time(),
                          wall_offset=wall_offset)
    for module in (operator, autopilot, status, agent, kv):
        app.add_routes(module.routes)
    server.rpc_handlers[FORWARD_METHOD] = forward_handler(app)
    return app
