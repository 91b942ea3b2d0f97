"""One teaching session of the web UI: a simulated cluster, the actions a user took on
it, and the compact picture of it that the page draws.

A session is a function of its :class:`SessionSpec` and its action log, nothing else:
each action is applied at a virtual time the log keeps (an exact float), at a quiet
moment of the simulation (nothing left to run at that instant), and a replay reaches each
of those times exactly and applies the same action there. So a permalink (spec and
actions) rebuilds the same run, trace record for trace record. Wall time appears nowhere
in this module.

Who decides how far the simulation goes is a *pump*: a function the session calls at
every quiet moment, which may apply actions and then returns how far to run next
(:class:`RunFor`, :class:`RunUntil` or :class:`StepOnce`), or raises to stop. The web
UI's pump paces the run to the wall clock and applies what the page asks for;
:class:`ReplayPump` replays an action log. A scenario file plays through the scenario
runner, whose waits ask the same pump, so a scenario plays at the page's pace, can be
paused and stepped, and can be interfered with, and is still replayed exactly.

Two things the page shows are observations, not actions, and stay out of the trace: the
operator API's configuration answer of each server (``GET
/v1/operator/raft/configuration?stale`` through the server's own HTTP application, the
one :class:`SimApi` serves, without a trace record) and the picture itself. A stale read
answers from local state and changes nothing, so when and how often the page asks does
not change the run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import itertools
import json
import math
import re
import tomllib
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import msgpack

from raftsim.api.exchange import ApiResponse, encode_request, exchange
from raftsim.api.inmemory import SimApi
from raftsim.core.messages import Entry, EntryKind
from raftsim.core.ready import Role
from raftsim.scenario.build import build_cluster
from raftsim.scenario.errors import ScenarioError
from raftsim.scenario.load import parse_scenario
from raftsim.scenario.model import ClusterSpec, Say, Scenario, Step
from raftsim.scenario.runner import ScenarioRunner
from raftsim.sim.cluster import Cluster, default_ids
from raftsim.sim.loop import VirtualTimeLoop
from raftsim.storage.memory import MemoryStorage
from raftsim.viz.narration import Narrator

Record = dict[str, Any]
Action = dict[str, Any]
T = TypeVar("T")

__all__ = [
    "CONFIG_PATH",
    "ReplayDone",
    "ReplayPump",
    "RunFor",
    "RunUntil",
    "SessionSpec",
    "StepOnce",
    "UiSession",
    "decode_permalink",
    "encode_permalink",
    "validate_action",
]

#: the UI's own cluster: messages slow enough to watch (10-15 ms against elections of
#: 150-300 ms and heartbeats every 50 ms, the proportions of RaftScope)
UI_LATENCY = (0.010, 0.015)
#: the operator API request whose answer the page shows for every server
CONFIG_PATH = "/v1/operator/raft/configuration?stale"
#: log entries the page shows (the newest ones)
LOG_WINDOW = 28
#: narrated lines, API answers and drops kept for the page
FEED_LENGTH = 400
API_LOG_LENGTH = 12
DROP_LENGTH = 64
#: the most servers a session may have (the ring gets unreadable past this)
MAX_SERVERS = 9
#: how far ahead a step looks for the next trace record before giving up
STEP_HORIZON = 10.0
#: the permalink format version
PERMALINK_VERSION = 1
#: what a permalink may ask for (it is untrusted input)
MAX_ACTIONS = 5000
MAX_SESSION_SECONDS = 24 * 3600.0
MAX_SCENARIO_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What a session starts from. ``scenario`` is a scenario file's text: the cluster
    is then the scenario's (``servers`` and the two settings are ignored) and its steps
    play as the session runs."""

    servers: int = 5
    seed: int = 0
    pre_vote: bool = True
    check_quorum: bool = True
    scenario: str | None = None
    scenario_name: str | None = None
    #: play the scenario as a lesson: hold after each ``say`` step until the page says
    #: Next (holding runs nothing, so a lesson is the run ``raftsim run`` makes)
    lesson: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.servers, bool) or not isinstance(self.servers, int) \
                or not 1 <= self.servers <= MAX_SERVERS:
            raise ValueError(f"servers must be a whole number from 1 to {MAX_SERVERS}, "
                             f"got {self.servers!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed!r}")
        for name in ("pre_vote", "check_quorum", "lesson"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.lesson and self.scenario is None:
            raise ValueError("a lesson is a scenario: it needs the scenario's text")
        if self.scenario is not None and (not isinstance(self.scenario, str)
                                          or len(self.scenario) > MAX_SCENARIO_BYTES):
            raise ValueError(f"a scenario is a TOML text of at most {MAX_SCENARIO_BYTES} "
                             "bytes")

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"servers": self.servers, "seed": self.seed,
                                "pre_vote": self.pre_vote, "check_quorum": self.check_quorum}
        if self.scenario is not None:
            data["scenario"] = self.scenario
            data["scenario_name"] = self.scenario_name
        if self.lesson:
            data["lesson"] = True
        return data


