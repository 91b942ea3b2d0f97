"""``/v1/operator/raft``: the Raft configuration, removing, adding, promoting and
demoting servers, and leadership transfer (autopilot's endpoints are in
``raftsim.api.autopilot``).

Nomad's endpoints (configuration, peer DELETE, transfer-leadership) answer with Nomad's
status codes and messages; like Nomad's prefix handler, a path under
``/v1/operator/raft/`` is matched by its first word, so a trailing slash works and an
unknown path is 404 ``Invalid method``. ``PUT /v1/operator/raft/peer`` (add a server, a
non-voter unless ``?voter=true``) and ``/v1/operator/raft/promote`` and ``/demote`` are
raftsim's own.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from raftsim.api.errors import INVALID_METHOD, ApiError, text_response
from raftsim.api.forwarding import answer_by_leader, answer_locally
from raftsim.api.meta import leader_info, read_headers
from raftsim.api.params import query_bool, query_value, stale
from raftsim.api.state import STATE, ApiState
from raftsim.core.configuration import ChangeKind, ConfigChange, Configuration

#: the Raft protocol version raftsim speaks, as Nomad reports it (a string)
RAFT_PROTOCOL = "3"

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
        if not stale(request):
            # A new leader may not yet know which configuration is committed: wait
            # until it has committed an entry of its term, so Index never goes back.
            await state.server.leader_barrier(timeout=state.request_timeout)
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
    """raftsim's own: add a server to the configuration, as a non-voter unless
    ``?voter=true``: a new server copies the log without counting toward the quorum,
    and autopilot promotes it once it has caught up (hashicorp/raft's staging)."""
    state = request.app[STATE]
    server_id = query_value(request, "id")
    address = query_value(request, "address")
    if not server_id or not address:
        raise ApiError(400, "Must specify ?id with the server's ID and ?address with "
                            "IP:port of the server to add")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ApiError(400, f"Invalid ?address {address!r}: expected IP:port")
    voter = query_bool(request, "voter", default=False)
    kind = ChangeKind.ADD_VOTER if voter else ChangeKind.ADD_NONVOTER

    async def act() -> web.StreamResponse:
        return await _change(state, ConfigChange(kind, server_id, address))

    return await answer_by_leader(request, act)


@routes.route("*", "/v1/operator/raft/peer")
async def peer_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(404, INVALID_METHOD)  # Nomad's answer


def _voting_change(kind: ChangeKind, verb: str) -> Handler:
    """A handler for raftsim's own promote/demote: ``?id`` names a member whose vote
    the configuration change gives or takes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        server_id = query_value(request, "id")
        if not server_id:
            raise ApiError(400, f"Must specify ?id with the ID of the server to {verb}")

        async def act() -> web.StreamResponse:
            _require_member(state.node().configuration, server_id)
            return await _change(state, ConfigChange(kind, server_id))

        return await answer_by_leader(request, act)

    return handler


async def _voting_change_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)


#: raftsim's own: make a non-voter a voter
promote = _voting_change(ChangeKind.PROMOTE, "promote")
#: raftsim's own: make a voter a non-voter (autopilot promotes it again once it has been
#: healthy for the stabilization time, as Nomad's autopilot would)
demote = _voting_change(ChangeKind.DEMOTE, "demote")
for _path, _handler in (("/v1/operator/raft/promote", promote),
                        ("/v1/operator/raft/demote", demote)):
    routes.post(_path)(_handler)
    routes.put(_path)(_handler)
    routes.route("*", _path)(_voting_change_other_method)


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
        # to the leader itself: nothing to hand over, and a pending transfer is cancelled
        await state.server.transfer_leadership(target.id, timeout=state.request_timeout)
        return web.json_response({"From": origin, "To": destination, "Noop": noop})

    return await answer_by_leader(request, act)


@routes.route("*", "/v1/operator/raft/transfer-leadership")
async def transfer_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)


# ---------------------------------------------------------------- Nomad's prefix handler

#: the first word of a path under /v1/operator/raft/ -> method -> handler
_BY_PREFIX: tuple[tuple[str, dict[str, Handler], Handler], ...] = (
    ("configuration", {"GET": get_configuration}, configuration_other_method),
    ("peer", {"DELETE": remove_peer, "PUT": add_peer}, peer_other_method),
    ("transfer-leadership", {"PUT": transfer_leadership, "POST": transfer_leadership},
     transfer_other_method),
    ("promote", {"PUT": promote, "POST": promote}, _voting_change_other_method),
    ("demote", {"PUT": demote, "POST": demote}, _voting_change_other_method),
)


@routes.route("*", "/v1/operator/raft/{rest:.*}")
async def raft_prefix(request: web.Request) -> web.StreamResponse:
    """Nomad routes ``/v1/operator/raft/`` as a prefix and picks the endpoint with
    ``strings.HasPrefix`` on the rest: ``configuration/`` is the configuration, and a
    path that starts with no known word is 404 ``Invalid method``."""
    rest = request.match_info["rest"]
    for prefix, handlers, other in _BY_PREFIX:
        if rest.startswith(prefix):
            return await handlers.get(request.method, other)(request)
    return text_response(404, INVALID_METHOD)
