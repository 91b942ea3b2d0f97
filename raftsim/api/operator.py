"""``/v1/operator``: the Raft configuration, removing, adding and promoting servers,
leadership transfer, and autopilot's health report.

Nomad's endpoints (configuration, peer DELETE, transfer-leadership, autopilot/health)
answer with Nomad's status codes and messages. ``PUT /v1/operator/raft/peer`` (add a
server) and ``/v1/operator/raft/promote`` are raftsim's own.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftsim.api.errors import INVALID_METHOD, ApiError, text_response
from raftsim.api.forwarding import answer_by_leader, answer_locally
from raftsim.api.meta import leader_info, read_headers
from raftsim.api.params import query_bool, query_value, stale
from raftsim.api.state import STATE, ApiState
from raftsim.core import quorum
from raftsim.core.configuration import ChangeKind, ConfigChange, Configuration
from raftsim.core.node import RaftNode

#: the Raft protocol version raftsim speaks, as Nomad reports it (a string)
RAFT_PROTOCOL = "3"
#: autopilot's defaults: a server is healthy if the leader heard from it this recently...
LAST_CONTACT_THRESHOLD = 0.2
#: ...and it is at most this many entries behind
MAX_TRAILING_LOGS = 250

routes = web.RouteTableDef()


def _not_found(kind: str, value: str) -> ApiError:
    return ApiError(500, f'{kind} "{value}" was not found in the Raft configuration')


def _require_member(config: Configuration, server_id: str) -> None:
    if config.get(server_id) is None:
        raise _not_found("id", server_id)


async def _change(state: ApiState, change: ConfigChange) -> web.StreamResponse:
    await state.server.change_configuration(change, timeout=state.request_timeout)
    return web.Response(status=200)


# ---------------------------------------------------------------- configuration

@routes.get("/v1/operator/raft/configuration", allow_head=False)
async def get_configuration(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]

    async def act() -> web.StreamResponse:
        node = state.node()
        index, config = node.committed_configuration
        leader = leader_info(node)
        servers = [
            {"ID": s.id, "Node": state.directory.node_name(s.id), "Address": s.address,
             "Leader": leader is not None and s.address == leader.address,
             "Voter": s.voter, "RaftProtocol": RAFT_PROTOCOL}
            for s in config.servers
        ]
        return web.json_response({"Servers": servers, "Index": index},
                                 headers=read_headers(state, index))

    if stale(request):
        return await answer_locally(request, act)
    return await answer_by_leader(request, act, read=True)


@routes.route("*", "/v1/operator/raft/configuration")
async def configuration_other_method(request: web.Request) -> web.StreamResponse:
    return web.Response(status=405)  # Nomad: 405, empty body


# ---------------------------------------------------------------- peers

@routes.delete("/v1/operator/raft/peer")
async def remove_peer(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    server_id = query_value(request, "id")
    address = query_value(request, "address")
    if server_id is None and address is None:
        raise ApiError(400, "Must specify either ?id with the server's ID or ?address with "
                            "IP:port of peer to remove")
    if server_id is not None and address is not None:
        raise ApiError(400, "Must specify only one of ?id or ?address")
    # ?stale is accepted and ignored (python-nomad sends stale=False), as in Nomad

    async def act() -> web.StreamResponse:
        config = state.node().configuration
        if address is not None:
            info = config.by_address(address)
            if info is None:
                raise _not_found("address", address)
            target = info.id
        else:
            assert server_id is not None
            _require_member(config, server_id)
            target = server_id
        return await _change(state, ConfigChange(ChangeKind.REMOVE, target))

    return await answer_by_leader(request, act)


@routes.put("/v1/operator/raft/peer")
async def add_peer(request: web.Request) -> web.StreamResponse:
    """raftsim's own: add a server to the configuration (a voter unless ?voter=false)."""
    state = request.app[STATE]
    server_id = query_value(request, "id")
    address = query_value(request, "address")
    if not server_id or not address:
        raise ApiError(400, "Must specify ?id with the server's ID and ?address with "
                            "IP:port of the server to add")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ApiError(400, f"Invalid ?address {address!r}: expected IP:port")
    voter = query_bool(request, "voter", default=True)
    kind = ChangeKind.ADD_VOTER if voter else ChangeKind.ADD_NONVOTER

    async def act() -> web.StreamResponse:
        return await _change(state, ConfigChange(kind, server_id, address))

    return await answer_by_leader(request, act)


@routes.route("*", "/v1/operator/raft/peer")
async def peer_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(404, INVALID_METHOD)  # Nomad's answer


@routes.post("/v1/operator/raft/promote")
@routes.put("/v1/operator/raft/promote")
async def promote(request: web.Request) -> web.StreamResponse:
    """raftsim's own: make a non-voter a voter."""
    state = request.app[STATE]
    server_id = query_value(request, "id")
    if not server_id:
        raise ApiError(400, "Must specify ?id with the ID of the server to promote")

    async def act() -> web.StreamResponse:
        _require_member(state.node().configuration, server_id)
        return await _change(state, ConfigChange(ChangeKind.PROMOTE, server_id))

    return await answer_by_leader(request, act)


