"""``/v1/status``: the leader's and the servers' RPC addresses. No ACL, as in Nomad."""

from __future__ import annotations

from aiohttp import web

from raftsim.api.errors import INVALID_METHOD, text_response
from raftsim.api.forwarding import Act, answer_by_leader, answer_locally
from raftsim.api.meta import leader_info, read_headers
from raftsim.api.params import stale
from raftsim.api.state import STATE

routes = web.RouteTableDef()


async def _answer(request: web.Request, act: Act) -> web.StreamResponse:
    if stale(request):
        return await answer_locally(request, act, management=False)
    return await answer_by_leader(request, act, management=False, read=True)


@routes.get("/v1/status/leader", allow_head=False)
async def leader(request: web.Request) -> web.StreamResponse:
    """The leader's RPC address as a JSON string; ``""`` when none is known."""
    state = request.app[STATE]

    async def act() -> web.StreamResponse:
        node = state.node()
        info = leader_info(node)
        return web.json_response(info.address if info else "",
                                 headers=read_headers(state, node.commit_index))

    return await _answer(request, act)


@routes.route("*", "/v1/status/leader")
async def leader_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)


@routes.get("/v1/status/peers", allow_head=False)
async def peers(request: web.Request) -> web.StreamResponse:
    """Every server of the committed configuration, non-voters too, by RPC address (as
    Nomad lists its Raft configuration). Not stale: after the leader barrier, as for
    ``/v1/operator/raft/configuration``."""
    state = request.app[STATE]

    async def act() -> web.StreamResponse:
        if not stale(request):
            await state.server.leader_barrier(timeout=state.request_timeout)
        node = state.node()
        _, config = node.committed_configuration
        addresses = [s.address for s in config.servers]
        return web.json_response(addresses, headers=read_headers(state, node.commit_index))

    return await _answer(request, act)


@routes.route("*", "/v1/status/peers")
async def peers_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)
