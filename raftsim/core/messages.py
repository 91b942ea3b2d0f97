"""Raft's messages, as plain immutable values.

Every message names its sender and receiver and carries the sender's term, as in
etcd-io/raft's ``raftpb.Message``. Requests and their responses are separate messages:
the core never waits for an answer, it reacts to whatever arrives.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields


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


_new = object.__new__
_SET_TERM, _SET_INDEX, _SET_KIND, _SET_DATA = (
    Entry.__dict__[name].__set__ for name in ("term", "index", "kind", "data"))


def command_entries(term: int, first_index: int, commands: Sequence[bytes]) -> list[Entry]:
    """COMMAND entries of ``term`` for ``commands``, at ``first_index`` on: the same as
    ``Entry(term, index, EntryKind.COMMAND, command)`` for each, built by setting the
    slots (as pickle does) instead of running the frozen dataclass's ``__init__``, whose
    ``object.__setattr__`` per field costs twice as much. A leader proposing one entry
    per client command builds one per command."""
    entries: list[Entry] = []
    append = entries.append
    command_kind = EntryKind.COMMAND
    for index, command in enumerate(commands, first_index):
        entry = _new(Entry)
        _SET_TERM(entry, term)
        _SET_INDEX(entry, index)
        _SET_KIND(entry, command_kind)
        _SET_DATA(entry, command)
        append(entry)
    return entries


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
    """One chunk of the leader's snapshot, for a follower whose next entry was compacted.

    A snapshot travels as bytes ``data`` at ``offset`` of the whole, ``done`` on the last
    chunk (hashicorp/raft streams it; etcd bounds every message by MaxSizePerMsg), so no
    frame is larger than a chunk however large the state machine grows. The follower
    keeps the chunks of one snapshot, identified by (last_included_index,
    last_included_term, term), and installs it when the ``done`` chunk completes it.
    A snapshot that fits one chunk is one message with offset 0 and ``done``.
    """

    term: int
    source: str
    target: str
    last_included_index: int
    last_included_term: int
    configuration: bytes
    data: bytes
    offset: int = 0
    done: bool = True


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """The follower's answer to one chunk.

    ``match_index`` at or past the snapshot's index: the follower has installed it (or
    already held everything it covers). Otherwise the answer is about the chunk at
    ``offset`` of snapshot ``snapshot_index``: ``next_offset`` is how many bytes of it the
    follower holds, where the leader goes on. ``next_offset`` below ``offset`` means the
    chunk did not follow what the follower holds (a lost chunk, or the follower lost its
    partial snapshot: 0), and the leader resends from ``next_offset``.
    """

    term: int
    source: str
    target: str
    match_index: int
    snapshot_index: int = 0
    offset: int = 0
    next_offset: int = 0


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
    """A state machine snapshot and the configuration that was current at its index.

    ``data`` of a snapshot a follower assembled from chunks is the bytearray it grew
    them into (joining them into bytes would copy the whole state at once); nothing
    changes it after."""

    index: int
    term: int
    configuration: bytes
    data: bytes | bytearray = field(default=b"", repr=False)


def _construct_through_slots(cls: type) -> None:
    """Give a frozen, slotted dataclass an ``__init__`` that sets each field through its
    slot's descriptor.

    dataclass's own ``__init__`` for a frozen class calls ``object.__setattr__`` per
    field, looked up anew each time: 0.84 µs for an eight-field message against 0.49 µs
    this way, and a simulation builds every message twice (the sender's core makes it,
    the receiver's decoder makes it again) and every entry on every follower. Same
    signature and defaults; the instances stay frozen (assignment still raises).
    """
    namespace: dict[str, object] = {}
    params: list[str] = []
    sets: list[str] = []
    for f in fields(cls):
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: a default_factory is not supported")
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        sets.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(sets) + "\n"
    exec(source, namespace)  # noqa: S102 -- generated from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]


for _cls in (Entry, *MESSAGE_TYPES, HardState, Snapshot):
    _construct_through_slots(_cls)
del _cls
