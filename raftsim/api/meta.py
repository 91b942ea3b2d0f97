"""The consistency headers Nomad calls query meta: who is leader, how fresh an answer is.

``X-Nomad-KnownLeader`` goes on every response; ``X-Nomad-Index`` and
``X-Nomad-LastContact`` on reads, so a client can see whether a stale answer lags.
"""

from __future__ import annotations

import math

from raftsim.api.state import ApiState
from raftsim.core.configuration import ServerInfo
from raftsim.core.node import RaftNode
from raftsim.core.ready import Role

KNOWN_LEADER = "X-Nomad-KnownLeader"
INDEX = "X-Nomad-Index"
LAST_CONTACT = "X-Nomad-LastContact"


def known_leader(state: ApiState) -> bool:
    node = state.server.node
    return node is not None and node.leader_id is not None


def last_contact_seconds(state: ApiState, node: RaftNode) -> float:
    """Seconds since this server last heard from a leader: 0 on the leader; since the
    application was built if it never has (Nomad reports the age of a zero time)."""
    if node.role is Role.LEADER:
        return 0.0
    now = state.server.loop.time()
    since = node.last_leader_contact
    if not math.isfinite(since):
        since = state.created_at
    return max(now - since, 0.0)


def read_headers(state: ApiState, index: int) -> dict[str, str]:
    node = state.node()
    millis = int(last_contact_seconds(state, node) * 1000)
    return {
        INDEX: str(index),
        LAST_CONTACT: str(millis),
        KNOWN_LEADER: "true" if node.leader_id is not None else "false",
    }


def leader_info(node: RaftNode) -> ServerInfo | None:
    """The leader as this server knows it, looked up in its latest configuration (the
    one it acts on), else in its committed one."""
    leader = node.leader_id
    if leader is None:
        return None
    return node.configuration.get(leader) or node.committed_configuration[1].get(leader)
