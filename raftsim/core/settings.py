"""A node's tunables: timing, the optional protocol extensions, and bug switches."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftsim.core.bugs import validate_bugs

#: hashicorp/raft's TrailingLogs default: what a live server keeps before a snapshot
DEFAULT_TRAILING_LOGS = 10240


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
    #: entries a compaction keeps at and before its snapshot index, so a follower that
    #: is a little behind catches up from the log instead of a whole snapshot
    #: (hashicorp/raft's TrailingLogs). 0 in the simulator, so small scenarios still
    #: show InstallSnapshot; the live agent uses DEFAULT_TRAILING_LOGS.
    trailing_logs: int = 0
    #: entry bytes in one AppendEntries (etcd's MaxSizePerMsg); a message always carries
    #: at least one entry, so a single larger entry still travels, alone
    max_bytes_per_message: int = 1024 * 1024
    #: entry and snapshot bytes sent to one follower and not yet acknowledged (etcd's
    #: MaxInflightBytes): replication to a slow follower waits instead of piling up
    #: in the transport's send buffer
    max_inflight_bytes: int = 8 * 1024 * 1024
    #: a snapshot travels in InstallSnapshot chunks of this many bytes
    snapshot_chunk_bytes: int = 256 * 1024
    #: command bytes a leader holds uncommitted before it refuses proposals (etcd's
    #: MaxUncommittedEntriesSize); 0: no limit. A proposal is always accepted when
    #: nothing is uncommitted, so one command larger than the limit still commits.
    max_uncommitted_bytes: int = 64 * 1024 * 1024
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
        if self.trailing_logs < 0:
            raise ValueError(f"trailing_logs must be >= 0, got {self.trailing_logs}")
        for name in ("max_bytes_per_message", "max_inflight_bytes", "snapshot_chunk_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_uncommitted_bytes < 0:
            raise ValueError("max_uncommitted_bytes must be >= 0 (0: no limit), got "
                             f"{self.max_uncommitted_bytes}")
        object.__setattr__(self, "bugs", validate_bugs(self.bugs))