def load_scenario_text(text: str, name: str) -> Scenario:
    """A scenario from a file's text (ValueError with the loader's message if it is not
    one we can run)."""
    try:
        return parse_scenario(tomllib.loads(text), f"{name}.toml")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}.toml: not valid TOML: {exc}") from None
    except ScenarioError as exc:
        raise ValueError(str(exc)) from None


# ---------------------------------------------------------------------- actions

_SERVER_OPS = ("crash", "restart", "pause", "resume")
_API_OPS = ("write", "remove", "transfer")


def _text(action: dict[str, Any], name: str, limit: int = 200) -> str:
    value = action.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{action.get('op')} needs {name!r}: a non-empty string of at most "
                         f"{limit} characters")
    return value


def validate_action(action: Any, servers: list[str] | None = None) -> Action:
    """The action in its normal form (only known keys, checked types), or ValueError.

    Used for what the page sends and for what a permalink carries, both untrusted.
    ``servers``: the ids the action may name (None: any). ``via``, the server an API
    request goes to, may be missing; the session fills it in when it applies the action
    and the log keeps the filled-in form.
    """
    if not isinstance(action, dict):
        raise ValueError("an action is a JSON object")
    op = action.get("op")

    def server(name: str) -> str:
        value = _text(action, name, 64)
        if servers is not None and value not in servers:
            raise ValueError(f"{op}: unknown server {value!r}; servers are "
                             f"{', '.join(servers)}")
        return value

    def via() -> dict[str, str]:
        return {"via": server("via")} if action.get("via") is not None else {}

    if op in _SERVER_OPS:
        return {"op": op, "server": server("server")}
    if op == "heal":
        return {"op": "heal"}
    if op == "drop":
        message = action.get("message")
        if isinstance(message, bool) or not isinstance(message, int) or message < 1:
            raise ValueError("drop needs 'message': the id of a message on its way "
                             "(a whole number)")
        return {"op": "drop", "message": message}
    if op == "partition":
        groups = action.get("groups")
        if not isinstance(groups, list) or not groups:
            raise ValueError("partition needs 'groups': a list of lists of servers")
        seen: set[str] = set()
        clean: list[list[str]] = []
        for group in groups:
            if not isinstance(group, list) or not group:
                raise ValueError("partition needs 'groups': a list of lists of servers")
            members = []
            for sid in group:
                if not isinstance(sid, str) or (servers is not None and sid not in servers):
                    raise ValueError(f"partition: unknown server {sid!r}")
                if sid in seen:
                    raise ValueError(f"partition lists {sid} twice")
                seen.add(sid)
                members.append(sid)
            clean.append(members)
        return {"op": "partition", "groups": clean}
    if op == "write":
        value = action.get("value", "")
        if not isinstance(value, str) or len(value) > 1000:
            raise ValueError("write needs 'value': a string of at most 1000 characters")
        return {"op": "write", "key": _text(action, "key"), "value": value, **via()}
    if op == "remove":
        return {"op": "remove", "peer": server("peer"), **via()}
    if op == "transfer":
        return {"op": "transfer", "target": server("target"), **via()}
    if op == "settings":
        out: Action = {"op": "settings"}
        for name in ("pre_vote", "check_quorum"):
            value = action.get(name)
            if not isinstance(value, bool):
                raise ValueError(f"settings needs {name!r}: true or false")
            out[name] = value
        return out
    raise ValueError(f"unknown action {op!r}")


# ---------------------------------------------------------------------- permalinks

