"""A node's tunables: timing, the optional protocol extensions, and bug switches."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftsim.core.bugs import validate_bugs


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Times are seconds in whatever time base the caller hands in as ``now``.

    Defaults follow etcd's ratio: heartbeats ten times faster than elections, and an
    election timeout drawn from [min, max) so split votes resolve (paper §5.2).
    """

    heartbeat_interval: float = 0.05
    election_timeout_min: float = 0.15
    election_timeout_max: float = 0.30
    #: dissertation §9.6: ask for votes before raising the term
    pre_vote: bool = True
    #: a leader that hears from no quorum for an election timeout steps down
    check_quorum: bool = True
    max_entries_per_message: int = 64
    #: AppendEntries messages in flight to one follower while replicating
    max_inflight: int = 16
    #: dissertation §6.4.1: answer reads at once while a lease holds -- an election
    #: timeout (by this server's clock) from the sending of a heartbeat round that a
    #: quorum acknowledged (needs CheckQuorum, as etcd's). Safe only while clocks run
    #: at the same rate.
    lease_reads: bool = False
    bugs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.heartbeat_interval > 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {self.heartbeat_interval}")
        if not self.election_timeout_min > self.heartbeat_interval:
            raise ValueError(
                "election_timeout_min must be greater than heartbeat_interval, got "
                f"{self.election_timeout_min} <= {self.heartbeat_interval}"
            )
        if not self.election_timeout_max > self.election_timeout_min:
            raise ValueError(
                "election_timeout_max must be greater than election_timeout_min, got "
                f"{self.election_timeout_max} <= {self.election_timeout_min}"
            )
        if self.max_entries_per_message < 1:
            raise ValueError("max_entries_per_message must be at least 1")
        if self.max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        object.__setattr__(self, "bugs", validate_bugs(self.bugs))
