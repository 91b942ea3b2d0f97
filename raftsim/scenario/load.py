"""Reading a scenario file: TOML in, a :class:`Scenario` out, or one precise error.

Everything that can be checked before the run is checked here, so a typo fails in a
second with a message naming the file, the step and the key, and saying what is
allowed, instead of half-way through a run. Unknown keys are errors, never ignored.
The format is documented key by key in docs/scenarios.md; this module is its law.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from raftsim.core.bugs import BUGS
from raftsim.scenario.errors import ScenarioError
from raftsim.scenario.model import (
    ROLE_WORDS,
    SET_BASES,
    Action,
    Answer,
    ClusterSpec,
    Condition,
    Cut,
    DiskFault,
    EntryCheck,
    Expect,
    Heal,
    NetworkSetting,
    Partition,
    Request,
    Say,
    Scenario,
    ServerFault,
    Step,
    Timing,
    Wait,
)

__all__ = ["load_scenario", "parse_scenario", "ACTION_KEYS", "CONDITION_KEYS"]

TOP_KEYS = ("title", "description", "seed", "bugs", "cluster", "step")
CLUSTER_KEYS = ("servers", "nonvoters", "names", "heartbeat", "election_timeout", "latency",
                "loss", "duplication", "reorder", "pre_vote", "check_quorum",
                "snapshot_threshold", "max_entries_per_message", "clock_drift",
                "lease_reads", "disk")
#: what ``[cluster] disk`` may be
DISKS = ("memory", "crashdisk")
#: faults of a server's simulated disk (they need ``disk = "crashdisk"``)
DISK_FAULTS = ("fail_fsync", "disk_full", "torn_write", "corrupt", "slow_disk")
#: the slowest save a slow_disk step may ask for
MAX_SAVE_SECONDS = 60.0
#: the widest clock rate spread a scenario may ask for (a clock at half speed)
MAX_CLOCK_DRIFT = 0.5
TIMING_KEYS = ("at", "after", "when", "within", "as")
SERVER_FAULTS = ("crash", "restart", "pause", "resume", "isolate")
NETWORK_SETTINGS = ("loss", "latency", "duplication", "reorder")
REQUEST_KINDS = ("write", "read", "delete", "api", "add", "remove", "promote", "transfer")
ACTION_KEYS = (*SERVER_FAULTS, "partition", "cut", "heal", *NETWORK_SETTINGS,
               *REQUEST_KINDS, "say", "expect", *DISK_FAULTS)
CONDITION_KEYS = ("leader", "leader_not", "on", "role", "term", "term_at_least",
                  "term_at_most", "commit_index", "commit_at_least", "commit_below",
                  "applied", "applied_at_least", "voters", "nonvoters", "kv", "kv_missing",
                  "logs_match", "entry")
ROLES = ("leader", "follower", "candidate", "pre-candidate")
#: keys every request table may have besides its own
_ANSWER_KEYS = ("status", "json", "text", "background", "compare", "keep")
#: how ``compare`` may compare an answer's value with a number or a bound value
COMPARE_OPERATORS = (">=", "<=", "!=", "==", ">", "<")
#: what an ``entry`` check may say the entry is
ENTRY_KINDS = ("command", "noop", "configuration")
#: condition keys that take a whole number, or a $name a `keep` bound to one
INTEGER_CONDITIONS = ("term", "term_at_least", "term_at_most", "commit_index",
                      "commit_at_least", "commit_below", "applied", "applied_at_least")
REQUEST_KEYS: dict[str, tuple[str, ...]] = {
    "write": ("key", "value", "via", *_ANSWER_KEYS),
    "read": ("key", "via", "stale", "value", *_ANSWER_KEYS),
    "delete": ("key", "via", *_ANSWER_KEYS),
    "api": ("server", "method", "path", "body", "headers", *_ANSWER_KEYS),
    "add": ("server", "voter", "via", *_ANSWER_KEYS),
    "remove": ("server", "by", "via", *_ANSWER_KEYS),
    "promote": ("server", "via", *_ANSWER_KEYS),
    "transfer": ("server", "via", *_ANSWER_KEYS),
}
#: the longest time any key may name: a run is meant to take seconds, not hours
MAX_SECONDS = 3600.0
#: words a server id may not be, because they mean something else in a step
RESERVED_IDS = (*ROLE_WORDS, "any", "none", *SET_BASES)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REFERENCE = re.compile(r"\$(\$|[A-Za-z_][A-Za-z0-9_-]*)")
_SET = re.compile(r"^(\w+)(?:\s+except\s+(.+))?$")
_JSON_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*)*$")
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def load_scenario(path: Path | str) -> Scenario:
    """Read and check one scenario file (ScenarioError when it cannot be run)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(path, "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(path, "is a directory, not a scenario file") from None
    except OSError as exc:
        raise ScenarioError(path, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, f"not valid TOML: {exc}") from None
    return parse_scenario(document, path)


# ---------------------------------------------------------------------- value checks

def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} value"


