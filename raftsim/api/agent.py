"""``/v1/agent/self``: this server's configuration and Raft statistics, always answered
locally (it describes the agent that is asked); ``/v1/agent/members``: the servers. Key
names and value formats are Nomad's: hashicorp/raft's ``Stats()`` reports every value as
a string."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from raftsim import __version__
from raftsim.api.durations import go_duration
from raftsim.api.errors import INVALID_METHOD, text_response
from raftsim.api.forwarding import answer_by_leader, answer_locally
from raftsim.api.meta import last_contact_seconds, read_headers
from raftsim.api.operator import RAFT_PROTOCOL
from raftsim.api.params import stale
from raftsim.api.state import STATE, ApiState
from raftsim.core.ready import Role
from raftsim.runtime.autopilot import MEMBER_FAILED_AFTER

routes = web.RouteTableDef()

#: hashicorp/raft's names for the states (it has no pre-candidate: PreVote runs as one)
_STATE_NAMES = {Role.FOLLOWER: "Follower", Role.PRE_CANDIDATE: "Candidate",
                Role.CANDIDATE: "Candidate", Role.LEADER: "Leader"}


def raft_stats(state: ApiState) -> dict[str, str]:
    node = state.node()
    config = node.configuration
    if node.role is Role.LEADER:
        contact = "0"
    elif math.isfinite(node.last_leader_contact):
        contact = go_duration(last_contact_seconds(state, node))
    else:
        contact = "never"
    return {
        "state": _STATE_NAMES[node.role],
        "term": str(node.term),
        "commit_index": str(node.commit_index),
        "applied_index": str(state.server.kv.applied_index),
        "last_log_index": str(node.log.last_index),
        "last_log_term": str(node.log.last_term),
        "last_snapshot_index": str(node.log.snapshot_index),
        "last_snapshot_term": str(node.log.snapshot_term),
        "num_peers": str(sum(1 for v in config.voters if v != node.id)),
        "last_contact": contact,
        "protocol_version": RAFT_PROTOCOL,
        "latest_configuration_index": str(node.configuration_index),
    }


def agent_self(state: ApiState) -> dict[str, Any]:
    server_id = state.server.id
    name = state.directory.node_name(server_id)
    info = state.node().configuration.get(server_id)
    address = info.address if info is not None else ""
    host, _, port = address.rpartition(":")
    return {
        "config": {
            "NodeName": name,
            "Region": "global",
            "Datacenter": "dc1",
            "Version": {"Version": __version__, "VersionMetadata": "raftsim"},
            "Server": {"Enabled": True, "RaftProtocol": int(RAFT_PROTOCOL)},
            "ACL": {"Enabled": state.acl.enabled},
        },
        "member": {"Name": name, "Addr": host, "Port": int(port) if port.isdigit() else 0,
                   "Status": "alive",
                   "Tags": {"id": server_id, "role": "nomad", "raft_vsn": RAFT_PROTOCOL,
                            "rpc_addr": address}},
        "stats": {"raft": raft_stats(state)},
    }


@routes.get("/v1/agent/self", allow_head=False)
async def get_self(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]

    async def act() -> web.StreamResponse:
        node = state.node()
        return web.json_response(agent_self(state),
                                 headers=read_headers(state, node.commit_index))

    return await answer_locally(request, act)


@routes.route("*", "/v1/agent/self")
async def self_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)


# ---------------------------------------------------------------- members

#: Serf's protocol numbers as Nomad's members list shows them
_SERF_PROTOCOL = {"ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                  "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}


def _member_statuses(state: ApiState) -> dict[str, str]:
    """Who is alive, as this server can tell without gossip: the leader judges every
    server by when it last answered (autopilot's view); a server that does not lead
    knows itself, and the leader while it hears from it."""
    server = state.server
    node = state.node()
    if node.role is Role.LEADER:
        return {h.id: h.status for h in server.autopilot.health()}
    statuses = {s: "failed" for s in node.configuration.ids}
    statuses[node.id] = "alive"
    if node.leader_id is not None and (
            server.loop.time() - node.last_leader_contact <= MEMBER_FAILED_AFTER):
        statuses[node.leader_id] = "alive"
    return statuses


def agent_members(state: ApiState) -> dict[str, Any]:
    """Nomad's ``api.ServerMembers``: what ``nomad server members`` lists (its Leader
    column compares ``Addr:Tags["port"]`` with ``/v1/status/leader``)."""
    node = state.node()
    statuses = _member_statuses(state)
    members = []
    for info in node.configuration.servers:
        host, _, port = info.address.rpartition(":")
        members.append({
            "Name": state.directory.node_name(info.id), "Addr": host,
            "Port": int(port) if port.isdigit() else 0,
            "Tags": {"id": info.id, "role": "nomad", "region": "global", "dc": "dc1",
                     "port": port, "rpc_addr": host, "raft_vsn": RAFT_PROTOCOL,
                     "build": __version__, "vsn": "1", "mvn": "1"},
            "Status": statuses.get(info.id, "failed"),
            **_SERF_PROTOCOL,
        })
    return {"ServerName": state.directory.node_name(state.server.id),
            "ServerRegion": "global", "ServerDC": "dc1", "Members": members}


@routes.get("/v1/agent/members", allow_head=False)
async def get_members(request: web.Request) -> web.StreamResponse:
    """The cluster's servers. Gossip makes Nomad's list the same on every server; a
    follower here asks the leader, whose view is freshest, unless ``?stale`` or no
    leader is known (then it answers from what it knows itself)."""
    state = request.app[STATE]

    async def act() -> web.StreamResponse:
        node = state.node()
        return web.json_response(agent_members(state),
                                 headers=read_headers(state, node.commit_index))

    node = state.node()
    if stale(request) or node.leader_id is None:
        return await answer_locally(request, act)
    response = await answer_by_leader(request, act, read=True)
    if (isinstance(response, web.Response) and response.status == 200
            and isinstance(response.body, bytes)):
        # the leader's list, but the answering agent is this one (ServerName)
        members = json.loads(response.body)
        members["ServerName"] = state.directory.node_name(state.server.id)
        response.body = json.dumps(members).encode()
    return response


@routes.route("*", "/v1/agent/members")
async def members_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)