@routes.route("*", "/v1/operator/raft/promote")
async def promote_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)


# ---------------------------------------------------------------- leadership transfer

@routes.put("/v1/operator/raft/transfer-leadership")
@routes.post("/v1/operator/raft/transfer-leadership")
async def transfer_leadership(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    ids = request.query.getall("id", [])
    addresses = request.query.getall("address", [])
    # Nomad's checks, in Nomad's order
    if not ids and not addresses:
        raise ApiError(400, "must specify id or address")
    if ids and addresses:
        raise ApiError(400, "must specify either id or address")
    if ids and ids[0] == "":
        raise ApiError(400, "id must be non-empty")
    if len(ids) > 1:
        raise ApiError(400, "must specify only one id")
    if addresses and addresses[0] == "":
        raise ApiError(400, "address must be non-empty")
    if len(addresses) > 1:
        raise ApiError(400, "must specify only one address")

    async def act() -> web.StreamResponse:
        node = state.node()
        config = node.configuration
        me = config.get(state.server.id)
        if ids:
            target = config.get(ids[0])
            if target is None:
                raise ApiError(400, f'id "{ids[0]}" was not found in the Raft configuration')
        else:
            target = config.by_address(addresses[0])
            if target is None:
                raise ApiError(400, f'address "{addresses[0]}" was not found in the Raft '
                                    "configuration")
        if not target.voter:
            raise ApiError(400, "cannot transfer leadership to non-voter")
        origin = {"Address": me.address if me else "", "ID": state.server.id}
        destination = {"Address": target.address, "ID": target.id}
        noop = target.id == state.server.id
        if not noop:
            await state.server.transfer_leadership(target.id, timeout=state.request_timeout)
        return web.json_response({"From": origin, "To": destination, "Noop": noop})

    return await answer_by_leader(request, act)


@routes.route("*", "/v1/operator/raft/transfer-leadership")
async def transfer_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)


# ---------------------------------------------------------------- autopilot health

def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` writes it (for LastContact)."""
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + go_duration(-seconds)
    nanos = round(seconds * 1e9)
    if nanos < 1_000:
        return f"{nanos}ns"
    if nanos < 1_000_000:
        return f"{_trim(nanos / 1e3)}µs"
    if nanos < 1_000_000_000:
        return f"{_trim(nanos / 1e6)}ms"
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{_trim(rest / 1e9)}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def server_health(state: ApiState, node: RaftNode) -> dict[str, Any]:
    """Autopilot's report, from the leader's view of its followers (Nomad's shape)."""
    now = state.server.loop.time()
    config = node.configuration
    servers = []
    for info in config.servers:
        if info.id == node.id:
            contact, last_term, last_index = 0.0, node.term, node.log.last_index
            healthy = True
            contact_text = "0s"
        else:
            progress = node.progress.get(info.id)
            heard = progress.last_response if progress is not None else float("-inf")
            match = progress.match if progress is not None else 0
            last_index = match
            last_term = node.log.term_at(match) or node.log.snapshot_term
            contact = now - heard
            contact_text = go_duration(contact) if heard > float("-inf") else "-1ns"
            healthy = (contact <= LAST_CONTACT_THRESHOLD and last_term == node.term
                       and node.log.last_index - match <= MAX_TRAILING_LOGS)
        servers.append({
            "ID": info.id, "Name": state.directory.node_name(info.id),
            "Address": info.address, "Leader": info.id == node.id, "Voter": info.voter,
            "Healthy": healthy, "LastContact": contact_text, "LastTerm": last_term,
            "LastIndex": last_index,
        })
    voters = list(config.voters)
    healthy_voters = sum(1 for s in servers if s["Voter"] and s["Healthy"])
    tolerance = max(healthy_voters - quorum.quorum_size(len(voters)), 0)
    return {"Healthy": all(s["Healthy"] for s in servers), "FailureTolerance": tolerance,
            "Servers": servers, "Leader": node.id, "Voters": voters}


@routes.get("/v1/operator/autopilot/health", allow_head=False)
async def autopilot_health(request: web.Request) -> web.StreamResponse:
    """Always the leader's report (Nomad forwards it even with ``stale``)."""
    state = request.app[STATE]
    stale(request)

    async def act() -> web.StreamResponse:
        node = state.node()
        report = server_health(state, node)
        status = 200 if report["Healthy"] else 429
        return web.json_response(report, status=status,
                                 headers=read_headers(state, node.commit_index))

    return await answer_by_leader(request, act, read=True)


@routes.route("*", "/v1/operator/autopilot/health")
async def health_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(404, INVALID_METHOD)  # Nomad's answer

