"""Checking a :class:`Condition` against a running cluster, and saying in plain words what
was expected and what was found.

Server references are resolved by the caller (``resolve``), at the moment of the check:
"leader" is whoever leads then. Configurations are judged as the operator API serves
them (each server's own committed view, ``?stale``); the caller fetches those answers
(``configs``) or, while polling, lets the check read the same committed configuration
straight from the node, to avoid flooding the trace with requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgpack

from raftsim.core.messages import Entry, EntryKind
from raftsim.scenario.model import Condition, EntryCheck
from raftsim.sim.cluster import Cluster

#: a server's configuration as the API served it: (voters, nonvoters), or why not
ServedConfiguration = tuple[tuple[str, ...], tuple[str, ...]] | str
Resolve = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Mismatch:
    key: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.key}: expected {self.expected}, actual {self.actual}"


def node_configuration(cluster: Cluster, sid: str) -> ServedConfiguration:
    """What ``GET /v1/operator/raft/configuration?stale`` on ``sid`` would serve."""
    server = cluster.servers[sid]
    if server.node is None:
        return "not running"
    _, config = server.node.committed_configuration
    return (tuple(s.id for s in config.servers if s.voter),
            tuple(s.id for s in config.servers if not s.voter))


def _names(ids: tuple[str, ...] | list[str]) -> str:
    return ", ".join(ids) if ids else "(none)"


class ConditionCheck:
    """One evaluation of one condition: ``mismatches()`` and ``describe()``."""

    def __init__(self, condition: Condition, cluster: Cluster, resolve: Resolve,
                 configs: dict[str, ServedConfiguration] | None = None) -> None:
        self.condition = condition
        self.cluster = cluster
        self.resolve = resolve
        self.configs = configs

    # -------------------------------------------------------------- servers checked

    def _on(self) -> tuple[list[str], str | None]:
        """The servers per-server checks look at, and a problem resolving them."""
        if self.condition.on is None:
            return self.cluster.running(), None
        ids: list[str] = []
        for ref in self.condition.on:
            sid = self.resolve(ref)
            if sid is None:
                return [], f"{ref} resolves to no server (there is no {ref} now)"
            if sid not in ids:
                ids.append(sid)
        return ids, None

    def _on_text(self) -> str:
        if self.condition.on is None:
            return "every running server"
        ids, problem = self._on()
        return _names(ids) if problem is None else "+".join(self.condition.on)

    def _ref(self, ref: str) -> str:
        if ref in ("any", "none"):
            return ref
        return self.resolve(ref) or f"(no {ref})"

    # -------------------------------------------------------------- evaluation

    def holds(self) -> bool:
        return not self.mismatches()

    def mismatches(self) -> list[Mismatch]:
        c = self.condition
        out: list[Mismatch] = []
        leader = self.cluster.leader()
        actual_leader = leader or "none"
        if c.leader is not None:
            expected = self._ref(c.leader)
            ok = (leader is not None if expected == "any"
                  else leader is None if expected == "none" else leader == expected)
            if not ok:
                out.append(Mismatch("leader", expected, actual_leader))
        if c.leader_not is not None:
            unwanted = self._ref(c.leader_not)
            if leader == unwanted:
                out.append(Mismatch("leader_not", f"any leader but {unwanted}",
                                    actual_leader))
        if not self._needs_servers():
            return out
        ids, problem = self._on()
        if problem is not None:
            out.append(Mismatch("on", "servers to check", problem))
            return out
        if not ids:
            out.append(Mismatch("on", "servers to check", "no server is running"))
            return out
        self._per_server(ids, out)
        return out

    def _needs_servers(self) -> bool:
        c = self.condition
        return any(v is not None for v in (
            c.role, c.term, c.term_at_least, c.term_at_most, c.commit_index,
            c.commit_at_least, c.commit_below, c.applied, c.applied_at_least, c.voters,
            c.nonvoters, c.kv, c.kv_missing, c.logs_match, c.entry))

    def _per_server(self, ids: list[str], out: list[Mismatch]) -> None:
        c = self.condition
        servers = self.cluster.servers
        nodes = {sid: servers[sid].node for sid in ids}

        def numeric(key: str, wanted: int | str | None, read: Callable[[str], int],
                    test: Callable[[int, int], bool], shown: str) -> None:
            if wanted is None:
                return
            # the runner replaced a kept $name by its number before the check
            want = int(wanted)
            values = {sid: (read(sid) if nodes[sid] is not None else None) for sid in ids}
            if not all(v is not None and test(v, want) for v in values.values()):
                actual = ", ".join(f"{sid}={'not running' if v is None else v}"
                                   for sid, v in values.items())
                out.append(Mismatch(key, f"{shown}{want} on {_names(ids)}", actual))

        def term(sid: str) -> int:
            node = nodes[sid]
            assert node is not None
            return node.term

        def commit(sid: str) -> int:
            node = nodes[sid]
            assert node is not None
            return node.commit_index

        def applied(sid: str) -> int:
            return servers[sid].kv.applied_index

        if c.role is not None:
            roles = {sid: (n.role.value if n is not None else "not running")
                     for sid, n in nodes.items()}
            if any(r != c.role for r in roles.values()):
                out.append(Mismatch("role", f"{c.role} on {_names(ids)}",
                                    ", ".join(f"{s}={r}" for s, r in roles.items())))
        numeric("term", c.term, term, lambda v, w: v == w, "")
        numeric("term_at_least", c.term_at_least, term, lambda v, w: v >= w, ">= ")
        numeric("term_at_most", c.term_at_most, term, lambda v, w: v <= w, "<= ")
        numeric("commit_index", c.commit_index, commit, lambda v, w: v == w, "")
        numeric("commit_at_least", c.commit_at_least, commit, lambda v, w: v >= w, ">= ")
        numeric("commit_below", c.commit_below, commit, lambda v, w: v < w, "< ")
        numeric("applied", c.applied, applied, lambda v, w: v == w, "")
        numeric("applied_at_least", c.applied_at_least, applied, lambda v, w: v >= w, ">= ")
        for key, wanted in (("voters", c.voters), ("nonvoters", c.nonvoters)):
            if wanted is not None:
                self._configuration(key, wanted, ids, out)
        if c.kv is not None:
            for key, value in c.kv.items():
                found = {sid: self._kv(sid, key) for sid in ids}
                if any(v != value for v in found.values()):
                    shown = ", ".join(f"{sid}={_kv_text(v)}" for sid, v in found.items())
                    out.append(Mismatch(f"kv.{key}", f"{value!r} on {_names(ids)}", shown))
        if c.kv_missing is not None:
            for key in c.kv_missing:
                found = {sid: self._kv(sid, key) for sid in ids}
                present = {sid: v for sid, v in found.items() if v is not None}
                if present:
                    shown = ", ".join(f"{sid}={_kv_text(v)}" for sid, v in present.items())
                    out.append(Mismatch(f"kv_missing.{key}",
                                        f"no {key!r} on {_names(ids)}", shown))
        if c.logs_match is not None:
            difference = self._log_difference(ids)
            if c.logs_match and difference is not None:
                out.append(Mismatch("logs_match", "the committed entries of "
                                    f"{_names(ids)} to agree", difference))
            elif not c.logs_match and difference is None:
                out.append(Mismatch("logs_match", "the committed entries of "
                                    f"{_names(ids)} to differ", "they agree"))
        if c.entry is not None:
            self._entry(c.entry, ids, out)

    def _entry(self, want: EntryCheck, ids: list[str], out: list[Mismatch]) -> None:
        found: dict[str, str] = {}
        held: dict[str, bool] = {}
        for sid in ids:
            held[sid] = False
            node = self.cluster.servers[sid].node
            if node is None:
                found[sid] = "not running"
                continue
            log = node.log
            if not log.snapshot_index < want.index <= log.last_index:
                term = log.term_at(want.index)
                found[sid] = ("no entry" if term is None
                              else f"term {term}, compacted into a snapshot")
                continue
            entry = log.entry(want.index)
            found[sid] = entry_text(entry)
            held[sid] = entry_matches(want, entry)
        expected = describe_entry(want)
        if not all(held.values()):
            shown = ", ".join(f"{sid}={text}" for sid, text in found.items())
            out.append(Mismatch("entry", f"an entry ({expected}) at index {want.index} on "
                                f"{_names(ids)}", f"at index {want.index}: {shown}"))

    def _kv(self, sid: str, key: str) -> str | None:
        server = self.cluster.servers[sid]
        if server.node is None:
            return "\0not running"
        item = server.kv.get(key)
        return None if item is None else item.value.decode("utf-8", errors="replace")

    def _configuration(self, key: str, wanted: tuple[str, ...], ids: list[str],
                       out: list[Mismatch]) -> None:
        expected = []
        for ref in wanted:
            sid = self.resolve(ref)
            expected.append(sid if sid is not None else f"(no {ref})")
        want = sorted(expected)
        served: dict[str, str] = {}
        bad = False
        for sid in ids:
            view = (self.configs[sid] if self.configs is not None and sid in self.configs
                    else node_configuration(self.cluster, sid))
            if isinstance(view, str):
                served[sid] = view
                bad = True
                continue
            got = sorted(view[0] if key == "voters" else view[1])
            served[sid] = "[" + ", ".join(got) + "]"
            bad = bad or got != want
        if bad:
            actual = ", ".join(f"{sid}: {text}" for sid, text in served.items())
            out.append(Mismatch(key, f"[{', '.join(want)}] as served by {_names(ids)}",
                                actual))

    def _log_difference(self, ids: list[str]) -> str | None:
        """Where two servers' committed entries disagree, or None if nowhere."""
        logs = {}
        for sid in ids:
            node = self.cluster.servers[sid].node
            if node is None:
                return f"{sid} is not running"
            logs[sid] = node
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                na, nb = logs[a], logs[b]
                low = max(na.log.snapshot_index, nb.log.snapshot_index) + 1
                high = min(na.commit_index, nb.commit_index)
                for index in range(low, high + 1):
                    ea, eb = na.log.entry(index), nb.log.entry(index)
                    if (ea.term, ea.kind, ea.data) != (eb.term, eb.kind, eb.data):
                        return (f"{a} and {b} differ at committed index {index} "
                                f"(terms {ea.term} and {eb.term})")
        return None

    # -------------------------------------------------------------- words

    def describe(self) -> str:
        """The condition in plain words, with references resolved as of now."""
        c = self.condition
        parts: list[str] = []
        if c.leader is not None:
            who = self._ref(c.leader)
            parts.append({"any": "some server leads",
                          "none": "no server leads"}.get(who, f"{who} leads"))
        if c.leader_not is not None:
            parts.append(f"{self._ref(c.leader_not)} does not lead")
        on = self._on_text()
        if c.role is not None:
            parts.append(f"role is {c.role} on {on}")
        for value, words in (
                (c.term, "term is"),
                (c.term_at_least, "term is at least"),
                (c.term_at_most, "term is at most"),
                (c.commit_index, "commit index is"),
                (c.commit_at_least, "commit index is at least"),
                (c.commit_below, "commit index is below"),
                (c.applied, "applied index is"),
                (c.applied_at_least, "applied index is at least")):
            if value is not None:
                parts.append(f"{words} {value} on {on}")
        for key, wanted in (("voters", c.voters), ("nonvoters", c.nonvoters)):
            if wanted is not None:
                names = sorted(self._ref(r) for r in wanted)
                parts.append(f"the configuration served by {on} has {key} "
                             f"[{', '.join(names)}]")
        if c.kv is not None:
            parts.extend(f"{key} = {value!r} on {on}" for key, value in c.kv.items())
        if c.kv_missing is not None:
            parts.extend(f"no {key!r} on {on}" for key in c.kv_missing)
        if c.logs_match is not None:
            parts.append(f"committed logs {'agree' if c.logs_match else 'differ'} on {on}")
        if c.entry is not None:
            parts.append(f"index {c.entry.index} holds an entry: {describe_entry(c.entry)}, "
                         f"on {on}")
        return "; ".join(parts)