def _allowed(names: Iterable[str]) -> str:
    return ", ".join(names)


class _Checker:
    """Type and range checks that know where they are (file, step) for the message."""

    def __init__(self, path: Path, step: int | None = None) -> None:
        self.path = path
        self.step = step

    def error(self, key: str | None, problem: str) -> ScenarioError:
        return ScenarioError(self.path, problem, step=self.step, key=key)

    def keys(self, prefix: str, table: dict[str, Any], allowed: tuple[str, ...],
             what: str = "key") -> None:
        for key in table:
            if key not in allowed:
                full = f"{prefix}.{key}" if prefix else key
                raise self.error(full, f"unknown {what}; allowed: {_allowed(allowed)}")

    def table(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_describe(value)}")
        return value

    def string(self, key: str, value: Any, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {_describe(value)}")
        if not empty and not value:
            raise self.error(key, "must not be empty")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {_describe(value)}")
        return value

    def integer(self, key: str, value: Any, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def seconds(self, key: str, value: Any, *, positive: bool = False) -> float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value)):
            raise self.error(key, f"must be a number of seconds, got {_describe(value)}")
        if positive and not value > 0:
            raise self.error(key, f"must be greater than 0 seconds, got {value}")
        if value < 0:
            raise self.error(key, f"must not be negative, got {value}")
        if value > MAX_SECONDS:
            raise self.error(key, f"must be at most {MAX_SECONDS:g} seconds (an hour of "
                                  f"virtual time), got {value}")
        return float(value)

    def probability(self, key: str, value: Any) -> float:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0):
            raise self.error(key, f"must be a probability between 0 and 1, got "
                                  f"{_describe(value)}")
        return float(value)

    def seconds_range(self, key: str, value: Any, *, positive: bool = False
                      ) -> tuple[float, float]:
        if not isinstance(value, list) or len(value) != 2:
            raise self.error(key, f"must be a [min, max] pair of seconds, got "
                                  f"{_describe(value)}")
        low = self.seconds(f"{key}[0]", value[0], positive=positive)
        high = self.seconds(f"{key}[1]", value[1], positive=positive)
        if high < low:
            raise self.error(key, f"must be [min, max] with min <= max, got [{low}, {high}]")
        return (low, high)

    def strings(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of strings, got {_describe(value)}")
        return [self.string(f"{key}[{i}]", item) for i, item in enumerate(value)]


# ---------------------------------------------------------------------- the document

def parse_scenario(document: dict[str, Any], path: Path | str) -> Scenario:
    """Check a parsed TOML document and build the scenario it describes."""
    path = Path(path)
    check = _Checker(path)
    check.keys("", document, TOP_KEYS)
    if "title" not in document:
        raise check.error("title", "is missing; every scenario needs a title")
    title = check.string("title", document["title"])
    description = check.string("description", document.get("description", ""), empty=True)
    seed = check.integer("seed", document.get("seed", 0), minimum=0)
    bugs = tuple(check.strings("bugs", document.get("bugs", [])))
    for i, bug in enumerate(bugs):
        if bug not in BUGS:
            raise check.error(f"bugs[{i}]", f"unknown bug switch {bug!r}; known switches: "
                                            f"{_allowed(sorted(BUGS))}")
    raw_steps = document.get("step")
    if raw_steps is None:
        raise check.error("step", "is missing; add at least one [[step]] table")
    if not isinstance(raw_steps, list) or not all(isinstance(s, dict) for s in raw_steps):
        raise check.error("step", "must be an array of tables, written [[step]]")
    if not raw_steps:
        raise check.error("step", "is empty; add at least one [[step]] table")
    added = _added_servers(raw_steps)
    cluster = _parse_cluster(check, check.table("cluster", document.get("cluster", {})), added)
    steps = _StepParser(path, cluster).parse_all(raw_steps)
    return Scenario(path=path, title=title, description=description, seed=seed, bugs=bugs,
                    cluster=cluster, steps=steps)


def _added_servers(raw_steps: list[dict[str, Any]]) -> list[str]:
    """Ids that ``add`` steps bring in (so [cluster] names may name them)."""
    ids = []
    for raw in raw_steps:
        add = raw.get("add")
        server = add.get("server") if isinstance(add, dict) else add
        if isinstance(server, str):
            ids.append(server)
    return ids


def _server_id(check: _Checker, key: str, value: Any) -> str:
    sid = check.string(key, value)
    if sid in RESERVED_IDS or sid.startswith("$"):
        raise check.error(key, f"{sid!r} cannot be a server id: {_allowed(RESERVED_IDS)} "
                               "and names starting with $ mean something else in steps")
    return sid


def _parse_cluster(check: _Checker, table: dict[str, Any], added: list[str]) -> ClusterSpec:
    check.keys("cluster", table, CLUSTER_KEYS)
    default = ClusterSpec()
    servers_value = table.get("servers", len(default.servers))
    if isinstance(servers_value, int) and not isinstance(servers_value, bool):
        if servers_value < 1:
            raise check.error("cluster.servers",
                              f"must be at least 1 server, got {servers_value}")
        servers = tuple(f"s{k}" for k in range(1, servers_value + 1))
    elif isinstance(servers_value, list):
        if not servers_value:
            raise check.error("cluster.servers", "must name at least 1 server, got []")
        servers = tuple(_server_id(check, f"cluster.servers[{i}]", v)
                        for i, v in enumerate(servers_value))
        dupes = sorted({s for s in servers if servers.count(s) > 1})
        if dupes:
            raise check.error("cluster.servers", f"names {dupes[0]!r} twice")
    else:
        raise check.error("cluster.servers", "must be a number of servers or a list of ids, "
                                             f"got {_describe(servers_value)}")
    nonvoters = tuple(check.strings("cluster.nonvoters", table.get("nonvoters", [])))
    for i, sid in enumerate(nonvoters):
        if sid not in servers:
            raise check.error(f"cluster.nonvoters[{i}]",
                              f"unknown server {sid!r}; servers are {_allowed(servers)}")
    if len(set(nonvoters)) >= len(servers):
        raise check.error("cluster.nonvoters", "must leave at least one voter")
    names_table = check.table("cluster.names", table.get("names", {}))
    names = {}
    for sid, name in names_table.items():
        if sid not in servers and sid not in added:
            raise check.error(f"cluster.names.{sid}",
                              f"unknown server {sid!r}; servers are {_allowed(servers)} "
                              "(and any an `add` step starts)")
        names[sid] = check.string(f"cluster.names.{sid}", name)
    heartbeat = check.seconds("cluster.heartbeat",
                              table.get("heartbeat", default.heartbeat), positive=True)
    election = check.seconds_range(
        "cluster.election_timeout",
        table.get("election_timeout", list(default.election_timeout)), positive=True)
    if not election[0] > heartbeat:
        raise check.error("cluster.election_timeout",
                          f"its min ({election[0]}) must be greater than the heartbeat "
                          f"({heartbeat})")
    if not election[1] > election[0]:
        raise check.error("cluster.election_timeout",
                          f"must be [min, max] with min < max (the randomness is what ends "
                          f"split votes), got [{election[0]}, {election[1]}]")
    return ClusterSpec(
        servers=servers, nonvoters=nonvoters, names=names, heartbeat=heartbeat,
        election_timeout=election,
        latency=check.seconds_range("cluster.latency",
                                    table.get("latency", list(default.latency))),
        loss=check.probability("cluster.loss", table.get("loss", 0.0)),
        duplication=check.probability("cluster.duplication", table.get("duplication", 0.0)),
        reorder=check.probability("cluster.reorder", table.get("reorder", 0.0)),
        pre_vote=check.boolean("cluster.pre_vote", table.get("pre_vote", True)),
        check_quorum=check.boolean("cluster.check_quorum", table.get("check_quorum", True)),
        snapshot_threshold=check.integer("cluster.snapshot_threshold",
                                         table.get("snapshot_threshold", 0), minimum=0),
        max_entries_per_message=check.integer(
            "cluster.max_entries_per_message",
            table.get("max_entries_per_message", default.max_entries_per_message), minimum=1),
        clock_drift=_clock_drift(check, table.get("clock_drift", 0.0)),
        lease_reads=check.boolean("cluster.lease_reads", table.get("lease_reads", False)),
        disk=_disk(check, table.get("disk", default.disk)),
    )


def _disk(check: _Checker, value: Any) -> str:
    if value not in DISKS:
        raise check.error("cluster.disk", f"must be one of {_allowed(DISKS)} (crashdisk: "
                                          "a disk with a write cache and injectable "
                                          f"faults), got {_describe(value)}")
    return str(value)


def _clock_drift(check: _Checker, value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0.0 <= value <= MAX_CLOCK_DRIFT):
        raise check.error("cluster.clock_drift",
                          f"must be a number from 0 to {MAX_CLOCK_DRIFT} (each server's "
                          f"clock runs at a rate within 1 +- clock_drift), got "
                          f"{_describe(value)}")
    return float(value)


# ---------------------------------------------------------------------- steps

class _StepParser:
    """Parses steps in order, tracking what an earlier step makes available to a later
    one: servers started by ``add``, names bound by ``as``, and the earliest time."""

    def __init__(self, path: Path, cluster: ClusterSpec) -> None:
        self.path = path
        self.known: list[str] = list(cluster.servers)
        self.bound: list[str] = []
        #: names bound to values of answers (by `keep`), not to servers
        self.values: list[str] = []
        self.earliest = 0.0
        self.check = _Checker(path)
        self.disk = cluster.disk

    def parse_all(self, raw_steps: list[dict[str, Any]]) -> tuple[Step, ...]:
        return tuple(self.parse(number, raw) for number, raw in enumerate(raw_steps, 1))

    def parse(self, number: int, raw: dict[str, Any]) -> Step:
        check = self.check = _Checker(self.path, number)
        actions = [k for k in raw if k in ACTION_KEYS]
        for key in raw:
            if key not in ACTION_KEYS and key not in TIMING_KEYS:
                raise check.error(key, "unknown step key; a step has one action key ("
                                       f"{_allowed(ACTION_KEYS)}) and optionally "
                                       f"{_allowed(TIMING_KEYS)}")
        if not actions and not any(k in raw for k in ("at", "after", "when")):
            raise check.error(None, "is empty: give it one action ("
                                    f"{_allowed(ACTION_KEYS)}), or a time to wait for "
                                    "(at, after, or when)")
        if len(actions) > 1:
            raise check.error(actions[1], f"a step has exactly one action, but this one "
                                          f"has both '{actions[0]}' and '{actions[1]}'; "
                                          "split it into two steps")
        timing = self._timing(raw, number)
        kind = actions[0] if actions else "wait"
        bind = None
        bind_servers: list[tuple[str, str]] = []
        if "as" in raw and isinstance(raw["as"], dict):
            if not raw["as"]:
                raise check.error("as", "is an empty table; bind at least one name, e.g. "
                                        'as = {old = "leader", buddy = "follower"}')
            for name, ref in raw["as"].items():
                self._name(f"as.{name}", name)
                bind_servers.append((name, self.server(f"as.{name}", ref)))
                self.bound.append(name)  # a later name of the table may use it
        elif "as" in raw:
            bind = check.string("as", raw["as"])
            self._name("as", bind)
        if bind is not None and kind != "expect":
            self.bound.append(bind)  # bound before the action runs: it may use the name
        action = self._action(kind, raw[kind]) if actions else Wait()
        if bind is not None and kind == "expect":
            self.bound.append(bind)  # the leader once the expectation held
        if isinstance(action, Request) and action.kind == "add" and action.subject:
            if action.subject not in self.known:
                self.known.append(action.subject)
        if isinstance(action, Request):
            for name, _ in action.answer.keep:
                self.bound.append(name)
                self.values.append(name)
        return Step(number=number, kind=kind, action=action, timing=timing, bind=bind,
                    bind_servers=tuple(bind_servers))

    def _name(self, key: str, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise self.check.error(key, f"{name!r} is not a name: use letters, digits, _ "
                                        "and -, starting with a letter or _ (then refer "
                                        f"to it as \"${name}\")")

    # -------------------------------------------------------------- timing

    def _timing(self, raw: dict[str, Any], number: int) -> Timing:
        check = self.check
        given = [k for k in ("at", "after", "when") if k in raw]
        if len(given) > 1:
            raise check.error(given[1], f"a step runs at one time: use one of 'at', 'after' "
                                        f"or 'when', not both '{given[0]}' and '{given[1]}'")
        if "within" in raw and "when" not in raw:
            raise check.error("within", "only goes with 'when' (how long to wait for the "
                                        "condition)")
        if "at" in raw:
            at = check.seconds("at", raw["at"])
            if at < self.earliest - 1e-9:
                raise check.error("at", f"time cannot go backwards: at = {at:g} is earlier "
                                        f"than t={self.earliest:g}, which the steps before "
                                        f"step {number} reach at the soonest (use a later "
                                        "'at', or 'after')")
            self.earliest = at
            return Timing(at=at)
        if "after" in raw:
            after = check.seconds("after", raw["after"])
            self.earliest += after
            return Timing(after=after)
        if "when" in raw:
            when = self._condition("when", check.table("when", raw["when"]))
            within = check.seconds("within", raw.get("within", 10.0), positive=True)
            return Timing(when=when, within=within)
        return Timing()

    # -------------------------------------------------------------- references

    def server(self, key: str, value: Any, *, words: tuple[str, ...] = ROLE_WORDS) -> str:
        """A server reference: an id, one of ``words``, or a bound ``$name``."""
        check = self.check
        ref = check.string(key, value)
        if ref.startswith("$"):
            self.reference(key, ref[1:])
            if ref[1:] in self.values:
                raise check.error(key, f"{ref} is a value kept from an answer, not a "
                                       "server; bind servers with 'as'")
            return ref
        if ref in words or ref in self.known:
            return ref
        found = _SET.match(ref)
        if words and found is not None and found.group(1) in SET_BASES:
            if found.group(2) is not None:
                for part in found.group(2).split(","):
                    self.server(key, part.strip(), words=ROLE_WORDS)
            return " ".join(ref.split())
        choices = ", ".join(f'"{w}"' for w in words)
        also = f", {choices}" if words else ""
        sets = (', a set such as "voters except $old" (from '
                f'{_allowed(SET_BASES)})' if words else "")
        raise check.error(key, f"unknown server {ref!r}; use one of {_allowed(self.known)}"
                               f"{also}{sets} or a $name bound by an earlier step's 'as'")

    def reference(self, key: str, name: str) -> None:
        if name in self.bound:
            return
        if self.bound:
            known = ", ".join(f"${n}" for n in dict.fromkeys(self.bound))
            hint = f"names bound so far: {known}"
        else:
            hint = "no name is bound yet (bind one with as = \"name\" on an earlier step)"
        raise self.check.error(key, f"${name} is not bound by an earlier step; {hint}")

    def text(self, key: str, value: Any, *, empty: bool = False) -> str:
        """A string that may mention bound names as $name ($$ is a dollar sign)."""
        text = self.check.string(key, value, empty=empty)
        for match in _REFERENCE.finditer(text):
            if match.group(1) != "$":
                self.reference(key, match.group(1))
        return text

    def json_value(self, key: str, value: Any) -> Any:
        """An expected JSON value: TOML strings, numbers, booleans, arrays and tables
        (strings may mention $names); TOML dates and times have no JSON equivalent."""
        if isinstance(value, str):
            return self.text(key, value, empty=True)
        if isinstance(value, bool | int | float):
            return value
        if isinstance(value, list):
            return [self.json_value(f"{key}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.json_value(f"{key}.{k}", v) for k, v in value.items()}
        raise self.check.error(key, f"{_describe(value)} has no JSON equivalent; use a "
                                    "string, number, boolean, array or table")

    def servers(self, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.check.error(key, f"must be a list of servers, got {_describe(value)}")
        return tuple(self.server(f"{key}[{i}]", v) for i, v in enumerate(value))

    # -------------------------------------------------------------- actions

    def _action(self, kind: str, value: Any) -> Action:
        check = self.check
        if kind in SERVER_FAULTS:
            return ServerFault(kind, self.server(kind, value))
        if kind in DISK_FAULTS:
            return self._disk_fault(kind, value)
        if kind == "partition":
            if not isinstance(value, list) or not value:
                raise check.error(kind, "must be a list of groups, each a list of servers, "
                                        'e.g. [["s1", "s2"], ["s3", "s4", "s5"]]; got '
                                        f"{_describe(value)}")
            groups = tuple(self.servers(f"{kind}[{i}]", g) for i, g in enumerate(value))
            literal = [s for g in groups for s in g if not s.startswith("$")]
            dupes = sorted({s for s in literal if literal.count(s) > 1})
            if dupes:
                raise check.error(kind, f"puts {dupes[0]!r} in more than one group")
            return Partition(groups)
        if kind == "cut":
            table = check.table(kind, value)
            check.keys(kind, table, ("from", "to"))
            for needed in ("from", "to"):
                if needed not in table:
                    raise check.error(f"cut.{needed}", "is missing; a cut is "
                                                       '{from = "s1", to = "s2"}')
            return Cut(self.server("cut.from", table["from"]),
                       self.server("cut.to", table["to"]))
        if kind == "heal":
            if value is not True:
                raise check.error(kind, f"must be true (heal = true), got {_describe(value)}")
            return Heal()
        if kind == "latency":
            return NetworkSetting(kind, check.seconds_range(kind, value))
        if kind in NETWORK_SETTINGS:
            return NetworkSetting(kind, check.probability(kind, value))
        if kind == "say":
            return Say(self.text(kind, value))
        if kind == "expect":
            table = check.table(kind, value)
            eventually = None
            if "eventually" in table:
                eventually = check.seconds("expect.eventually", table["eventually"],
                                           positive=True)
            rest = {k: v for k, v in table.items() if k != "eventually"}
            if not rest:
                raise check.error(kind, "expects nothing; give at least one of "
                                        f"{_allowed(CONDITION_KEYS)}")
            return Expect(self._condition(kind, rest, extra=("eventually",)), eventually)
        return self._request(kind, value)

    def _disk_fault(self, kind: str, value: Any) -> DiskFault:
        check = self.check
        if self.disk != "crashdisk":
            raise check.error(kind, "is a disk fault: it needs a simulated disk that can "
                                    'fail; set disk = "crashdisk" in [cluster]')
        if kind != "slow_disk":
            return DiskFault(kind, self.server(kind, value))
        table = check.table(kind, value)
        check.keys(kind, table, ("server", "seconds"))
        for needed in ("server", "seconds"):
            if needed not in table:
                raise check.error(f"slow_disk.{needed}", "is missing; a slow disk is "
                                                         '{server = "s1", seconds = 0.05} '
                                                         "(seconds = 0 ends it)")
        seconds = check.seconds("slow_disk.seconds", table["seconds"])
        if seconds > MAX_SAVE_SECONDS:
            raise check.error("slow_disk.seconds", f"a save may take at most "
                                                   f"{MAX_SAVE_SECONDS:g} seconds, got "
                                                   f"{seconds:g}")
        return DiskFault(kind, self.server("slow_disk.server", table["server"]), seconds)

    def _request(self, kind: str, value: Any) -> Request:
        check = self.check
        shorthand = kind in ("add", "remove", "promote", "transfer")
        if shorthand and isinstance(value, str):
            value = {"server": value}
        if not isinstance(value, dict):
            form = " or a server id" if shorthand else ""
            raise check.error(kind, f"must be a table{form}, got {_describe(value)}")
        table: dict[str, Any] = value
        check.keys(kind, table, REQUEST_KEYS[kind])
        raw_status = table.get("status", 200)
        if isinstance(raw_status, list):
            if not raw_status:
                raise check.error(f"{kind}.status", "is an empty list; give the statuses "
                                                    "accepted, e.g. status = [200, 500]")
            statuses = tuple(self._status(f"{kind}.status[{i}]", v)
                             for i, v in enumerate(raw_status))
        else:
            statuses = (self._status(f"{kind}.status", raw_status),)
        status = statuses[0]
        text = None
        if "text" in table:
            text = self.text(f"{kind}.text", table["text"], empty=True)
        expected_json = None
        if "json" in table:
            expected_json = self.json_value(f"{kind}.json", table["json"])
        compare = self._compare(kind, table.get("compare"))
        keep = self._keep(kind, table.get("keep"))
        answer = Answer(status=status, statuses=statuses, json=expected_json,
                        has_json="json" in table, text=text, compare=compare, keep=keep)
        background = check.boolean(f"{kind}.background", table.get("background", False))
        fields: dict[str, Any] = {"kind": kind, "answer": answer, "background": background}
        if kind != "api":
            fields["via"] = self.server(f"{kind}.via", table.get("via", "leader"))
        if kind in ("write", "read", "delete"):
            fields["key"] = self._required(kind, table, "key", self.text)
            if kind == "write":
                fields["value"] = self._required(
                    kind, table, "value",
                    lambda key, v: self.text(key, v, empty=True))
            if kind == "read":
                fields["stale"] = check.boolean("read.stale", table.get("stale", False))
                if "value" in table:
                    fields["value"] = self.text("read.value", table["value"], empty=True)
        elif kind == "add":
            subject = self._required(kind, table, "server",
                                     lambda key, v: _server_id(check, key, v))
            fields["subject"] = subject
            fields["voter"] = check.boolean("add.voter", table.get("voter", True))
        elif kind in ("remove", "promote", "transfer"):
            fields["subject"] = self._required(kind, table, "server", self.server)
            if kind == "remove":
                by = check.string("remove.by", table.get("by", "id"))
                if by not in ("id", "address"):
                    raise check.error("remove.by", f'must be "id" or "address", got {by!r}')
                fields["by"] = by
        else:  # api
            fields["via"] = self.server("api.server", table.get("server", "leader"))
            method = check.string("api.method", table.get("method", "GET"))
            if not _HTTP_TOKEN.match(method):
                raise check.error("api.method", f"{method!r} is not an HTTP method")
            fields["method"] = method.upper()
            path = self._required(kind, table, "path", self.text)
            if not path.startswith("/"):
                raise check.error("api.path", f"must start with '/', got {path!r}")
            fields["path"] = path
            fields["body"] = self.text("api.body", table.get("body", ""), empty=True)
            headers = check.table("api.headers", table.get("headers", {}))
            pairs = []
            for name, header_value in headers.items():
                if not _HTTP_TOKEN.match(name):
                    raise check.error(f"api.headers.{name}", "is not a valid header name")
                header_text = check.string(f"api.headers.{name}", header_value, empty=True)
                if any(c in header_text for c in "\r\n\0"):
                    raise check.error(f"api.headers.{name}", "must be one line of text")
                pairs.append((name, header_text))
            fields["headers"] = tuple(pairs)
        return Request(**fields)

    def _status(self, key: str, value: Any) -> int:
        status = self.check.integer(key, value)
        if not (status == 0 or 100 <= status <= 599):
            raise self.check.error(key, "must be an HTTP status (100-599), or 0 for a "
                                        f"refused connection; got {status}")
        return status

    def _json_path(self, key: str, value: Any) -> str:
        path = self.check.string(key, value)
        if path != "." and not _JSON_PATH.match(path):
            raise self.check.error(key, f"{path!r} is not a JSON path; write field names "
                                        "joined by dots, with [n] for a list element, "
                                        'e.g. "Index" or "Servers[0].ID" ("." is the '
                                        "whole answer)")
        return path

    def _compare(self, kind: str, value: Any) -> tuple[tuple[str, Any], ...]:
        if value is None:
            return ()
        table = self.check.table(f"{kind}.compare", value)
        out = []
        for path, test in table.items():
            key = f"{kind}.compare.{path}"
            self._json_path(key, path)
            text = self.check.string(key, test)
            operator = next((op for op in COMPARE_OPERATORS if text.startswith(op)), None)
            operand = text[len(operator):].strip() if operator else ""
            number: Any = None
            if operand.startswith("$"):
                self.reference(key, operand[1:])
                if operand[1:] not in self.values:
                    raise self.check.error(key, f"{operand} names a server, not a value "
                                                "kept from an answer (bind one with keep)")
                number = operand
            else:
                try:
                    number = int(operand)
                except ValueError:
                    try:
                        number = float(operand)
                    except ValueError:
                        number = None
            if operator is None or number is None:
                raise self.check.error(key, f"{text!r} is not a comparison; write an "
                                            f"operator ({_allowed(COMPARE_OPERATORS)}) and "
                                            'a number or a kept $name, e.g. "> $before"')
            out.append((path, (operator, number)))
        return tuple(out)

    def _keep(self, kind: str, value: Any) -> tuple[tuple[str, str], ...]:
        if value is None:
            return ()
        table = self.check.table(f"{kind}.keep", value)
        out = []
        for name, path in table.items():
            self._name(f"{kind}.keep.{name}", name)
            out.append((name, self._json_path(f"{kind}.keep.{name}", path)))
        return tuple(out)

    def _required(self, kind: str, table: dict[str, Any], key: str,
                  convert: Callable[[str, Any], str]) -> str:
        if key not in table:
            raise self.check.error(f"{kind}.{key}", "is missing")
        return convert(f"{kind}.{key}", table[key])

    # -------------------------------------------------------------- conditions

    def _condition(self, prefix: str, table: dict[str, Any],
                   extra: tuple[str, ...] = ()) -> Condition:
        check = self.check
        check.keys(prefix, table, (*CONDITION_KEYS, *extra), what="expectation key")
        if not table:
            raise check.error(prefix, "is empty; give at least one of "
                                      f"{_allowed(CONDITION_KEYS)}")
        fields: dict[str, Any] = {}
        for key, value in table.items():
            name = f"{prefix}.{key}"
            if key == "leader":
                fields[key] = self.server(name, value, words=("any", "none"))
            elif key == "leader_not":
                fields[key] = self.server(name, value, words=())
            elif key == "on":
                if isinstance(value, str):
                    value = [value]
                fields[key] = self.servers(name, value)
                if not fields[key]:
                    raise check.error(name, "must name at least one server")
            elif key == "role":
                role = check.string(name, value)
                if role not in ROLES:
                    raise check.error(name, f"must be one of {_allowed(ROLES)}, got {role!r}")
                fields[key] = role
            elif key in INTEGER_CONDITIONS:
                if isinstance(value, str) and value.startswith("$"):
                    self.reference(name, value[1:])
                    if value[1:] not in self.values:
                        raise check.error(name, f"{value} names a server; a number here "
                                                "may only be a value kept from an answer "
                                                "(keep = {name = \"Index\"})")
                    fields[key] = value
                else:
                    fields[key] = check.integer(name, value, minimum=0)
            elif key in ("voters", "nonvoters"):
                fields[key] = self.servers(name, value)
            elif key == "kv":
                kv = check.table(name, value)
                fields[key] = {k: self.text(f"{name}.{k}", v, empty=True)
                               for k, v in kv.items()}
            elif key == "kv_missing":
                fields[key] = tuple(check.strings(name, value))
            elif key == "logs_match":
                fields[key] = check.boolean(name, value)
            elif key == "entry":
                fields[key] = self._entry(name, check.table(name, value))
        return Condition(**fields)

    def _entry(self, name: str, entry: dict[str, Any]) -> EntryCheck:
        check = self.check
        check.keys(name, entry, ("index", "term", "kind", "key", "value"))
        if "index" not in entry:
            raise check.error(f"{name}.index", "is missing; an entry is {index = 3, term = 2}"
                                               ' or {index = 3, key = "x", value = "1"}')
        if not any(k in entry for k in ("term", "kind", "key")):
            raise check.error(name, "says nothing about the entry; give its term, kind or "
                                    "key (and value)")
        kind = None
        if "kind" in entry:
            kind = check.string(f"{name}.kind", entry["kind"])
            if kind not in ENTRY_KINDS:
                raise check.error(f"{name}.kind", f"must be one of {_allowed(ENTRY_KINDS)}, "
                                                  f"got {kind!r}")
        if kind not in (None, "command") and ("key" in entry or "value" in entry):
            raise check.error(name, f"key and value describe a KV command; a {kind} entry "
                                    "has neither")
        if "value" in entry and "key" not in entry:
            raise check.error(f"{name}.value", "goes with 'key' (the KV command's key)")
        return EntryCheck(
            index=check.integer(f"{name}.index", entry["index"], minimum=1),
            term=(check.integer(f"{name}.term", entry["term"], minimum=0)
                  if "term" in entry else None),
            kind=kind,
            key=self.text(f"{name}.key", entry["key"]) if "key" in entry else None,
            value=(self.text(f"{name}.value", entry["value"], empty=True)
                   if "value" in entry else None))
