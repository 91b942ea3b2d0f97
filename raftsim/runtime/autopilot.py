"""Autopilot: the leader's watch over its servers (hashicorp/raft-autopilot as Nomad runs
it). It judges every server's health from the leader's replication progress, and
promotes a non-voter to voter once it has caught up and stayed healthy for the
stabilization time, so that a server joins as a non-voter (it cannot cost the cluster
its quorum while it copies the log) and starts voting only when it can keep up.

Only the leader runs it: it starts when the server's role becomes leader and stops
when that ends. A promotion is an ordinary configuration change through the core.

Its configuration (Nomad's ``AutopilotConfiguration``) is replicated like everything
else the cluster agrees on: it is a value of the replicated key-value store under
:data:`CONFIG_KEY`, so every server reads the same one, a new leader included, and a
write with ``cas`` is Nomad's check-and-set on ``ModifyIndex``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from raftsim.core.configuration import ChangeKind, ConfigChange, ConfigurationError
from raftsim.core.errors import ChangeNotAllowedYet, NotLeader, ProposalDropped
from raftsim.core.ready import Role
from raftsim.runtime.errors import RequestFailed

if TYPE_CHECKING:
    from raftsim.runtime.server import Server

#: the replicated key holding the configuration (raftsim's own namespace)
CONFIG_KEY = "_raftsim/autopilot/configuration"
#: how often the leader re-evaluates health and promotions (seconds; raft-autopilot
#: updates health every few seconds, a simulated cluster can afford finer)
EVALUATION_INTERVAL = 0.5
#: raftsim has no gossip (Serf): a server the leader has not heard from for this long
#: is reported ``failed``, about when Serf's failure detector would declare it
MEMBER_FAILED_AFTER = 2.0
#: how long a promotion waits to commit before the next evaluation tries again
PROMOTION_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class AutopilotConfig:
    """Nomad's autopilot settings and defaults (durations in seconds)."""

    cleanup_dead_servers: bool = True
    last_contact_threshold: float = 0.2
    max_trailing_logs: int = 250
    min_quorum: int = 0
    server_stabilization_time: float = 10.0
    enable_redundancy_zones: bool = False
    disable_upgrade_migration: bool = False
    enable_custom_upgrades: bool = False
    #: the store's indexes of the entry that created / last changed the stored value
    create_index: int = 0
    modify_index: int = 0

    def encode(self) -> bytes:
        fields = asdict(self)
        del fields["create_index"], fields["modify_index"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, create_index: int, modify_index: int) -> AutopilotConfig:
        raw: dict[str, Any] = json.loads(data)
        defaults = cls()
        return cls(
            cleanup_dead_servers=bool(raw.get("cleanup_dead_servers",
                                              defaults.cleanup_dead_servers)),
            last_contact_threshold=float(raw.get("last_contact_threshold",
                                                 defaults.last_contact_threshold)),
            max_trailing_logs=int(raw.get("max_trailing_logs", defaults.max_trailing_logs)),
            min_quorum=int(raw.get("min_quorum", defaults.min_quorum)),
            server_stabilization_time=float(raw.get("server_stabilization_time",
                                                    defaults.server_stabilization_time)),
            enable_redundancy_zones=bool(raw.get("enable_redundancy_zones", False)),
            disable_upgrade_migration=bool(raw.get("disable_upgrade_migration", False)),
            enable_custom_upgrades=bool(raw.get("enable_custom_upgrades", False)),
            create_index=create_index, modify_index=modify_index,
        )

    def with_indexes(self, create_index: int, modify_index: int) -> AutopilotConfig:
        return replace(self, create_index=create_index, modify_index=modify_index)


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """One server as the leader sees it (raft-autopilot's ServerHealth)."""

    id: str
    address: str
    voter: bool
    leader: bool
    #: "alive" or "failed" (what Serf would report)
    status: str
    #: seconds since the leader last heard from it; None if it never has
    last_contact: float | None
    last_term: int
    last_index: int
    healthy: bool
    #: when ``healthy`` last changed (the server's loop time)
    stable_since: float


class Autopilot:
    """Runs on every server, acts only while that server leads."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._timer: asyncio.TimerHandle | None = None
        #: server id -> (healthy, since when)
        self._stable: dict[str, tuple[bool, float]] = {}
        self._promotion: asyncio.Task[None] | None = None

    def configuration(self) -> AutopilotConfig:
        """The replicated configuration as this server has applied it."""
        item = self.server.kv.get(CONFIG_KEY)
        if item is None:
            return AutopilotConfig()
        try:
            return AutopilotConfig.decode(item.value, item.create_index, item.modify_index)
        except (ValueError, TypeError, AttributeError):
            return AutopilotConfig(create_index=item.create_index,
                                   modify_index=item.modify_index)

    def on_role(self, leading: bool) -> None:
        """The server's role changed: start watching on becoming leader, stop after."""
        if leading:
            if self._timer is None:
                self._stable = {}
                self._timer = self.server.loop.call_later(EVALUATION_INTERVAL,
                                                          self._evaluate)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._promotion is not None and not self._promotion.done():
            self._promotion.cancel()
        self._promotion = None
        self._stable = {}

    def health(self) -> list[ServerHealth]:
        """Every server of the latest configuration, judged with the leader's
        replication progress. Raises NotLeader off the leader."""
        node = self.server.node
        if node is None or node.role is not Role.LEADER:
            raise NotLeader(node.leader_id if node is not None else None)
        config = self.configuration()
        now = self.server.loop.time()
        report = []
        for info in node.configuration.servers:
            contact: float | None
            if info.id == node.id:
                contact, last_term, last_index = 0.0, node.term, node.log.last_index
                status, healthy = "alive", True
            else:
                progress = node.progress.get(info.id)
                heard = progress.last_response if progress is not None else float("-inf")
                last_index = progress.match if progress is not None else 0
                last_term = node.log.term_at(last_index) or node.log.snapshot_term
                contact = now - heard if heard > float("-inf") else None
                status = ("alive" if contact is not None and contact <= MEMBER_FAILED_AFTER
                          else "failed")
                healthy = (status == "alive" and contact is not None
                           and contact <= config.last_contact_threshold
                           and last_term == node.term
                           and node.log.last_index - last_index <= config.max_trailing_logs)
            was = self._stable.get(info.id)
            if was is None or was[0] != healthy:
                self._stable[info.id] = (healthy, now)
            report.append(ServerHealth(info.id, info.address, info.voter, info.id == node.id,
                                       status, contact, last_term, last_index, healthy,
                                       self._stable[info.id][1]))
        return report

    def _evaluate(self) -> None:
        self._timer = None
        node = self.server.node
        if node is None or node.role is not Role.LEADER:
            return
        self._timer = self.server.loop.call_later(EVALUATION_INTERVAL, self._evaluate)
        health = self.health()
        if self._promotion is not None and not self._promotion.done():
            return
        stabilization = self.configuration().server_stabilization_time
        now = self.server.loop.time()
        for server in health:
            if (not server.voter and server.healthy
                    and now - server.stable_since >= stabilization):
                self._promotion = self.server.loop.create_task(self._promote(server.id))
                return

    async def _promote(self, server_id: str) -> None:
        try:
            await self.server.change_configuration(
                ConfigChange(ChangeKind.PROMOTE, server_id), timeout=PROMOTION_TIMEOUT)
        except (RequestFailed, ChangeNotAllowedYet, ConfigurationError, NotLeader,
                ProposalDropped):
            return  # the next evaluation tries again if it still should