def describe_entry(want: EntryCheck) -> str:
    """An entry check in the words ``entry_text`` uses for an entry, so the two compare
    (only the parts the check names)."""
    words = [] if want.term is None else [f"term {want.term}"]
    if want.kind is not None or want.key is not None:
        words.append(want.kind or "command")
    text = " ".join(words)
    if want.key is not None:
        text += f" {want.key!r}"
        if want.value is not None:
            text += f" = {want.value!r}"
    return text


def entry_matches(want: EntryCheck, entry: Entry) -> bool:
    """Whether ``entry`` is what ``want`` says, in the parts it names."""
    if want.term is not None and entry.term != want.term:
        return False
    kind = {EntryKind.NOOP: "noop", EntryKind.CONFIGURATION: "configuration"}.get(
        entry.kind, "command")
    if want.kind is not None and kind != want.kind:
        return False
    if want.key is None:
        return True
    text = entry_text(entry)
    command = f"term {entry.term} command {want.key!r}"
    if want.value is None:
        return text.startswith(command + " ")
    return text == f"{command} = {want.value!r}"


def entry_text(entry: Entry) -> str:
    """An entry in plain words: its term, kind and, for a KV put or delete, its key
    and value (a batch of commands is named as such)."""
    if entry.kind is EntryKind.NOOP:
        return f"term {entry.term} noop"
    if entry.kind is EntryKind.CONFIGURATION:
        return f"term {entry.term} configuration"
    try:
        op = msgpack.unpackb(entry.data, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        op = None
    if isinstance(op, list) and len(op) == 4 and op[0] == "put":
        value = op[2].decode("utf-8", errors="replace") if isinstance(op[2], bytes) \
            else str(op[2])
        return f"term {entry.term} command {op[1]!r} = {value!r}"
    if isinstance(op, list) and len(op) == 2 and op[0] == "delete":
        return f"term {entry.term} command {op[1]!r} deleted"
    return f"term {entry.term} command"


def _kv_text(value: str | None) -> str:
    if value is None:
        return "(missing)"
    if value == "\0not running":
        return "(not running)"
    return repr(value)
