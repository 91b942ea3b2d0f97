"""Playing generated schedules through the scenario runner's own engine, leniently.

A fuzz schedule is a list of scenario steps (the dicts a ``[[step]]`` table holds), but
written before anyone knows what the run will do: "crash the leader" when there may be
none, "restart $c" when the crash was skipped. :class:`SchedulePlayer` is the scenario
runner with two differences: a step that cannot act is skipped instead of failing the
run, and answers are recorded instead of judged. Everything else -- building the
cluster, waiting for a step's time, applying faults, sending requests in the background,
the invariant checker -- is the runner's code, so what happens is what ``raftsim run``
does.

What the player records is a *resolved* script: each step as it actually acted, with
every server reference replaced by the server it meant, and each skipped step replaced
by a ``say`` (so the clock is advanced by the same calls). That script, with each
request's answer status written in, is a scenario file that ``raftsim run`` plays
identically, record for record.

It also keeps the history of the KV requests for the linearizability checker.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from raftsim.api.inmemory import ApiResponse
from raftsim.check.history import KvHistory, KvOp, kv_op_of_request
from raftsim.check.invariants import Violation
from raftsim.check.schedule import READ_INDEX
from raftsim.scenario.load import parse_scenario
from raftsim.scenario.model import (
    Action,
    Cut,
    DiskFault,
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
from raftsim.scenario.runner import ScenarioRunner, StepFailure
from raftsim.sim.cluster import Cluster

__all__ = ["PlayedStep", "SchedulePlayer", "Skip", "scenario_of"]

class Skip(Exception):
    """The step cannot act now (no such server, already crashed...): skip it."""


@dataclass(slots=True)
class PlayedStep:
    """One step as it was played: the resolved step table, or why it was skipped."""

    #: the step's number in the schedule (1-based, as in scenario errors)
    number: int
    step: dict[str, Any]
    skipped: str | None = None
    #: the answer of a request step, once it came
    status: int | None = None
    body: bytes | None = None
    #: extra answer checks to write into the reproducer (e.g. a read's expected value)
    pin: dict[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return self.skipped is None and _request_kind(self.step) is not None


def _request_kind(step: dict[str, Any]) -> str | None:
    for kind in ("write", "read", "delete", "api", "add", "remove", "promote", "transfer"):
        if kind in step:
            return kind
    return None


def scenario_of(steps: list[dict[str, Any]], *, cluster: dict[str, Any] | None = None,
                seed: int = 0, bugs: tuple[str, ...] = (), title: str = "schedule",
                name: str = "schedule.toml") -> Scenario:
    """Parse step tables with the scenario loader (so they are checked as a file is)."""
    document: dict[str, Any] = {"title": title, "seed": seed, "bugs": list(bugs),
                                "cluster": dict(cluster or {}), "step": steps}
    return parse_scenario(document, name)


class SchedulePlayer(ScenarioRunner):
    """Plays a schedule step by step: ``begin()``, ``play(step)`` for each, ``end()``.

    ``trace_messages=False`` leaves message send/deliver/drop records out of the trace
    (the bulk of it); what the servers do is the same. The player is the runner's own
    request observer (it keeps the KV history), and answers are not judged.
    """

    def __init__(self, scenario: Scenario, *, seed: int | None = None,
                 bugs: tuple[str, ...] = (), trace_messages: bool = True) -> None:
        super().__init__(scenario, seed=seed, bugs=bugs, judge_answers=False,
                         trace_messages=trace_messages)
        self.observer = self
        self.history = KvHistory()
        self.played: list[PlayedStep] = []
        self._playing: int | None = None
        #: each client's requests in flight: played-step index -> time sent
        self.in_flight: dict[str, dict[int, float]] = {}
        #: the value each (key, modify index) was read with (for ``?cas=N`` in the
        #: history), and the index each client last read of each key
        self.versions: dict[tuple[str, int], str] = {}
        self.last_read: dict[tuple[str, str], int] = {}
        self._client_of: dict[int, str] = {}
        self._ops: dict[int, KvOp] = {}

    # -------------------------------------------------------------- lifecycle

    def begin(self) -> Cluster:
        """Build the cluster and attach the checker and the API, as ``run`` does."""
        return self.start()

    @property
    def violations(self) -> list[Violation]:
        return list(self.checker.violations)

    def play(self, step: Step, table: dict[str, Any], client: str | None = None
             ) -> PlayedStep:
        """Wait for ``step``'s time, then act, or skip; ``table`` is its step table.
        A request step of ``client`` is skipped while that client waits for an answer."""
        self.wait_for_time(step)
        at = round(self.cluster.now, 6)
        number = step.number
        try:
            if client is not None:
                self._client_ready(client)
            action = self._concrete(step.action, client)
        except Skip as why:
            # a step that only waits keeps the clock's steps the same on replay
            played = PlayedStep(number, {"at": at}, str(why))
            self.played.append(played)
            return played
        resolved = _table_of(action, table)
        resolved = {"at": at, **resolved}
        played = PlayedStep(number, resolved)
        self.played.append(played)
        self._playing = len(self.played) - 1
        if client is not None and isinstance(action, Request):
            self.in_flight.setdefault(client, {})[self._playing] = self.cluster.now
            self._client_of[self._playing] = client
        try:
            self.run_step(Step(number, step.kind, action, Timing(), step.bind))
        except StepFailure as exc:  # pragma: no cover - _concrete should prevent it
            raise RuntimeError(f"step {number} failed in the player: {exc}") from exc
        finally:
            self._playing = None
        return played

    def end(self) -> None:
        """Wait (bounded) for requests still in flight and run the checker's end-of-run
        checks, as ``run`` does after the last step."""
        self.finish_background()
        self.checker.finish()

    def close(self) -> None:
        # SimApi.aclose iterates its dict of applications while it awaits each close,
        # and a forwarded request arriving meanwhile builds one more ("dictionary
        # changed size during iteration"): build every server's now, the run is over
        cluster = self.cluster
        if not cluster.loop.is_closed():
            for sid in list(cluster.servers):
                self.api.app(sid)
        super().close()

    #: a client waits this long for an answer before it gives up on it (the request
    #: stays in flight, its outcome unknown to the client) and sends the next one...
    CLIENT_PATIENCE = 1.0
    #: ...but never has more than this many requests in flight
    CLIENT_MAX_IN_FLIGHT = 2

    def _client_ready(self, client: str) -> None:
        requests = self.in_flight.get(client)
        if not requests:
            return
        if len(requests) >= self.CLIENT_MAX_IN_FLIGHT:
            raise Skip(f"client {client} has {len(requests)} requests in flight")
        newest = max(requests.values())
        if self.cluster.now - newest < self.CLIENT_PATIENCE:
            raise Skip(f"client {client} is still waiting for an answer")

    # -------------------------------------------------------------- resolving

    def _server(self, ref: str) -> str:
        sid = self.resolve(ref)
        if sid is None:
            raise Skip(f"there is no {ref} at the moment")
        if sid not in self.cluster.servers:
            raise Skip(f"{sid} does not exist")
        return sid

    def _concrete(self, action: Action, client: str | None = None) -> Action:
        """``action`` with server references (and a ``?cas=read-index``) resolved, or
        Skip when it cannot act."""
        cluster = self.cluster
        if isinstance(action, ServerFault):
            sid = self._server(action.target)
            server = cluster.servers[sid]
            fault = action.fault
            if fault == "restart" and server.running:
                raise Skip(f"{sid} is running")
            if fault in ("crash", "pause", "resume", "isolate") and not server.running:
                raise Skip(f"{sid} is not running")
            if fault == "pause" and server.paused:
                raise Skip(f"{sid} is paused already")
            if fault == "resume" and not server.paused:
                raise Skip(f"{sid} is not paused")
            return ServerFault(fault, sid)
        if isinstance(action, DiskFault):
            return replace(action, target=self._server(action.target))
        if isinstance(action, Partition):
            groups = tuple(tuple(self._server(ref) for ref in group)
                           for group in action.groups)
            flat = [sid for group in groups for sid in group]
            if len(set(flat)) != len(flat):
                raise Skip("a server would be in two groups")
            return Partition(groups)
        if isinstance(action, Cut):
            source, target = self._server(action.source), self._server(action.target)
            if source == target:
                raise Skip(f"cut from {source} to itself")
            return Cut(source, target)
        if isinstance(action, Request):
            changes: dict[str, Any] = {}
            if action.kind != "add" and action.subject is not None:
                changes["subject"] = self._server(action.subject)
            changes["via"] = self._server(action.via)
            if action.kind == "api" and f"?cas={READ_INDEX}" in action.path:
                changes["path"] = self._read_index_path(action.path, client)
            return replace(action, **changes)
        return action

    def _read_index_path(self, path: str, client: str | None) -> str:
        """``path`` with the modify index ``client`` last read of its key."""
        key = unquote(path.partition("?")[0].removeprefix("/v1/kv/"))
        index = self.last_read.get((client or "", key))
        if index is None:
            raise Skip(f"client {client} has read no modify index of {key!r} yet")
        return path.replace(f"?cas={READ_INDEX}", f"?cas={index}")

    # -------------------------------------------------------------- requests

    def request_sent(self, step: Step, method: str, path: str, body: bytes) -> object:
        """Enter a KV request in the history; the ticket is its played step's index."""
        index = self._playing
        op = kv_op_of_request(method, path, body, self.versions)
        if op is not None and index is not None:
            self.history.invoke(f"r{index}", op, self.cluster.now, tag=index)
            self._ops[index] = op
        return index

    def request_ended(self, ticket: object, response: ApiResponse | None) -> None:
        """Record the answer in the played step and the history; the client is free."""
        index = ticket if isinstance(ticket, int) else None
        if index is None:
            return
        for requests in self.in_flight.values():
            requests.pop(index, None)
        if response is None:
            return
        played = self.played[index]
        played.status = response.status
        played.body = response.body
        op = self._ops.pop(index, None)
        modify_index = response.header("X-Nomad-Index")
        if (op is not None and op.f == "read" and response.status == 200
                and modify_index is not None and modify_index.isdigit()):
            self.versions[(op.key, int(modify_index))] = response.text
            client = self._client_of.get(index)
            if client is not None:
                self.last_read[(client, op.key)] = int(modify_index)
        if self.history.is_open(f"r{index}"):
            self.history.complete(f"r{index}", response.status, response.body,
                                  self.cluster.now)


