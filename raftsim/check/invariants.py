"""Raft's safety properties, checked after every record of a simulated run's trace.

:class:`InvariantChecker` listens to a cluster's :class:`~raftsim.sim.trace.TraceRecorder`
and, on each record, looks at the live state of the one server the record is about, and
only at what the record says changed: the entries an ``append`` names, the indexes a
``commit`` or ``apply`` newly covers, the log of a server that just became leader or just
restarted. Most records (messages sent, delivered, dropped) cost one dictionary lookup.

What it remembers across the whole run, crashes included, is the ground truth the
servers are compared with: the leader of each term, every (index, term) entry ever
appended anywhere and what it held, and the committed log, entry by entry, as the first
server to commit each index had it.

It never fires on a correct run. The properties are phrased so that what Raft allows is
allowed: a leader's uncommitted entries may be overwritten by a later leader, a
follower's commit index may lag, a follower may hold (and later lose) a stale copy of an
index whose committed entry it has not yet received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from raftsim.core.configuration import Configuration
from raftsim.core.messages import Entry, EntryKind
from raftsim.core.node import RaftNode
from raftsim.core.ready import Role
from raftsim.sim.cluster import Cluster
from raftsim.sim.trace import Record

__all__ = ["INVARIANTS", "InvariantChecker", "Violation"]

#: every invariant the checker knows, with the sentence it checks
INVARIANTS: dict[str, str] = {
    "election-safety": "at most one leader is elected in a term, across the whole run",
    "vote-once": "a server grants at most one vote in a term, across crashes and restarts "
                 "(paper §5.2: what makes Election Safety hold)",
    "leader-append-only": "a leader never overwrites or deletes entries in its log; it "
                          "only appends",
    "log-matching": "if two logs hold an entry with the same index and term, they hold the "
                    "same entry there and are identical in all entries before it",
    "leader-completeness": "a leader's log holds every entry committed before it was "
                           "elected",
    "state-machine-safety": "no two servers commit or apply different entries at one index",
    "durability": "a committed entry is never lost: a server never truncates an entry it "
                  "knows is committed, and finds every one of them in its log after a "
                  "crash and restart",
    "current-term-commit": "a leader advances its commit index by counting replicas only "
                           "to an entry of its own term (paper §5.4.2, Figure 8)",
    "single-uncommitted-config": "a log holds at most one configuration entry that is not "
                                 "yet committed, and a leader appends one only after "
                                 "committing an entry of its own term (so no configuration "
                                 "of an earlier term that it lacks can still commit)",
    "served-configuration": "every server serves, as its committed configuration, the "
                            "configuration entry committed at the index it reports",
    "acknowledged-writes": "every write acknowledged to a client is in the applied state, "
                           "and stays there",
    "fail-stop": "a server whose storage failed sends, appends, votes, commits and "
                 "applies nothing until it restarts (its memory is ahead of its disk: an "
                 "answer from it could acknowledge what a crash then loses)",
}


#: what a server stopped by a failed save must not do (the records that say it did);
#: sends are checked when the trace has them
_STOPPED_DOES_NOT = frozenset({"append", "truncate", "apply", "commit", "vote", "role",
                               "config", "config-committed"})


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: which, when (virtual seconds), why, and the trace record
    after which it was detected."""

    invariant: str
    t: float
    message: str
    record: Record

    def as_dict(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "t": self.t, "message": self.message,
                "record": self.record}


@dataclass(slots=True)
class _ServerView:
    """What the checker last saw of one server (reset by nothing: it spans crashes)."""

    #: commit index as of the last ``commit`` event (what it knew before the current step)
    commit: int = 0
    #: entries up to this index were compared with the committed log
    checked: int = 0
    #: commit index just before the last crash: what a restart must find again
    commit_before_crash: int = 0
    #: the term this server currently leads, and its last index while leading
    leading: int | None = None
    leader_last: int = 0
    #: applied index as of the last ``apply`` record
    applied: int = 0
    #: (snapshot index, entries) of its log when it crashed: a restart that finds the
    #: very same log needs no second look
    log_before_crash: tuple[int, list[Entry]] | None = None
    #: time of the storage failure that must have stopped it (None while it is sound)
    failed_at: float | None = None


