"""Who answers a request: this server, or the leader through this server.

Nomad's rule, kept here: reads with ``stale`` are answered from the local server's own
state; other reads and every write are answered by the leader. A follower hands such a
request to the leader over the servers' msgpack RPC (method ``api.forward``, carrying the
HTTP method, target, the headers that matter, the body and a hop count), and the leader
runs it through its own application and sends back status, headers and body. When no
leader is known within the hold time the answer is 500 ``No cluster leader``.

A forward ends as soon as its answer can no longer come: when the connection to the
leader closes, or this server stops naming that server leader (it heard nothing from it
for an election timeout, or learned of a newer leader). A read is then tried again at the
new leader (it changed nothing); a write answers 500 :data:`OUTCOME_UNKNOWN` (it may have
been committed). A forward that could not be sent at all (no connection to the leader)
waits for the leader to change or the connection to come back, and is tried again.

ACLs are checked where the request is finally answered, after parameter validation and
forwarding, as Nomad's RPC endpoints check them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from raftsim.api.acl import authorize
from raftsim.api.errors import ApiError
from raftsim.api.exchange import encode_request, exchange
from raftsim.api.state import STATE, ApiState
from raftsim.core.errors import NotLeader
from raftsim.core.ready import Role
from raftsim.runtime.errors import CallInterrupted, LeadershipLost, NoClusterLeader
from raftsim.runtime.server import RemoteError, RpcHandler, Server

FORWARD_METHOD = "api.forward"
#: forwards a request may take before giving up (a leader can change while it travels)
MAX_HOPS = 2
#: tries to find and use a leader for one request
_ATTEMPTS = 6
#: what a forwarded write answers (500) when contact with the leader was lost before it
#: answered; ``{leader}`` and ``{reason}`` are filled in
OUTCOME_UNKNOWN = ("lost contact with the leader {leader} before it answered ({reason}): the "
                   "outcome of this write is unknown; read before retrying it")
#: request headers the leader needs; nothing else is carried
FORWARDED_REQUEST_HEADERS = ("X-Nomad-Token", "Authorization", "Content-Type")
#: response headers carried back to the client
_KEPT_RESPONSE_HEADERS = ("content-type",)
#: the transport extra-info key holding how often a request was forwarded already; only
#: the in-memory transport sets it, so no HTTP client can
HOPS = "raftsim_forward_hops"

Act = Callable[[], Awaitable[web.StreamResponse]]


def forward_hops(request: web.Request) -> int:
    transport = request.transport
    if transport is None:
        return 0
    hops = transport.get_extra_info(HOPS, 0)
    return hops if isinstance(hops, int) else 0


async def answer_locally(request: web.Request, act: Act, *,
                         management: bool = True) -> web.StreamResponse:
    """Answer from this server's own state (stale reads, agent endpoints).
    ``management``: the endpoint needs the management token when ACLs are on."""
    if management:
        authorize(request, request.app[STATE].acl)
    return await act()


async def answer_by_leader(request: web.Request, act: Act, *, body: bytes = b"",
                           management: bool = True, read: bool = False) -> web.StreamResponse:
    """Run ``act`` if this server leads, else forward the request (with ``body``, the
    request body already read) to the leader. A ``read`` that loses leadership midway
    changed nothing, so it is tried again at the new leader."""
    state = request.app[STATE]
    server = state.server
    hops = forward_hops(request)
    for _ in range(_ATTEMPTS):
        node = state.node()
        if node.role is Role.LEADER:
            if management:
                authorize(request, state.acl)
            try:
                return await act()
            except NotLeader:
                continue  # lost leadership before the request took effect: find the new one
            except LeadershipLost:
                if not read:
                    raise  # a write may or may not have taken effect: say so
                continue
        leader = await server.wait_for_leader(state.leader_hold)
        if leader == server.id:
            continue
        if hops >= MAX_HOPS:
            break
        try:
            return await _forward(request, state, leader, hops + 1, body)
        except CallInterrupted as exc:
            if exc.sent and not read:
                raise ApiError(500, OUTCOME_UNKNOWN.format(leader=leader, reason=exc)) from None
            if not exc.sent:
                await _leader_or_link_changes(server, leader)
    raise NoClusterLeader()


async def _leader_or_link_changes(server: Server, leader: str) -> None:
    """Wait (at most an election timeout) until this server names another leader than
    ``leader`` or is connected to it again."""
    deadline = server.loop.time() + server.settings.election_timeout_max
    poll = server.settings.heartbeat_interval
    while server.loop.time() < deadline:
        node = server.node
        if node is None or node.leader_id != leader or server.connected_to(leader):
            return
        await asyncio.sleep(min(poll, max(deadline - server.loop.time(), 0.0)))


async def _forward(request: web.Request, state: ApiState, leader: str, hops: int,
                   body: bytes) -> web.StreamResponse:
    headers = [[name, request.headers[name]] for name in FORWARDED_REQUEST_HEADERS
               if name in request.headers]
    # the leader may itself wait for a leader, then for a commit
    timeout = state.leader_hold + state.request_timeout + 1.0
    try:
        result = await state.server.call(
            leader, FORWARD_METHOD, [request.method, request.raw_path, headers, body, hops],
            timeout=timeout, while_leader=True)
    except RemoteError as exc:
        raise ApiError(500, f"rpc error: {exc}") from None
    status, reply_headers, reply_body = _check_reply(result)
    response = web.Response(status=status, body=reply_body)
    for name, value in reply_headers:
        response.headers[name] = value
    return response


def _check_reply(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    if (isinstance(result, list | tuple) and len(result) == 3 and isinstance(result[0], int)
            and isinstance(result[1], list | tuple) and isinstance(result[2], bytes)):
        headers = []
        for pair in result[1]:
            if (isinstance(pair, list | tuple) and len(pair) == 2
                    and all(isinstance(p, str) for p in pair)):
                headers.append((pair[0], pair[1]))
        return result[0], headers, result[2]
    raise ApiError(500, "rpc error: malformed forwarded response")


def _kept(name: str) -> bool:
    lowered = name.lower()
    return lowered in _KEPT_RESPONSE_HEADERS or lowered.startswith("x-nomad-")


def forward_handler(app: web.Application) -> RpcHandler:
    """The RPC method a leader serves: answer a forwarded request with ``app``."""

    async def handle(source: str, params: list[Any]) -> list[Any]:
        if not (isinstance(params, list | tuple) and len(params) == 5):
            raise ValueError("api.forward takes [method, target, headers, body, hops]")
        method, target, headers, body, hops = params
        if not (isinstance(method, str) and isinstance(target, str)
                and isinstance(headers, list | tuple) and isinstance(body, bytes)
                and isinstance(hops, int) and not isinstance(hops, bool)):
            raise ValueError("api.forward takes [method, target, headers, body, hops]")
        pairs = []
        for pair in headers:
            if not (isinstance(pair, list | tuple) and len(pair) == 2
                    and all(isinstance(p, str) for p in pair)):
                raise ValueError("api.forward headers are [name, value] pairs")
            if pair[0] in FORWARDED_REQUEST_HEADERS:
                pairs.append((pair[0], pair[1]))
        raw = encode_request(method, target, pairs, body)
        response = await exchange(app, raw, {HOPS: hops, "peername": (source, 0)})
        kept = [[name, value] for name, value in response.headers.items() if _kept(name)]
        return [response.status, kept, response.body]

    return handle
