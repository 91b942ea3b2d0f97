"""Raft's messages, as plain immutable values.

Every message names its sender and receiver and carries the sender's term, as in
etcd-io/raft's ``raftpb.Message``. Requests and their responses are separate messages:
the core never waits for an answer, it reacts to whatever arrives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EntryKind(enum.IntEnum):
    """What a log entry holds."""

    COMMAND = 0  #: a client command for the state machine (opaque bytes)
    NOOP = 1  #: appended by a new leader at the start of its term
    CONFIGURATION = 2  #: a whole cluster configuration (see configuration.py)


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is opaque to the core except for configurations."""

    term: int
    index: int
    kind: EntryKind = EntryKind.COMMAND
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Candidate asks for a vote (``pre_vote``: asks whether it *would* get one, §9.6).

    ``transfer`` marks an election started by TimeoutNow: receivers grant it even though
    they heard from a leader recently (dissertation §3.10).
    """

    term: int
    source: str
    target: str
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    term: int
    source: str
    target: str
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader replicates entries (empty ``entries`` is a heartbeat).

    ``context`` is non-zero when the leader piggybacks a ReadIndex confirmation round
    on this message; the follower echoes it.
    """

    term: int
    source: str
    target: str
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    leader_commit: int
    context: int = 0


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """Follower's answer. On rejection, ``conflict_term``/``conflict_index`` let the
    leader skip a whole term of mismatching entries at once (dissertation §5.3 /
    etcd's fast back-off)."""

    term: int
    source: str
    target: str
    success: bool
    match_index: int
    conflict_term: int = 0
    conflict_index: int = 0
    context: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader sends its whole snapshot to a follower whose next entry was compacted."""

    term: int
    source: str
    target: str
    last_included_index: int
    last_included_term: int
    configuration: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    term: int
    source: str
    target: str
    match_index: int


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: the target starts an election at once (§3.10)."""

    term: int
    source: str
    target: str


Message = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
)

#: Every message type, in a fixed order: the wire layer's method names are these names.
MESSAGE_TYPES: tuple[type, ...] = (
    RequestVote,
    RequestVoteResponse,
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    TimeoutNow,
)


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on stable storage before the node answers or sends anything."""

    term: int = 0
    voted_for: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state machine snapshot and the configuration that was current at its index."""

    index: int
    term: int
    configuration: bytes
    data: bytes = field(default=b"", repr=False)
