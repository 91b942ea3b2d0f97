"""A scenario as plain data: the cluster to build and the ordered steps to play on it.

The loader (``load.py``) turns a TOML file into these values and rejects anything it
cannot run; the runner (``runner.py``) plays them. Server references stay unresolved
strings here (``"s1"``, ``"leader"``, ``"follower"``, ``"$name"``): which server
``"leader"`` means is only known when the step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: a server reference: an id, "leader", "follower" or "$name" (bound by an earlier `as`),
#: or a set of servers "voters except $old, s2" (see SET_BASES)
Selector = str

#: what a set of servers starts from: a set reference is "<base>" or
#: "<base> except <ref>, <ref>..."; where one server is wanted, it means the first member
#: in id order
SET_BASES = ("voters", "followers", "servers")

#: words that refer to a server by its role, never ids
ROLE_WORDS = ("leader", "follower")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    servers: tuple[str, ...] = ("s1", "s2", "s3", "s4", "s5")
    nonvoters: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)
    heartbeat: float = 0.05
    election_timeout: tuple[float, float] = (0.15, 0.30)
    latency: tuple[float, float] = (0.001, 0.005)
    loss: float = 0.0
    duplication: float = 0.0
    reorder: float = 0.0
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_threshold: int = 0
    max_entries_per_message: int = 64
    #: each server's clock runs at a rate within 1 +- clock_drift (from the seed)
    clock_drift: float = 0.0
    #: leader lease reads (dissertation §6.4.1), safe only while clocks agree
    lease_reads: bool = False
    #: "memory" (a disk that never fails) or "crashdisk" (a write cache, and the disk
    #: faults of the disk steps)
    disk: str = "memory"


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """What the entry at ``index`` must be: its term and, optionally, its kind and the
    key and value a KV command carries."""

    index: int
    term: int | None = None
    kind: str | None = None
    key: str | None = None
    value: str | None = None


#: a bound value compared with a number: (operator, number or "$name")
Comparison = tuple[str, "int | float | str"]


@dataclass(frozen=True, slots=True)
class Condition:
    """What must be true of the cluster: the table of an ``expect`` or a ``when``.

    Per-server checks apply to the servers of ``on`` (default: every running server).
    A field left None is not checked.
    """

    leader: Selector | None = None
    leader_not: Selector | None = None
    on: tuple[Selector, ...] | None = None
    role: str | None = None
    term: int | str | None = None
    term_at_least: int | str | None = None
    term_at_most: int | str | None = None
    commit_index: int | str | None = None
    commit_at_least: int | str | None = None
    commit_below: int | str | None = None
    applied: int | str | None = None
    applied_at_least: int | str | None = None
    voters: tuple[Selector, ...] | None = None
    nonvoters: tuple[Selector, ...] | None = None
    kv: dict[str, str] | None = None
    kv_missing: tuple[str, ...] | None = None
    logs_match: bool | None = None
    entry: EntryCheck | None = None

    @property
    def needs_api(self) -> bool:
        """Configurations are checked as the operator API serves them."""
        return self.voters is not None or self.nonvoters is not None


@dataclass(frozen=True, slots=True)
class Timing:
    """When a step runs: at an absolute time, after a delay, or once ``when`` holds
    (giving up after ``within`` seconds). All None: right after the previous step."""

    at: float | None = None
    after: float | None = None
    when: Condition | None = None
    within: float = 10.0


# ---------------------------------------------------------------------- actions

@dataclass(frozen=True, slots=True)
class ServerFault:
    """crash, restart, pause, resume or isolate one server."""

    fault: str
    target: Selector


@dataclass(frozen=True, slots=True)
class Partition:
    groups: tuple[tuple[Selector, ...], ...]


@dataclass(frozen=True, slots=True)
class Cut:
    source: Selector
    target: Selector


@dataclass(frozen=True, slots=True)
class Heal:
    pass


@dataclass(frozen=True, slots=True)
class NetworkSetting:
    """loss, duplication, reorder (a probability) or latency (a (min, max) pair)."""

    name: str
    value: float | tuple[float, float]


@dataclass(frozen=True, slots=True)
class Wait:
    """A step with only a time: it waits (for ``at``, ``after`` or ``when``)."""


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Expect:
    condition: Condition
    eventually: float | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What an API answer must look like: the status, and optionally its JSON (a
    partial match) or its exact text."""

    status: int = 200
    #: every status accepted (``status = [200, 500]``); ``status`` is the first
    statuses: tuple[int, ...] = (200,)
    json: Any = None
    has_json: bool = False
    text: str | None = None
    #: JSON path -> (operator, number or "$name"): ``compare = {Index = "> $before"}``
    compare: tuple[tuple[str, Comparison], ...] = ()
    #: name -> JSON path: ``keep = {before = "Index"}`` binds $before to the answer's value
    keep: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request through the API: ``api``, or a shorthand (write, read, delete,
    add, remove, promote, transfer) that builds the request when the step runs.

    ``via`` is the server asked; ``subject`` is the server a membership shorthand is
    about; ``key``/``value`` are the KV shorthands'. ``method``/``path``/``body``/
    ``headers`` are ``api``'s own; ``background`` lets later steps run while it waits.
    """

    kind: str
    via: Selector = "leader"
    answer: Answer = field(default_factory=Answer)
    background: bool = False
    subject: Selector | None = None
    key: str | None = None
    value: str | None = None
    stale: bool = False
    voter: bool = True
    by: str = "id"
    method: str = "GET"
    path: str = ""
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DiskFault:
    """A fault of one server's simulated disk: fail_fsync, disk_full, torn_write,
    corrupt, or slow_disk (every save takes ``seconds``; 0 ends it)."""

    fault: str
    target: Selector
    seconds: float = 0.0


Action = (ServerFault | Partition | Cut | Heal | NetworkSetting | Wait | Say | Expect
          | Request | DiskFault)


@dataclass(frozen=True, slots=True)
class Step:
    number: int
    kind: str
    action: Action
    timing: Timing = field(default_factory=Timing)
    bind: str | None = None
    #: ``as = {old = "leader", buddy = "follower"}``: names bound to servers when the step
    #: runs, before its action
    bind_servers: tuple[tuple[str, Selector], ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    path: Path
    title: str
    description: str
    seed: int
    bugs: tuple[str, ...]
    cluster: ClusterSpec
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def all_servers(self) -> tuple[str, ...]:
        """Every server the run will have: the cluster's, then those ``add`` starts."""
        ids = list(self.cluster.servers)
        for step in self.steps:
            action = step.action
            if (isinstance(action, Request) and action.kind == "add"
                    and action.subject is not None and action.subject not in ids):
                ids.append(action.subject)
        return tuple(ids)