@dataclass(slots=True)
class _EntryFacts:
    """What an (index, term) entry held where it was first seen."""

    kind: int
    data: bytes
    prev_term: int | None
    server: str


def _describe(entry: Entry) -> str:
    kind = EntryKind(entry.kind).name.lower()
    return f"({entry.index}, term {entry.term}, {kind} {_short(entry.data)})"


def _short(data: bytes) -> str:
    text = repr(bytes(data))
    return text if len(text) <= 60 else text[:57] + "..."


def _put_key_value(data: bytes) -> tuple[str, bytes] | None:
    """(key, value) of a KV put command, None for anything else."""
    puts = puts_of_command(data)
    return puts[0] if len(puts) == 1 else None


def commands_of(data: bytes) -> list[Any]:
    """The KV commands an entry holds (a batch holds several), decoded."""
    try:
        op = msgpack.unpackb(data, raw=False)
    except Exception:
        return []
    if isinstance(op, list) and len(op) == 2 and op[0] == "batch" and isinstance(op[1], list):
        return list(op[1])
    return [op]


def put_of(command: Any) -> tuple[str, bytes] | None:
    if (isinstance(command, list) and len(command) == 4 and command[0] == "put"
            and isinstance(command[1], str) and isinstance(command[2], bytes)):
        return command[1], command[2]
    return None


def puts_of_command(data: bytes) -> list[tuple[str, bytes]]:
    """The (key, value) of every put in a KV command."""
    return [put for put in map(put_of, commands_of(data)) if put is not None]