def _table_of(action: Action, original: dict[str, Any]) -> dict[str, Any]:
    """The step table of a resolved action (keys other than the action's are dropped:
    timing is written by the caller, and ``as`` is resolved away)."""
    if isinstance(action, ServerFault):
        return {action.fault: action.target}
    if isinstance(action, DiskFault):
        if action.fault == "slow_disk":
            return {"slow_disk": {"server": action.target, "seconds": action.seconds}}
        return {action.fault: action.target}
    if isinstance(action, Partition):
        return {"partition": [list(group) for group in action.groups]}
    if isinstance(action, Cut):
        return {"cut": {"from": action.source, "to": action.target}}
    if isinstance(action, Heal):
        return {"heal": True}
    if isinstance(action, NetworkSetting):
        value = action.value
        return {action.name: list(value) if isinstance(value, tuple) else value}
    if isinstance(action, Say):
        return {"say": action.text}
    if isinstance(action, Wait):
        return {}
    if isinstance(action, Request):
        kind = action.kind
        raw = original.get(kind)
        table = dict(raw) if isinstance(raw, dict) else {}
        for key in ("status", "json", "text"):
            table.pop(key, None)
        if kind == "read":
            table.pop("value", None)
        if kind == "add":
            table["server"] = action.subject
        if kind in ("write", "read", "delete", "add", "remove", "promote", "transfer"):
            table["via"] = action.via
        if kind == "api":
            table["server"] = action.via
            table["path"] = action.path
        if kind in ("remove", "promote", "transfer"):
            table["server"] = action.subject
        return {kind: table}
    raise TypeError(f"cannot write {type(action).__name__} as a step")  # pragma: no cover