def encode_permalink(data: dict[str, Any]) -> str:
    """URL-safe base64 of compact JSON (floats as Python writes them: exactly)."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_permalink(text: str) -> tuple[SessionSpec, list[Action], float]:
    """(spec, actions with their times, the time the link was made), or ValueError."""
    if not isinstance(text, str) or len(text) > 4 * MAX_SCENARIO_BYTES + 1_000_000:
        raise ValueError("not a raftsim permalink")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("not a raftsim permalink (bad base64 or JSON)") from None
    if not isinstance(data, dict) or data.get("v") != PERMALINK_VERSION:
        raise ValueError("not a raftsim permalink of a version this raftsim reads")
    name = data.get("scenario_name")
    spec = SessionSpec(servers=data.get("servers", 5), seed=data.get("seed", 0),
                       pre_vote=data.get("pre_vote", True),
                       check_quorum=data.get("check_quorum", True),
                       scenario=data.get("scenario"),
                       scenario_name=name if isinstance(name, str) else None,
                       lesson=data.get("lesson", False))
    until = data.get("until", 0.0)
    if not _time_ok(until):
        raise ValueError("permalink: 'until' must be a virtual time in seconds")
    actions = data.get("actions", [])
    if not isinstance(actions, list) or len(actions) > MAX_ACTIONS:
        raise ValueError(f"permalink: 'actions' must be a list of at most {MAX_ACTIONS}")
    out: list[Action] = []
    last = 0.0
    for action in actions:
        if not isinstance(action, dict) or not _time_ok(action.get("t")):
            raise ValueError("permalink: every action needs a virtual time 't'")
        t = float(action["t"])
        if t < last:
            raise ValueError("permalink: actions must be in time order")
        last = t
        clean = validate_action({k: v for k, v in action.items() if k != "t"})
        out.append({"t": t, **clean})
    return spec, out, max(float(until), last)


def _time_ok(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value <= MAX_SESSION_SECONDS)


# ---------------------------------------------------------------------- what is seen

def entry_label(entry: Entry) -> str:
    """A few words for a log entry (its tooltip on the page)."""
    if entry.kind is EntryKind.NOOP:
        return "no-op (a new leader's first entry)"
    if entry.kind is EntryKind.CONFIGURATION:
        try:
            servers = json.loads(entry.data)
            voters = [s[0] for s in servers if s[2]]
            others = [s[0] for s in servers if not s[2]]
        except (ValueError, TypeError, IndexError):
            return "configuration"
        text = "configuration: voters " + ",".join(voters)
        return text + (f"; non-voters {','.join(others)}" if others else "")
    try:
        op = msgpack.unpackb(entry.data, raw=False)
    except Exception:
        return "command"
    if isinstance(op, list) and op and op[0] == "put" and len(op) >= 3:
        value = op[2]
        shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return f"put {op[1]}={shown[:40]}"
    if isinstance(op, list) and op and op[0] == "delete" and len(op) >= 2:
        return f"delete {op[1]}"
    return "command"


#: records after which a server's configuration answer may read differently
_CONFIG_NEWS = frozenset({"role", "config", "config-committed", "start", "crash", "fault",
                          "snapshot-installed"})

_KIND_CODE = {EntryKind.COMMAND: "c", EntryKind.NOOP: "n", EntryKind.CONFIGURATION: "g"}


class _Board:
    """Messages in flight and recent drops, kept from the trace's send/deliver/drop."""

    def __init__(self) -> None:
        self.in_flight: dict[int, dict[str, Any]] = {}
        self.drops: deque[dict[str, Any]] = deque(maxlen=DROP_LENGTH)
        self._drop_serial = itertools.count(1)

    def on_record(self, rec: Record) -> None:
        kind = rec["kind"]
        if kind == "send":
            msg: dict[str, Any] = {"id": rec["id"], "from": rec["server"], "to": rec["to"],
                                   "type": rec.get("msg", "rpc"), "term": rec["term"],
                                   "t": rec["t"]}
            for key in ("n", "ok", "granted", "pre", "commit", "prev", "match", "index"):
                if key in rec:
                    msg[key] = rec[key]
            self.in_flight[rec["id"]] = msg
        elif kind == "deliver":
            self.in_flight.pop(rec["id"], None)
        elif kind == "drop":
            sent = self.in_flight.pop(rec["id"], None)
            base = sent or {"id": rec["id"], "from": rec["server"], "to": rec["to"],
                            "type": rec.get("msg", "rpc"), "term": rec["term"], "t": rec["t"]}
            self.drops.append({**base, "drop": next(self._drop_serial), "at": rec["t"],
                               "reason": rec.get("reason", "")})


class _Feed:
    """The narration of the trace, line by line, exactly as ``narrate`` tells it."""

    def __init__(self) -> None:
        self.lines: deque[dict[str, Any]] = deque(maxlen=FEED_LENGTH)
        self.count = 0
        self._narrator = Narrator()

    def on_record(self, rec: Record) -> None:
        line = self._narrator.line(rec)
        if line is not None:
            self.count += 1
            self.lines.append({"n": self.count, "t": rec.get("t", 0.0),
                               "server": rec.get("server"), "term": rec.get("term", 0),
                               "kind": rec.get("kind"), "text": line.text,
                               "tone": _tone(rec)})

    def since(self, n: int) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["n"] > n]


def _tone(rec: Record) -> str:
    """A colour class for a narrated line."""
    kind = rec.get("kind")
    if kind == "role":
        return {"leader": "lead", "candidate": "elect",
                "pre-candidate": "elect"}.get(str(rec.get("role")), "follow")
    if kind == "fault":
        return "heal" if rec.get("fault") in ("heal", "restart", "resume") else "fault"
    if kind in ("config", "config-committed"):
        return "config"
    if kind == "api":
        status = rec.get("status", 0)
        return "api" if isinstance(status, int) and 0 < status < 400 else "bad"
    if kind in ("step-down", "transfer-aborted"):
        return "fault"
    if kind in ("election-timeout", "timeout-now", "vote"):
        return "elect"
    if kind == "say":
        return "say"
    return ""


