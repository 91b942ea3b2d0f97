"""How a scenario's ``[cluster]`` table becomes a simulated :class:`Cluster`.

``raftsim run``, the fuzz player and the teaching UI all build their clusters here, so a
scenario means the same cluster wherever it is played: the same settings, the same
seed-derived randomness, the same trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TypeVar

from raftsim.core.settings import NodeSettings
from raftsim.scenario.model import ClusterSpec
from raftsim.sim.cluster import Cluster

__all__ = ["build_cluster", "node_settings"]

C = TypeVar("C", bound=Cluster)


def node_settings(spec: ClusterSpec, bugs: Iterable[str] = ()) -> NodeSettings:
    """Every server's tunables as the ``[cluster]`` table sets them."""
    return NodeSettings(
        heartbeat_interval=spec.heartbeat, election_timeout_min=spec.election_timeout[0],
        election_timeout_max=spec.election_timeout[1], pre_vote=spec.pre_vote,
        check_quorum=spec.check_quorum, max_entries_per_message=spec.max_entries_per_message,
        lease_reads=spec.lease_reads, bugs=frozenset(bugs))


def build_cluster(spec: ClusterSpec, *, seed: int, bugs: Iterable[str] = (),
                  loop: asyncio.AbstractEventLoop | None = None,
                  kind: type[C] = Cluster,  # type: ignore[assignment]
                  trace_messages: bool = True) -> C:
    """Start the cluster ``spec`` describes, with ``bugs`` switched on in every server.

    ``kind``: a :class:`Cluster` subclass to build instead (the UI's paced cluster);
    ``loop``: the event loop to run on (default: a new virtual-time loop).
    """
    return kind(list(spec.servers), seed=seed, settings=node_settings(spec, bugs),
                nonvoters=spec.nonvoters, node_names=dict(spec.names),
                latency=spec.latency, loss=spec.loss, duplication=spec.duplication,
                reorder=spec.reorder, snapshot_threshold=spec.snapshot_threshold,
                clock_drift=spec.clock_drift, loop=loop, trace_messages=trace_messages,
                disk=spec.disk)