class InvariantChecker:
    """Checks ``cluster`` after every trace record from now on.

    ``violations`` lists what broke, in order (each distinct problem once); ``first`` is
    the earliest. ``on_violation`` is called with each new violation as it is found
    (the fuzzer stops the run there). Call :meth:`finish` at the end of a run for the
    checks that need the whole run. Tell the checker about acknowledged client writes
    with :meth:`write_acknowledged`.
    """

    def __init__(self, cluster: Cluster, *,
                 on_violation: Callable[[Violation], None] | None = None) -> None:
        if cluster.recorder is None:
            raise ValueError("the invariant checker reads the trace: build the cluster "
                             "with trace=True")
        self.cluster = cluster
        self.on_violation = on_violation
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, object]] = set()
        self._views: dict[str, _ServerView] = {}
        #: term -> the server elected leader in it
        self._leaders: dict[int, str] = {}
        #: (voter, term) -> the candidate it voted for
        self._votes: dict[tuple[str, int], str] = {}
        #: (index, term) -> what that entry held, wherever it was first seen
        self._entries: dict[tuple[int, int], _EntryFacts] = {}
        #: the committed log: _committed[i] is the entry committed at index i
        self._committed: list[Entry | None] = [None]
        #: virtual time at which each index was first committed (parallel to _committed)
        self._commit_times: list[float] = [0.0]
        #: the term in which each index was first committed (the committer's term)
        self._commit_terms: list[int] = [0]
        #: indexes of committed configuration entries, ascending
        self._committed_configs: list[int] = []
        #: decoded committed configurations, by index (with the entry they came from)
        self._configurations: dict[int, tuple[Entry, Configuration]] = {}
        #: (key, value) of committed puts -> index (for acknowledged writes)
        self._puts: dict[tuple[str, bytes], int] = {}
        #: acknowledged writes: (key, value) -> index they were found at
        self._acknowledged: dict[tuple[str, bytes], int] = {}
        self._record: Record = {}
        #: servers stopped by a failed save (until they restart)
        self._failed: set[str] = set()
        self._handlers: dict[str, Callable[[str, Record], None]] = {
            "append": self._on_append,
            "truncate": self._on_truncate,
            "apply": self._on_apply,
            "commit": self._on_commit,
            "config": self._on_config,
            "config-committed": self._on_commit,
            "role": self._on_role,
            "vote": self._on_vote,
            "start": self._on_start,
            "crash": self._on_crash,
            "snapshot-installed": self._on_snapshot_installed,
            "storage-failure": self._on_storage_failure,
            "send": self._on_send,
        }
        # Servers started before we subscribed (all of them, usually): take them as
        # they are now, as if they had just started.
        for sid in cluster.ids:
            self._on_start(sid, {"t": cluster.now, "server": sid, "kind": "attach"})
        cluster.recorder.listeners.append(self.on_record)

    # ------------------------------------------------------------------ results

    @property
    def first(self) -> Violation | None:
        return self.violations[0] if self.violations else None

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def commit_index(self) -> int:
        """The highest index any server has committed so far."""
        return len(self._committed) - 1

    def committed_entry(self, index: int) -> Entry | None:
        return self._committed[index] if 0 < index < len(self._committed) else None

    def committed_log(self) -> list[tuple[Entry | None, float]]:
        """The committed log so far, index 1 on: (entry, time first committed); an
        entry is None where only a snapshot ever covered it."""
        return list(zip(self._committed[1:], self._commit_times[1:], strict=True))

    def _now(self) -> float:
        return float(self.cluster.now)  # exact: records round to microseconds

    def detach(self) -> None:
        recorder = self.cluster.recorder
        if recorder is not None and self.on_record in recorder.listeners:
            recorder.listeners.remove(self.on_record)

    # ------------------------------------------------------------------ input

    def on_record(self, record: Record) -> None:
        handler = self._handlers.get(record["kind"])
        if handler is None:
            return
        sid = record.get("server")
        if sid is None:
            return
        self._record = record
        if sid in self._failed and record["kind"] in _STOPPED_DOES_NOT:
            self._on_send(sid, record)
        handler(sid, record)

    def write_acknowledged(self, key: str, value: bytes) -> None:
        """A client was told its put of ``value`` to ``key`` succeeded (committed and
        applied). Values must be unique per write for this to mean anything."""
        index = self._puts.get((key, value))
        if index is None:
            self._violate("acknowledged-writes", ("ack", key, value),
                          f"a client was told its write of {_short(value)} to {key!r} "
                          "succeeded, but no server has committed it")
            return
        self._acknowledged[(key, value)] = index

    def finish(self) -> list[Violation]:
        """End-of-run checks: every acknowledged write is still the committed entry at
        its index, and every running server's log agrees with the committed log up to
        its commit index. Returns ``violations``."""
        self._record = {"t": round(self.cluster.now, 6), "server": None, "term": 0,
                        "kind": "end"}
        for (key, value), index in self._acknowledged.items():
            entry = self._committed[index] if index < len(self._committed) else None
            if entry is None or (key, value) not in puts_of_command(entry.data):
                self._violate("acknowledged-writes", ("lost", key, value),
                              f"the acknowledged write of {_short(value)} to {key!r} at "
                              f"index {index} is no longer the committed entry there")
        for sid in self.cluster.ids:
            node = self.cluster.servers[sid].node
            if node is not None:
                self._check_commit(sid, node)
        return self.violations

    # ------------------------------------------------------------------ reporting

    def _violate(self, invariant: str, key: object, message: str) -> None:
        if (invariant, key) in self._seen:
            return
        self._seen.add((invariant, key))
        record = self._record
        violation = Violation(invariant, float(record.get("t", self.cluster.now)), message,
                              record)
        self.violations.append(violation)
        if self.on_violation is not None:
            self.on_violation(violation)

    def _view(self, sid: str) -> _ServerView:
        view = self._views.get(sid)
        if view is None:
            view = self._views[sid] = _ServerView()
        return view

    def _leading(self, sid: str, node: RaftNode) -> int | None:
        """The term ``sid`` leads in now. Records of one step come out after the step,
        so a leader that stepped down in it is already a follower when we look."""
        view = self._view(sid)
        if view.leading is not None and (node.role is not Role.LEADER
                                         or node.term != view.leading):
            view.leading = None
        return view.leading

    def _node(self, sid: str) -> RaftNode | None:
        server = self.cluster.servers.get(sid)
        return server.node if server is not None else None

    # ------------------------------------------------------------------ handlers

    def _on_append(self, sid: str, record: Record) -> None:
        node = self._node(sid)
        if node is None:
            return
        first, last = int(record["from"]), int(record["to"])
        view = self._view(sid)
        if self._leading(sid, node) is not None:
            if first <= view.leader_last:
                self._violate("leader-append-only", ("overwrite", sid, view.leading, first),
                              f"{sid}, leader of term {view.leading}, rewrote its log from "
                              f"index {first} (its log ended at {view.leader_last})")
            view.leader_last = max(view.leader_last, last)
        self._check_entries(sid, node, first, last)

    def _on_truncate(self, sid: str, record: Record) -> None:
        index = int(record["index"])
        view = self._view(sid)
        node = self._node(sid)
        if node is not None and self._leading(sid, node) is not None:
            self._violate("leader-append-only", ("truncate", sid, view.leading, index),
                          f"{sid}, leader of term {view.leading}, truncated its log from "
                          f"index {index}")
        if index <= view.commit:
            self._violate("durability", ("truncate", sid, index),
                          f"{sid} truncated its log from index {index}, but had committed "
                          f"up to index {view.commit}")

    def _on_apply(self, sid: str, record: Record) -> None:
        node = self._node(sid)
        if node is None:
            return
        self._check_commit(sid, node)
        first, last = int(record["from"]), int(record["to"])
        committed = self._committed
        for entry in node.log.slice(first, last + 1):
            truth = committed[entry.index] if entry.index < len(committed) else None
            if truth is None:
                self._violate("state-machine-safety", ("uncommitted", sid, entry.index),
                              f"{sid} applied {_describe(entry)}, which no server has "
                              "committed")
            elif truth is not entry and (truth.term != entry.term or truth.data != entry.data
                                         or truth.kind != entry.kind):
                self._violate("state-machine-safety", ("apply", entry.index),
                              f"{sid} applied {_describe(entry)} at index {entry.index}, "
                              f"where {_describe(truth)} was committed")
        view = self._view(sid)
        view.applied = max(view.applied, last)

    def _on_commit(self, sid: str, record: Record) -> None:
        node = self._node(sid)
        if node is None:
            return
        view = self._view(sid)
        if self._leading(sid, node) is not None and record["kind"] == "commit":
            index = int(record["index"])
            term = node.log.term_at(index)
            if term is not None and term != view.leading:
                self._violate("current-term-commit", (sid, view.leading, index),
                              f"{sid}, leader of term {view.leading}, advanced its commit "
                              f"index to {index}, an entry of term {term}, by counting "
                              "replicas")
        self._check_commit(sid, node)
        if record["kind"] == "commit":
            view.commit = max(view.commit, node.commit_index)
        self._check_served_configuration(sid, node)

    def _on_config(self, sid: str, record: Record) -> None:
        node = self._node(sid)
        if node is None:
            return
        self._check_uncommitted_configs(sid, node)
        view = self._view(sid)
        index = int(record["index"])
        if (self._leading(sid, node) is not None
                and node.log.term_at(index) == view.leading):
            commit_term = node.log.term_at(node.commit_index)
            if commit_term != view.leading:
                self._violate("single-uncommitted-config", ("early", sid, index),
                              f"{sid}, leader of term {view.leading}, appended a "
                              f"configuration entry at index {index} before committing "
                              f"any entry of its term (its commit index {node.commit_index}"
                              f" holds an entry of term {commit_term}): a configuration "
                              "of an earlier term it does not hold may still commit")

    def _on_vote(self, sid: str, record: Record) -> None:
        if not record.get("granted") or record.get("pre_vote"):
            return
        term = int(record["term"])
        candidate = str(record.get("candidate"))
        earlier = self._votes.setdefault((sid, term), candidate)
        if earlier != candidate:
            self._violate("vote-once", (sid, term),
                          f"{sid} voted for {candidate} in term {term}, but had already "
                          f"voted for {earlier} in that term")

    def _on_role(self, sid: str, record: Record) -> None:
        view = self._view(sid)
        if record.get("role") != Role.LEADER.value:
            view.leading = None
            return
        node = self._node(sid)
        if node is None:
            return
        term = int(record["term"])
        other = self._leaders.get(term)
        if other is not None and other != sid:
            self._violate("election-safety", ("term", term),
                          f"{sid} became leader of term {term}, but {other} was already "
                          "elected leader of that term")
        else:
            self._leaders[term] = sid
        view.leading = term
        view.leader_last = node.log.last_index
        self._check_leader_completeness(sid, node, term)

    def _on_start(self, sid: str, record: Record) -> None:
        node = self._node(sid)
        if node is None:
            return
        view = self._view(sid)
        view.leading = None
        view.failed_at = None
        self._failed.discard(sid)
        self._record = record
        log = node.log
        before, view.log_before_crash = view.log_before_crash, None
        if (before is not None and before[0] == log.snapshot_index
                and before[1] == log.slice(log.first_index, log.last_index + 1)):
            # storage gave back exactly the log it had: checked already, entry by entry
            view.checked = min(view.checked, node.commit_index)
            self._check_commit(sid, node)
            view.commit = node.commit_index
            view.applied = node.applied
            self._check_served_configuration(sid, node)
            return
        # durability: everything it had committed before the crash is still there
        lost = None
        for index in range(log.snapshot_index + 1, view.commit_before_crash + 1):
            truth = self._committed[index] if index < len(self._committed) else None
            term = log.term_at(index)
            if truth is not None and term != truth.term:
                lost = (index, truth, term)
                break
        if lost is not None:
            index, truth, term = lost
            found = "nothing" if term is None else f"an entry of term {term}"
            self._violate("durability", ("restart", sid, index),
                          f"{sid} restarted with {found} at index {index}, but had "
                          f"committed {_describe(truth)} before it crashed")
        self._check_entries(sid, node, log.first_index, log.last_index)
        # its commit index may be lower than before the crash (it is not durable in
        # every design); entries up to it must still agree with the committed log
        view.checked = min(view.checked, node.commit_index)
        self._check_commit(sid, node)
        view.commit = node.commit_index
        view.applied = node.applied
        self._check_uncommitted_configs(sid, node)
        self._check_served_configuration(sid, node)

    def _on_storage_failure(self, sid: str, record: Record) -> None:
        """A failed save stops the server like a crash: what it committed before must be
        there when it restarts from its disk."""
        self._on_crash(sid, record)
        view = self._view(sid)
        if view.failed_at is None:
            view.failed_at = float(record.get("t", self._now()))
        self._failed.add(sid)

    def _on_send(self, sid: str, record: Record) -> None:
        view = self._views.get(sid)
        if view is None or view.failed_at is None:
            return
        if record["kind"] == "send":
            did = f"sent {record.get('msg', 'a message')} to {record.get('to')}"
        else:
            did = f"recorded {record['kind']!r}"
        self._violate("fail-stop", (sid, view.failed_at),
                      f"{sid} {did} after its storage failed at t={view.failed_at:g} "
                      "(it must stop until it restarts from its disk)")

    def _on_crash(self, sid: str, record: Record) -> None:
        view = self._view(sid)
        view.leading = None
        view.commit_before_crash = max(view.commit_before_crash, view.checked)
        node = self._node(sid)
        if node is not None:
            log = node.log
            view.log_before_crash = (log.snapshot_index,
                                     log.slice(log.first_index, log.last_index + 1))

    def _on_snapshot_installed(self, sid: str, record: Record) -> None:
        node = self._node(sid)
        if node is None:
            return
        log = node.log
        index = log.snapshot_index
        truth = self._committed[index] if index < len(self._committed) else None
        if truth is not None and truth.term != log.snapshot_term:
            self._violate("state-machine-safety", ("snapshot", sid, index),
                          f"{sid} installed a snapshot ending at index {index} of term "
                          f"{log.snapshot_term}, where {_describe(truth)} was committed")
        view = self._view(sid)
        view.applied = max(view.applied, index)
        self._check_commit(sid, node)
        view.commit = max(view.commit, node.commit_index)
        self._check_served_configuration(sid, node)

    # ------------------------------------------------------------------ checks

    def _check_entries(self, sid: str, node: RaftNode, first: int, last: int) -> None:
        """Log Matching for the entries first..last of ``sid``'s log: each (index, term)
        holds what it held everywhere else, after the same previous term."""
        log = node.log
        facts = self._entries
        prev_term = log.term_at(first - 1)
        for entry in log.slice(first, last + 1):
            key = (entry.index, entry.term)
            known = facts.get(key)
            if known is None:
                facts[key] = _EntryFacts(entry.kind, entry.data, prev_term, sid)
            elif known.data != entry.data or known.kind != entry.kind:
                self._violate("log-matching", ("content",) + key,
                              f"{sid} holds {_describe(entry)}, but {known.server} holds a "
                              f"different entry with index {entry.index} and term "
                              f"{entry.term} ({EntryKind(known.kind).name.lower()} "
                              f"{_short(known.data)})")
            elif (known.prev_term is not None and prev_term is not None
                  and known.prev_term != prev_term):
                self._violate("log-matching", ("prefix",) + key,
                              f"{sid} holds {_describe(entry)} after an entry of term "
                              f"{prev_term}, but {known.server} holds it after an entry of "
                              f"term {known.prev_term}: the logs differ before it")
            elif known.prev_term is None:
                known.prev_term = prev_term
            prev_term = entry.term

    def _check_commit(self, sid: str, node: RaftNode) -> None:
        """Entries newly committed on ``sid`` agree with the committed log (or extend it)."""
        view = self._view(sid)
        commit = node.commit_index
        if commit <= view.checked:
            return
        log = node.log
        committed = self._committed
        start = max(view.checked + 1, log.first_index)
        for entry in log.slice(start, commit + 1):
            index = entry.index
            if index < len(committed):
                truth = committed[index]
                if truth is None:
                    committed[index] = entry
                    self._commit_times[index] = self._now()
                    self._commit_terms[index] = node.term
                    self._note_committed(entry)
                elif truth.term != entry.term or truth.data != entry.data:
                    self._violate("state-machine-safety", ("commit", index),
                                  f"{sid} committed {_describe(entry)} at index {index}, "
                                  f"where {_describe(truth)} was already committed")
            else:
                while len(committed) < index:
                    committed.append(None)  # covered by a snapshot we never saw
                    self._commit_times.append(self._now())
                    self._commit_terms.append(node.term)
                committed.append(entry)
                self._commit_times.append(self._now())
                self._commit_terms.append(node.term)
                self._note_committed(entry)
        view.checked = commit

    def _note_committed(self, entry: Entry) -> None:
        if entry.kind == EntryKind.CONFIGURATION:
            self._committed_configs.append(entry.index)
            self._committed_configs.sort()
        elif entry.kind == EntryKind.COMMAND:
            for put in puts_of_command(entry.data):
                self._puts.setdefault(put, entry.index)

    def _check_leader_completeness(self, sid: str, node: RaftNode, term: int) -> None:
        """Entries committed in terms before ``term`` are in the new leader's log. (A
        leader of a stale term -- one whose votes arrived late, say after a pause --
        need not hold what a later term committed.)"""
        log = node.log
        committed = self._committed
        commit_terms = self._commit_terms
        upto = len(committed) - 1
        while upto > 0 and commit_terms[upto] >= term:
            upto -= 1
        if upto <= 0:
            return
        if log.last_index < upto:
            truth = committed[upto]
            self._violate("leader-completeness", (sid, term),
                          f"{sid} became leader of term {term} with a log ending at index "
                          f"{log.last_index}, but index {upto} was already committed"
                          + (f" ({_describe(truth)})" if truth is not None else ""))
            return
        if log.snapshot_index and log.snapshot_index < len(committed):
            truth = committed[log.snapshot_index]
            if truth is not None and truth.term != log.snapshot_term:
                self._violate("leader-completeness", (sid, term),
                              f"{sid} became leader of term {term} with a snapshot ending "
                              f"at index {log.snapshot_index} of term {log.snapshot_term}, "
                              f"but {_describe(truth)} was committed there")
                return
        for entry in log.slice(log.first_index, upto + 1):
            truth = committed[entry.index]
            if truth is not None and truth.term != entry.term:
                self._violate("leader-completeness", (sid, term),
                              f"{sid} became leader of term {term} holding "
                              f"{_describe(entry)}, but {_describe(truth)} was committed "
                              f"at index {entry.index}")
                return

    def _check_uncommitted_configs(self, sid: str, node: RaftNode) -> None:
        """At most one configuration entry past the highest committed index in the run.
        (A server's own commit index can lag behind what the leader committed, so the
        run's commit point is the one that cannot be wrong about a correct cluster.)"""
        configs = node._configs
        committed_upto = len(self._committed) - 1
        pending = [index for index, _ in configs if index > committed_upto]
        if len(pending) > 1:
            self._violate("single-uncommitted-config", (sid, tuple(pending)),
                          f"{sid}'s log holds {len(pending)} uncommitted configuration "
                          f"entries, at indexes {', '.join(map(str, pending))}")

    def _check_served_configuration(self, sid: str, node: RaftNode) -> None:
        index, config = node.committed_configuration
        if index == 0:
            return  # a server that has never held a configuration serves none
        truth = self._committed[index] if index < len(self._committed) else None
        if truth is None:
            if index > len(self._committed) - 1:
                self._violate("served-configuration", (sid, index),
                              f"{sid} serves the configuration at index {index} as "
                              "committed, but no server has committed that index")
            return
        if truth.kind != EntryKind.CONFIGURATION:
            self._violate("served-configuration", (sid, index),
                          f"{sid} serves a configuration from index {index}, but the entry "
                          f"committed there is {_describe(truth)}")
            return
        expected = self._configurations.get(index)
        if expected is None or expected[0] is not truth:
            expected = (truth, Configuration.decode(truth.data))
            self._configurations[index] = expected
        if expected[1] != config:
            self._violate("served-configuration", (sid, index),
                          f"{sid} serves voters {list(config.voters)} as the configuration "
                          f"committed at index {index}, but the entry committed there has "
                          f"voters {list(expected[1].voters)}")
            return
        # ... and it is the newest configuration committed at or below its commit index
        newest = 0
        for cfg_index in reversed(self._committed_configs):
            if cfg_index <= node.commit_index:
                newest = cfg_index
                break
        if newest > index:
            self._violate("served-configuration", (sid, index, newest),
                          f"{sid} serves the configuration committed at index {index}, but "
                          f"a newer one was committed at index {newest}, within its commit "
                          f"index {node.commit_index}")