# ---------------------------------------------------------------------- pumps

@dataclass(frozen=True, slots=True)
class RunFor:
    """Let this much virtual time pass."""

    seconds: float


@dataclass(frozen=True, slots=True)
class RunUntil:
    """Let time pass until the clock reads exactly ``when``."""

    when: float


@dataclass(frozen=True, slots=True)
class StepOnce:
    """Run until the next trace record, then finish that instant."""


Grant = RunFor | RunUntil | StepOnce
Pump = Callable[["UiSession"], Grant]


class ReplayDone(BaseException):
    """Raised by :class:`ReplayPump` when the log is replayed (a BaseException, so that
    nothing on the way out of a scenario mistakes it for a failure of its own)."""


class ReplayPump:
    """Applies a logged action at its exact time, then runs to ``until`` and raises
    :class:`ReplayDone` (``digest`` then holds the trace digest at that moment).

    ``until_stop``: a lesson's replay ends instead at its ``until_stop``-th stop (Back);
    a lesson's holds apply nothing, as the live page cannot act while one lasts."""

    def __init__(self, actions: list[Action], until: float,
                 until_stop: int | None = None) -> None:
        self.actions = deque(actions)
        self.until = until
        self.until_stop = until_stop
        self.digest: str | None = None

    def __call__(self, session: UiSession) -> Grant:
        if self.until_stop is not None:
            if session.holding and session.stops >= self.until_stop or \
                    session.scenario_verdict is not None:
                self.digest = session.digest()
                raise ReplayDone()
            if session.holding:
                return RunFor(0.0)
            if not self.actions:
                return RunFor(STEP_HORIZON)
        elif session.holding:
            return RunFor(0.0)
        while self.actions and self.actions[0]["t"] <= session.now:
            action = self.actions.popleft()
            session.apply({k: v for k, v in action.items() if k != "t"})
        if self.until_stop is not None and not self.actions:
            return RunFor(STEP_HORIZON)  # on to the stop
        if self.actions:
            return RunUntil(float(self.actions[0]["t"]))
        if session.now < self.until:
            return RunUntil(self.until)
        self.digest = session.digest()
        raise ReplayDone()


class _UiLoop(VirtualTimeLoop):
    """Notes each ``stop()``: a scenario waiting for a condition stops the loop when it
    holds, and a paced run must then hand control back at once, as an unpaced one would."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_requested = False

    def stop(self) -> None:
        self.stop_requested = True
        super().stop()

    def stop_quietly(self) -> None:
        """Stop for the session's own reasons (a step), unnoticed by the paced run."""
        super().stop()


