"""The member directory: which node name belongs to which server id.

Nomad learns node names from Serf gossip and lists a Raft peer that gossip does not know
as ``"(unknown)"``. raftsim has no gossip; the world that runs the servers (the simulated
cluster, the live launcher) hands in the names it gave them.
"""

from __future__ import annotations

from collections.abc import Mapping

UNKNOWN_NODE = "(unknown)"


class MemberDirectory:
    """A read-only view of ``names`` (id -> node name). The mapping is kept by reference,
    so servers the world adds later are known without rebuilding the directory."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self._names: Mapping[str, str] = names if names is not None else {}

    def node_name(self, server_id: str) -> str:
        return self._names.get(server_id, UNKNOWN_NODE)

    def knows(self, server_id: str) -> bool:
        return server_id in self._names