class _UiCluster(Cluster):
    """The session's cluster. While a scenario plays, the runner's ``run_for`` and
    ``run`` go through the session's pump; ``close`` waits for the session."""

    pacer: UiSession | None = None
    closable = False

    def run_for(self, seconds: float) -> None:
        if self.pacer is None:
            super().run_for(seconds)
        else:
            self.pacer._paced_run_for(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.pacer is None:
            return super().run(coro)
        return self.pacer._paced_run(coro)

    def close(self) -> None:
        if self.closable:
            super().close()


# ---------------------------------------------------------------------- the session

class UiSession:
    """A cluster being watched and played with. Build, drive (or advance), act, look,
    close. Not thread-safe: one thread owns a session."""

    def __init__(self, spec: SessionSpec, *, number: int = 1) -> None:
        self.spec = spec
        #: which session this is, for the page (it clears its picture when this changes)
        self.number = number
        self.actions: list[Action] = []
        self.scenario: Scenario | None = None
        #: None while the scenario has not finished; then its verdict in words
        self.scenario_verdict: str | None = None
        self._scenario_started = False
        self._pump: Pump | None = None
        self._apps: set[str] | None = None  # servers whose HTTP application is built
        self._stepping = False
        self._step_hit = False
        self.closed = False
        #: a lesson's stops so far (one per ``say`` step reached), whether the lesson is
        #: holding at the last one now, its text, and the times the stops came at
        self.stops = 0
        self.holding = False
        self.stop_text = ""
        self.stop_times: list[float] = []
        #: for each logged action, the stops the lesson had made before it (Back keeps
        #: the actions taken before the stop it goes back to)
        self.action_stops: list[int] = []
        if spec.scenario is not None:
            self.scenario = load_scenario_text(spec.scenario, spec.scenario_name or "scenario")
        self.loop = _UiLoop()
        try:
            self.cluster = self._build_cluster()
        except BaseException:
            if not self.loop.is_closed():
                self.loop.close()
            raise
        recorder = self.cluster.recorder
        assert recorder is not None
        self.recorder = recorder
        #: something happened that may change a configuration answer
        self.configs_stale = True
        self.board = _Board()
        self.feed = _Feed()
        for rec in recorder.records:  # the start records, made while building
            self._on_record(rec)
        recorder.listeners.append(self._on_record)
        self.api = SimApi(self.cluster)
        self._apps = set()
        for sid in self.cluster.ids:  # every application from the start: same run always
            self._build_app(sid)
        self.api_log: deque[dict[str, Any]] = deque(maxlen=API_LOG_LENGTH)
        self._api_serial = itertools.count(1)
        self.config_answers: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, asyncio.Task[None]] = {}

    def _build_cluster(self) -> _UiCluster:
        spec = self.spec
        scenario = self.scenario
        if scenario is None:
            table = ClusterSpec(servers=tuple(default_ids(spec.servers)),
                                latency=UI_LATENCY, pre_vote=spec.pre_vote,
                                check_quorum=spec.check_quorum)
            return build_cluster(table, seed=spec.seed, loop=self.loop, kind=_UiCluster)
        return build_cluster(scenario.cluster, seed=spec.seed, bugs=scenario.bugs,
                             loop=self.loop, kind=_UiCluster)

    # ------------------------------------------------------------------ records

    def _on_record(self, rec: Record) -> None:
        self.board.on_record(rec)
        self.feed.on_record(rec)
        if rec["kind"] in _CONFIG_NEWS:
            self.configs_stale = True
        if rec["kind"] == "start" and self._apps is not None and rec["server"] not in self._apps:
            self._build_app(rec["server"])  # a server a scenario added: its app, now
        if self._stepping and not self._step_hit:
            self._step_hit = True
            self.loop.stop_quietly()  # a step: this record is the event stepped to

    def _build_app(self, sid: str) -> None:
        """Build ``sid``'s HTTP application at a moment the run decides (its start), not
        when the page first asks it something."""
        self.api.app(sid)
        if self._apps is not None:
            self._apps.add(sid)

    def drops_of(self, message: int) -> list[str]:
        """Why the message ``message`` was dropped, each time it was (its trace)."""
        return [str(r.get("reason")) for r in self.recorder.records
                if r["kind"] == "drop" and r.get("id") == message]

    def forget_old_records(self, keep: int) -> None:
        """Drop all but the newest ``keep`` trace records (a long session at high speed
        makes a great many). The page never needs them; the digest then covers only
        what is kept."""
        records = self.recorder.records
        if len(records) > keep:
            del records[:len(records) - keep]

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> float:
        return self.loop.time()

    def _settle(self) -> None:
        """Run whatever is due at this very instant (a quiet moment afterwards)."""
        self.loop.run_for(0)

    def _run_to(self, when: float) -> None:
        """Run until the clock reads exactly ``when``, unless stopped (a step, or a
        scenario's condition) before. ``run_for`` adds to the clock; the last addition
        is exact because the clock is by then within a factor of two of ``when``
        (Sterbenz's lemma), so the sum is ``when`` itself, not a neighbouring float."""
        loop = self.loop
        now = loop.time()
        if when <= now:
            return
        if now < when / 2:
            loop.run_for(when * 0.75 - now)
            if loop.stop_requested or self._step_hit:
                return
        loop.run_for(when - loop.time())

    def _go(self, grant: Grant, limit: float = math.inf) -> None:
        """Carry out what a pump granted, never past ``limit``."""
        if isinstance(grant, RunFor):
            target = self.now + max(grant.seconds, 0.0)
            self._run_to(limit if target >= limit else target)
        elif isinstance(grant, RunUntil):
            self._run_to(min(grant.when, limit))
        else:
            self._step_hit = False
            self._stepping = True
            try:
                self._run_to(min(self.now + STEP_HORIZON, limit))
            finally:
                self._stepping = False
            if self._step_hit:
                self._settle()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass (no scenario steps run)."""
        self._go(RunFor(seconds))

    def advance_to(self, when: float) -> None:
        self._go(RunUntil(when))

    def step(self) -> bool:
        """Run until the next trace record and finish that instant; False when nothing
        happened within :data:`STEP_HORIZON` virtual seconds."""
        self._go(StepOnce())
        return self._step_hit

    # ------------------------------------------------------------------ driving

    def drive(self, pump: Pump) -> None:
        """Run the session under ``pump`` until the pump raises: the scenario first, if
        there is one, then the cluster on its own."""
        self._settle()
        if self.scenario is not None and not self._scenario_started:
            self._scenario_started = True
            self._play_scenario(pump)
        while True:
            self.loop.stop_requested = False
            self._settle()
            grant = pump(self)
            self._go(grant)

    def _after_step(self, step: Step) -> None:
        """In a lesson, hold after each ``say`` step until the visitor asks for more."""
        if isinstance(step.action, Say):
            self._hold()

    def _play_scenario(self, pump: Pump) -> None:
        assert self.scenario is not None
        self._pump = pump
        self.cluster.pacer = self
        runner = ScenarioRunner(self.scenario, seed=self.spec.seed, cluster=self.cluster,
                                after_step=self._after_step)
        try:
            result = runner.run()
        finally:
            self.cluster.pacer = None
            self._pump = None
        if result.failure is None:
            verdict = (f"the scenario passed: {result.expectations} expectation"
                       f"{'' if result.expectations == 1 else 's'} held")
        else:
            verdict = f"the scenario FAILED: {result.failure}"
        self.scenario_verdict = verdict
        self.recorder.record(None, 0, "say", {"text": verdict + "; the cluster runs on"})

    def _hold(self) -> None:
        """A lesson's stop, right after a ``say`` step: ask the pump until it lets the
        lesson go on (Next), and throw its grant away. Nothing runs meanwhile (no
        actions, no polls: the page refuses them), so the run is the scenario's own."""
        if not self.spec.lesson or self._pump is None:
            return
        says = [r for r in reversed(self.recorder.records) if r["kind"] == "say"]
        self.stop_text = str(says[0].get("text", "")) if says else ""
        self.stops += 1
        self.stop_times.append(self.now)
        self.holding = True
        try:
            self._ask_pump()
        finally:
            self.holding = False

    def named_servers(self, text: str) -> list[str]:
        """The servers a lesson's text names (the page highlights them)."""
        return [sid for sid in self.cluster.ids
                if re.search(rf"(?<![\w.-]){re.escape(sid)}(?![\w-])", text)]

    @property
    def lesson_stops_total(self) -> int:
        if self.scenario is None:
            return 0
        return sum(isinstance(step.action, Say) for step in self.scenario.steps)

    def _ask_pump(self) -> Grant:
        assert self._pump is not None
        try:
            return self._pump(self)
        except BaseException:
            # leaving the scenario: its clean-up runs unpaced
            self.cluster.pacer = None
            raise

    def _paced_run_for(self, seconds: float) -> None:
        """The scenario's ``run_for``: the same run, in the slices the pump grants."""
        loop = self.loop
        target = loop.time() + seconds
        while True:
            loop.stop_requested = False
            self._settle()
            if loop.stop_requested or loop.time() >= target:
                return
            grant = self._ask_pump()
            if loop.stop_requested:
                return  # an action the pump applied made the scenario's condition hold
            self._go(grant, target)
            if loop.stop_requested:
                return

    def _paced_run(self, coro: Coroutine[Any, Any, T]) -> T:
        """The scenario's ``run``: until the coroutine is done, at the pump's pace."""
        loop = self.loop
        task = loop.create_task(coro)

        def done(_: object) -> None:
            loop.stop()

        task.add_done_callback(done)
        try:
            while not task.done():
                loop.stop_requested = False
                self._settle()
                if task.done():
                    break
                grant = self._ask_pump()
                if not task.done():
                    self._go(grant)
        except BaseException:
            # unwinding (a new session, a replay's end): the cancelled task must not
            # stop the loop under whatever runs next (the scenario's clean-up)
            task.remove_done_callback(done)
            task.cancel()
            raise
        return task.result()

    # ------------------------------------------------------------------ actions

    def apply(self, action: Any) -> Action:
        """Apply one action now and log it; returns the logged (normal) form."""
        if self.holding:
            raise ValueError("the lesson waits at its text: press Next (or Step) to go on, "
                             "then act")
        clean = validate_action(action, self.cluster.ids)
        clean = self._resolve(clean)
        self._perform(clean)
        logged = {"t": self.now, **clean}
        self.actions.append(logged)
        self.action_stops.append(self.stops)
        self._settle()
        return logged

    def _resolve(self, action: Action) -> Action:
        """Fill in ``via`` for API actions: the leader, else the first running server.
        The log keeps the resolved form, so a replay asks the same server."""
        if action["op"] in _API_OPS and "via" not in action:
            target = self.cluster.leader() or next(iter(self.cluster.running()), None)
            if target is None:
                raise ValueError("no server is running to send the request to")
            action = {**action, "via": target}
        return action

    def _perform(self, action: Action) -> None:
        cluster = self.cluster
        op = action["op"]
        if op in _SERVER_OPS:
            sid = action["server"]
            server = cluster.servers[sid]
            if op == "restart" and server.running:
                raise ValueError(f"{sid} is running; crash it first")
            if op != "restart" and not server.running:
                raise ValueError(f"{sid} is not running; restart it first")
            if op == "pause" and server.paused:
                raise ValueError(f"{sid} is frozen already")
            if op == "resume" and not server.paused:
                raise ValueError(f"{sid} is not frozen")
            getattr(cluster, op)(sid)
        elif op == "partition":
            cluster.partition(action["groups"])
        elif op == "heal":
            cluster.heal()
        elif op == "drop":
            message = self.board.in_flight.get(action["message"])
            if not cluster.network.drop_in_flight(action["message"]):
                raise ValueError(f"message {action['message']} is not on its way any more "
                                 "(it arrived or was dropped)")
            if message is not None:  # the story says what was lost, as for any action
                self.recorder.record(None, 0, "say", {
                    "text": f"you dropped the {message['type']} {message['from']} → "
                            f"{message['to']} (term {message['term']}) on its way"})
        elif op == "settings":
            self._set_settings(action["pre_vote"], action["check_quorum"])
        elif op == "write":
            self._request(action["via"], "PUT", "/v1/kv/" + quote(action["key"], safe="/"),
                          action["value"].encode())
        elif op == "remove":
            self._request(action["via"], "DELETE", f"/v1/operator/raft/peer?id={action['peer']}")
        elif op == "transfer":
            self._request(action["via"], "PUT",
                          f"/v1/operator/raft/transfer-leadership?id={action['target']}")

    def _set_settings(self, pre_vote: bool, check_quorum: bool) -> None:
        """Switch PreVote/CheckQuorum in place, from now on. Both are read where they
        act (starting an election, answering a vote request, the leader's quorum
        check), never cached, so the next election follows the new choice; a server
        restarted later gets it too. Nothing already done is redone."""
        cluster = self.cluster
        settings = dataclasses.replace(cluster.settings, pre_vote=pre_vote,
                                       check_quorum=check_quorum)
        cluster.settings = settings
        for server in cluster.servers.values():
            server.settings = settings
            if server.node is not None:
                server.node.settings = settings
        words = (f"PreVote is now {'on' if pre_vote else 'off'} and CheckQuorum "
                 f"{'on' if check_quorum else 'off'}, for every election from now on")
        self.recorder.record(None, 0, "say", {"text": words})

    def _request(self, via: str, method: str, path: str, body: bytes = b"") -> None:
        """Send one API request through ``SimApi``; the answer lands in ``api_log``
        when the simulation gets there."""
        entry: dict[str, Any] = {"n": next(self._api_serial), "server": via, "method": method,
                                 "path": path, "t": self.now, "status": None, "body": ""}
        if body:
            entry["sent"] = body.decode("utf-8", "replace")[:200]
        self.api_log.append(entry)

        async def call() -> None:
            try:
                response = await self.api.request(via, method, path, body=body)
            except ConnectionRefusedError:
                entry.update(status=0, body="connection refused: the server is down")
            except Exception as exc:  # shown on the page, never raised into the loop
                entry.update(status=0, body=f"{type(exc).__name__}: {exc}")
            else:
                entry.update(status=response.status, body=_body_text(response))
            entry["done"] = self.now

        self.loop.create_task(call())

    # ------------------------------------------------------------------ config answers

    def poll_configurations(self) -> None:
        """Ask every running server for its configuration. An observation, not an
        action: no trace record, the answer comes from local state, and it is called at
        quiet moments only, so it runs nothing of the cluster's own."""
        self.configs_stale = False
        for sid in self.cluster.ids:
            server = self.cluster.servers[sid]
            if not server.running:
                self.config_answers[sid] = {"status": 0, "error": "not running", "t": self.now}
                continue
            task = self._polls.get(sid)
            if task is not None and not task.done():
                continue
            self._polls[sid] = self.loop.create_task(self._poll(sid))
        self._settle()

    async def _poll(self, sid: str) -> None:
        raw = encode_request("GET", CONFIG_PATH)
        asked = self.now
        try:
            response = await exchange(self.api.app(sid), raw)
        except Exception as exc:
            self.config_answers[sid] = {"status": 0, "error": str(exc), "t": asked}
            return
        answer: dict[str, Any] = {"status": response.status, "t": asked}
        if response.status == 200:
            try:
                data = response.json()
                answer["index"] = data.get("Index")
                answer["servers"] = [{"id": s.get("ID"), "leader": bool(s.get("Leader")),
                                      "voter": bool(s.get("Voter"))}
                                     for s in data.get("Servers", [])]
            except (ValueError, AttributeError):
                answer["error"] = "unreadable answer"
        else:
            answer["error"] = _body_text(response)
        self.config_answers[sid] = answer

    # ------------------------------------------------------------------ the picture

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, as plain JSON-able data (narrated lines apart:
        the runner sends those as they come)."""
        cluster = self.cluster
        highest = max(self._last_index(sid) for sid in cluster.ids)
        lo = max(1, highest - LOG_WINDOW + 1)
        servers = [self._server_view(sid, lo, highest + 1) for sid in cluster.ids]
        settings = cluster.settings
        blocked = [[a, b] for a in cluster.ids for b in cluster.ids
                   if a != b and not cluster.network.reachable(a, b)]
        scenario = self.scenario
        return {
            "session": self.number,
            "t": self.now,
            "seed": self.spec.seed,
            "scenario": None if scenario is None else {
                "name": self.spec.scenario_name, "title": scenario.title,
                "description": scenario.description, "verdict": self.scenario_verdict},
            "lesson": None if not self.spec.lesson else {
                "stop": self.stops, "stops": self.lesson_stops_total,
                "holding": self.holding, "text": self.stop_text,
                "names": self.named_servers(self.stop_text)},
            "settings": {"pre_vote": settings.pre_vote, "check_quorum": settings.check_quorum},
            "timing": {"heartbeat": settings.heartbeat_interval,
                       "election_min": settings.election_timeout_min,
                       "election_max": settings.election_timeout_max,
                       "latency": list(cluster.network.latency)},
            "servers": servers,
            "leader": cluster.leader(),
            "log_window": [lo, highest],
            "messages": sorted(self.board.in_flight.values(), key=lambda m: m["id"]),
            "drops": list(self.board.drops),
            "blocked": blocked,
            "config_answers": {sid: self.config_answers.get(sid) for sid in cluster.ids},
            "api_log": list(self.api_log),
            "actions": len(self.actions),
            "feed_count": self.feed.count,
        }

    def _last_index(self, sid: str) -> int:
        server = self.cluster.servers[sid]
        if server.node is not None:
            return server.node.log.last_index
        return server.storage.last_index if isinstance(server.storage, MemoryStorage) else 0

    def _server_view(self, sid: str, lo: int, hi: int) -> dict[str, Any]:
        server = self.cluster.servers[sid]
        node = server.node
        view: dict[str, Any] = {"id": sid}
        if node is None:
            state = server.storage.load()  # a crashed server's disk
            hs = state.hard_state
            entries = [e for e in state.entries if lo <= e.index < hi]
            snap = state.snapshot.index if state.snapshot is not None else 0
            view.update(status="crashed", role=None, term=hs.term, voted_for=hs.voted_for,
                        leader=None, commit=hs.commit,
                        last_index=state.entries[-1].index if state.entries else snap,
                        deadline=None, snapshot_index=snap, config=None)
            commit = hs.commit
        else:
            entries = node.log.slice(lo, hi)
            cfg_index, cfg = node.configuration_index, node.configuration
            view.update(
                status="frozen" if server.paused else "up",
                role=node.role.value, term=node.term, voted_for=node.voted_for,
                leader=node.leader_id, commit=node.commit_index,
                last_index=node.log.last_index,
                # a leader's next deadline is a heartbeat; anyone else's an election
                deadline=None if node.role is Role.LEADER else _finite(node.deadline()),
                snapshot_index=node.log.snapshot_index,
                config={"index": cfg_index, "voters": list(cfg.voters),
                        "nonvoters": [s.id for s in cfg.servers if not s.voter],
                        "committed": cfg_index <= node.commit_index},
            )
            commit = node.commit_index
            if node.role is Role.LEADER:
                # the leader's view of each follower (paper Figure 2: nextIndex, matchIndex)
                view["progress"] = {peer: {"next": pr.next, "match": pr.match,
                                           "state": pr.state.value}
                                    for peer, pr in sorted(node.progress.items())
                                    if peer != sid}
        view["log"] = [[e.index, e.term, _KIND_CODE.get(e.kind, "c"), entry_label(e),
                        e.index <= commit] for e in entries]
        return view

    # ------------------------------------------------------------------ permalinks

    def permalink_data(self) -> dict[str, Any]:
        return {"v": PERMALINK_VERSION, **self.spec.as_dict(), "actions": self.actions,
                "until": self.now}

    def permalink(self) -> str:
        return encode_permalink(self.permalink_data())

    @classmethod
    def replay(cls, spec: SessionSpec, actions: list[Action], until: float, *,
               number: int = 1) -> UiSession:
        """A new session with ``actions`` applied at their times, run to ``until``: the
        same run as the one they were logged in. A scenario plays as it did, and is
        abandoned at ``until`` (the web UI replays through its own pump instead, so the
        scenario plays on)."""
        session = cls(spec, number=number)
        pump = ReplayPump(actions, until)
        try:
            session.drive(pump)
        except ReplayDone:
            pass
        except BaseException:
            session.close()
            raise
        return session

    @classmethod
    def from_permalink(cls, text: str, *, number: int = 1) -> UiSession:
        spec, actions, until = decode_permalink(text)
        return cls.replay(spec, actions, until, number=number)

    def digest(self) -> str:
        """The trace digest: equal digests, equal runs."""
        return self.recorder.digest()

    # ------------------------------------------------------------------ the end

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._on_record in self.recorder.listeners:
            self.recorder.listeners.remove(self._on_record)
        self.cluster.pacer = None
        self.cluster.closable = True
        try:
            self.api.close()
        finally:
            self.cluster.close()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _body_text(response: ApiResponse) -> str:
    text = response.text.strip()
    return text[:300] + ("…" if len(text) > 300 else "")
