"""Playing a scenario on a simulated cluster, in virtual time, and judging it.

Steps run one after the other. A step first waits for its time (``at``, ``after``, or
until its ``when`` condition holds), then acts. Requests go through the real HTTP API
(:class:`SimApi`) and wait for their answer unless ``background``; expectations are
checked at once or, with ``eventually``, as soon as they hold. The first step that fails
ends the run. Every step leaves records in the trace (faults, ``say``, ``api``,
``client`` answers, ``expect`` verdicts), so the narration, the HTML timeline and the
golden digest all tell the same story.

Waiting for a condition does not poll on a clock: the condition is re-checked right
after any callback that made a trace record, so "when s1 leads" fires in the same
instant s1 becomes leader, before its first AppendEntries arrives anywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from raftsim.api.inmemory import ApiResponse, SimApi
from raftsim.check.invariants import InvariantChecker, Violation
from raftsim.core.ready import Role
from raftsim.scenario.build import build_cluster
from raftsim.scenario.conditions import ConditionCheck, ServedConfiguration
from raftsim.scenario.model import (
    SET_BASES,
    Action,
    Condition,
    Cut,
    DiskFault,
    Expect,
    Heal,
    NetworkSetting,
    Partition,
    Request,
    Say,
    Scenario,
    ServerFault,
    Step,
    Wait,
)
from raftsim.sim.cluster import Cluster
from raftsim.sim.trace import Record

__all__ = ["Failure", "RequestObserver", "RunResult", "ScenarioRunner", "StepFailure",
           "json_mismatch", "run_scenario"]

#: how long the end of a run waits for background requests still in flight
BACKGROUND_GRACE = 30.0
#: how long a step waits for the answer to a request it does not send in the background
#: (a paused server answers nothing until it resumes)
CLIENT_TIMEOUT = 30.0
#: how much of an answer's body a failure message repeats (the trace's client record has
#: the whole body)
ANSWER_EXCERPT = 160

_REFERENCE = re.compile(r"\$(\$|[A-Za-z_][A-Za-z0-9_-]*)")


class StepFailure(Exception):
    """The current step did not go as the scenario says (exit status 1)."""


@dataclass(frozen=True, slots=True)
class Failure:
    step: int | None
    kind: str | None
    t: float
    message: str

    def __str__(self) -> str:
        where = f"step {self.step} ({self.kind})" if self.step is not None else "the run"
        return f"{where} at t={self.t:.3f}s: {self.message}"


@dataclass(slots=True)
class RunResult:
    scenario: Scenario
    seed: int
    bugs: tuple[str, ...]
    failure: Failure | None
    records: list[Record]
    digest: str
    end_time: float
    expectations: int
    steps_run: int
    violations: list[Violation] = field(default_factory=list)
    #: every check judged: expectations, 'when' conditions and answers
    checks: int = 0

    @property
    def passed(self) -> bool:
        return self.failure is None

    @property
    def servers(self) -> list[str]:
        return list(self.scenario.all_servers)


class RequestObserver(Protocol):
    """Sees every request a step sends and how it ended (the fuzz player keeps its KV
    history this way). ``request_sent`` is called when the step acts, before anything
    is sent, and returns a ticket; ``request_ended`` gets that ticket and the answer, or
    None when the request was cancelled unanswered at the end of the run."""

    def request_sent(self, step: Step, method: str, path: str, body: bytes) -> object: ...

    def request_ended(self, ticket: object, response: ApiResponse | None) -> None: ...


def json_mismatch(expected: Any, actual: Any, path: str = "json") -> str | None:
    """Where ``actual`` fails to contain ``expected``: keys of an expected object must be
    present (others may be too); lists must have the same length and match element by
    element; anything else must be equal (true is not 1)."""
    def shown(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, actual {shown(actual)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: expected {shown(value)}, actual (missing)"
            found = json_mismatch(value, actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected a list, actual {shown(actual)}"
        if len(expected) != len(actual):
            return (f"{path}: expected {len(expected)} elements, actual {len(actual)}: "
                    f"{shown(actual)}")
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            found = json_mismatch(want, got, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(expected, bool) != isinstance(actual, bool) or expected != actual:
        return f"{path}: expected {shown(expected)}, actual {shown(actual)}"
    return None


class _Waiter:
    """Stops the loop once ``predicate`` holds, checking right after any callback that
    made a record (a callback of its own, so the state it sees is settled)."""

    def __init__(self, cluster: Cluster, predicate: Callable[[], bool]) -> None:
        self.cluster = cluster
        self.predicate = predicate
        self.active = True
        self._scheduled = False

    def on_record(self, rec: Record) -> None:
        if self.active and not self._scheduled:
            self._scheduled = True
            self.cluster.loop.call_soon(self._check)

    def _check(self) -> None:
        self._scheduled = False
        if self.active and self.predicate():
            self.active = False
            self.cluster.loop.stop()


class ScenarioRunner:
    """Runs one scenario once. ``listeners`` see every trace record as it is made (the
    ones the cluster made while starting first).

    ``cluster``: play on this cluster instead of building one from the scenario's
    ``[cluster]`` table (the UI's paced cluster); it stays the caller's to close.
    ``observer`` sees every request; ``judge_answers=False`` records answers without
    failing the run on them (the fuzz player does both). ``after_step`` is called after
    each step :meth:`run` plays (a UI lesson holds there after a ``say``).

    :meth:`run` plays every step. Someone that plays steps one at a time instead (the
    fuzz player) calls :meth:`start`, then :meth:`wait_for_time` and :meth:`run_step`
    per step, :meth:`finish_background` and :meth:`close`.
    """

    def __init__(self, scenario: Scenario, *, seed: int | None = None,
                 bugs: tuple[str, ...] = (),
                 listeners: tuple[Callable[[Record], None], ...] = (),
                 cluster: Cluster | None = None,
                 observer: RequestObserver | None = None,
                 judge_answers: bool = True,
                 trace_messages: bool = True,
                 after_step: Callable[[Step], None] | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.bugs = tuple(dict.fromkeys((*scenario.bugs, *bugs)))
        self.listeners = listeners
        self.observer = observer
        self.judge_answers = judge_answers
        self.trace_messages = trace_messages
        self.after_step = after_step
        self.bindings: dict[str, str] = {}
        #: values kept from answers (``keep``), by name
        self.values: dict[str, Any] = {}
        self.expectations = 0
        #: every check judged: expectations, 'when' conditions, answers
        self.checks = 0
        self._given_cluster = cluster
        self._background: list[asyncio.Task[str | None]] = []
        self._background_failure: Failure | None = None
        self.cluster: Cluster
        self.api: SimApi
        self.checker: InvariantChecker

    # -------------------------------------------------------------- the run

    def start(self) -> Cluster:
        """Build the cluster (or take the given one) and attach the listeners, the
        invariant checker and the HTTP API."""
        cluster = self._given_cluster
        if cluster is None:
            cluster = build_cluster(self.scenario.cluster, seed=self.seed, bugs=self.bugs,
                                    trace_messages=self.trace_messages)
        self.cluster = cluster
        recorder = cluster.recorder
        assert recorder is not None
        for listener in self.listeners:
            for rec in recorder.records:
                listener(rec)
            recorder.listeners.append(listener)
        self.checker = InvariantChecker(cluster)
        self.api = SimApi(cluster)
        return cluster

    def run(self) -> RunResult:
        cluster = self.start()
        recorder = cluster.recorder
        assert recorder is not None
        failure: Failure | None = None
        steps_run = 0
        try:
            for step in self.scenario.steps:
                try:
                    self.run_step(step)
                    steps_run += 1
                    self._check_invariants()
                    if self.after_step is not None:
                        self.after_step(step)
                except StepFailure as exc:
                    message = str(exc)
                    try:  # a broken invariant is the deeper cause: name it first
                        self._check_invariants()
                    except StepFailure as broken:
                        if str(broken) != message:
                            message = f"{broken} (then: {message})"
                    failure = Failure(step.number, step.kind, cluster.now, message)
                if failure is None and self._background_failure is not None:
                    failure = self._background_failure
                if failure is not None:
                    break
            if failure is None:
                failure = self.finish_background()
            if failure is None:
                self.checker.finish()
                try:
                    self._check_invariants()
                except StepFailure as exc:
                    failure = Failure(None, None, cluster.now, str(exc))
            end_time = cluster.now
            records = list(recorder.records)
            digest = recorder.digest()
        finally:
            self.close()
        return RunResult(self.scenario, self.seed, self.bugs, failure, records, digest,
                         end_time, self.expectations, steps_run,
                         list(self.checker.violations), self.checks)

    def _check_invariants(self) -> None:
        violations = self.checker.violations
        if violations:
            first = violations[0]
            raise StepFailure(f"safety invariant {first.invariant!r} broke at "
                              f"t={float(first.t):.3f}s: {first.message}")

    def finish_background(self) -> Failure | None:
        """Wait (at most :data:`BACKGROUND_GRACE`) for requests still in flight; the
        failure one of them met, if any."""
        pending = [t for t in self._background if not t.done()]
        if pending:
            self.cluster.run(asyncio.wait(pending, timeout=BACKGROUND_GRACE))
        return self._background_failure

    def close(self) -> None:
        """Cancel what is still in flight, detach, close the API, and close the cluster
        unless it was given."""
        cluster = self.cluster
        self.checker.detach()
        recorder = cluster.recorder
        if recorder is not None:
            for listener in self.listeners:
                if listener in recorder.listeners:
                    recorder.listeners.remove(listener)
        pending = [t for t in self._background if not t.done()]
        for task in pending:
            task.cancel()
        if pending and not cluster.loop.is_closed():
            cluster.run(_settle(pending))
        try:
            self.api.close()
        finally:
            if self._given_cluster is None:
                cluster.close()

    # -------------------------------------------------------------- references

    def resolve(self, ref: str) -> str | None:
        """The server a reference means now; None when there is none (no leader...)."""
        if ref.startswith("$"):
            return self.bindings.get(ref[1:])
        if ref.split(" ", 1)[0] in SET_BASES:
            members = self.resolve_set(ref)
            return members[0] if members else None
        if ref == "leader":
            return self.cluster.leader()
        if ref == "follower":
            return self._follower()
        return ref

    def resolve_set(self, ref: str) -> list[str]:
        """The members, in id order, of a set reference ("voters except $old"): voters
        are those of the newest configuration a running server holds; followers are the
        running, unpaused voters that follow; servers are all of the cluster's."""
        base, _, rest = ref.partition(" except ")
        base = base.strip()
        excluded = set()
        for part in rest.split(",") if rest else []:
            sid = self.resolve(part.strip())
            if sid is not None:
                excluded.add(sid)
        if base == "servers":
            members = list(self.cluster.ids)
        else:
            voters = self._newest_voters()
            members = [sid for sid in self.cluster.ids if sid in voters]
            if base == "followers":
                members = [sid for sid in members if self._is_follower(sid)]
        return [sid for sid in members if sid not in excluded]

    def _newest_voters(self) -> set[str]:
        newest: tuple[int, set[str]] = (-1, set())
        for sid in self.cluster.ids:
            node = self.cluster.servers[sid].node
            if node is not None and node.configuration_index > newest[0]:
                config = node.configuration
                newest = (node.configuration_index,
                          {s.id for s in config.servers if s.voter})
        return newest[1]

    def _is_follower(self, sid: str) -> bool:
        server = self.cluster.servers[sid]
        node = server.node
        return (node is not None and not server.paused and node.role is Role.FOLLOWER
                and node.configuration.is_voter(sid))

    def _expand(self, refs: tuple[str, ...]) -> tuple[str, ...]:
        """A list of references with each set replaced by its members."""
        out: list[str] = []
        for ref in refs:
            if ref.split(" ", 1)[0] in SET_BASES:
                out.extend(self.resolve_set(ref))
            else:
                out.append(ref)
        return tuple(out)

    def _follower(self) -> str | None:
        """The first running, unpaused voter (in id order) that is a follower."""
        for sid in self.cluster.ids:
            server = self.cluster.servers[sid]
            node = server.node
            if (node is not None and not server.paused and node.role is Role.FOLLOWER
                    and node.configuration.is_voter(sid)):
                return sid
        return None

    def require(self, ref: str) -> str:
        sid = self.resolve(ref)
        if sid is None:
            raise StepFailure(f"there is no {ref} at the moment")
        return sid

    def interpolate(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in self.values:
                kept = self.values[name]
                return kept if isinstance(kept, str) else json.dumps(kept)
            return "$" if name == "$" else self.bindings.get(name, match.group(0))

        return _REFERENCE.sub(replace, text)

    def _interpolate_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.interpolate(value)
        if isinstance(value, list):
            return [self._interpolate_json(v) for v in value]
        if isinstance(value, dict):
            return {k: self._interpolate_json(v) for k, v in value.items()}
        return value

    # -------------------------------------------------------------- time

    def wait_until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Run until ``predicate()`` holds (True) or ``seconds`` pass (False)."""
        cluster = self.cluster
        deadline = cluster.now + seconds
        if predicate():
            return True
        recorder = cluster.recorder
        assert recorder is not None
        waiter = _Waiter(cluster, predicate)
        recorder.listeners.append(waiter.on_record)
        try:
            while cluster.now < deadline:
                waiter.active = True
                cluster.run_for(deadline - cluster.now)
                if predicate():
                    return True
            return False
        finally:
            waiter.active = False
            recorder.listeners.remove(waiter.on_record)

    def wait_for_time(self, step: Step) -> None:
        """Let time pass until ``step`` is due (its ``at``, ``after`` or ``when``)."""
        timing = step.timing
        cluster = self.cluster
        if timing.at is not None:
            late = cluster.now - timing.at
            if late > 1e-9:
                raise StepFailure(
                    f"it is due at t={timing.at:g}s (at = {timing.at:g}), but the steps "
                    f"before it ran until t={cluster.now:.3f}s; give it a later 'at', or "
                    "use 'after'")
            cluster.run_for(max(timing.at - cluster.now, 0.0))
        elif timing.after is not None:
            cluster.run_for(timing.after)
        elif timing.when is not None:
            condition = timing.when
            self.checks += 1
            if not self.wait_until(lambda: self._check(condition).holds(), timing.within):
                check = self._check(condition)
                problems = "; ".join(str(m) for m in check.mismatches())
                raise StepFailure(f"waited {timing.within:g}s for 'when' ({check.describe()})"
                                  f" but it did not hold: {problems}")

    # -------------------------------------------------------------- steps

    def run_step(self, step: Step) -> None:
        """Wait for ``step``'s time, then act (StepFailure when it does not go as the
        scenario says)."""
        self.wait_for_time(step)
        action = step.action
        for name, ref in step.bind_servers:
            self.bindings[name] = self.require(ref)
        if step.bind is not None and not isinstance(action, Expect):
            # bound before acting, so the step's own text may mention it
            self.bindings[step.bind] = self._subject(action)
        if isinstance(action, ServerFault):
            self._fault(action.fault, self.require(action.target))
        elif isinstance(action, Partition):
            groups = [[self.require(ref) for ref in self._expand(group)]
                      for group in action.groups]
            self._cluster_call(lambda: self.cluster.partition(groups))
        elif isinstance(action, Cut):
            source, target = self.require(action.source), self.require(action.target)
            self._cluster_call(lambda: self.cluster.cut(source, target))
        elif isinstance(action, Heal):
            self.cluster.heal()
        elif isinstance(action, NetworkSetting):
            self._network_setting(action)
        elif isinstance(action, DiskFault):
            self._disk_fault(action, self.require(action.target))
        elif isinstance(action, Wait):
            pass
        elif isinstance(action, Say):
            self._record(None, "say", {"text": self.interpolate(action.text)})
        elif isinstance(action, Expect):
            self._expect(action)
            if step.bind is not None:
                self.bindings[step.bind] = self._subject(action)
        else:
            self._request(step, action)

    def _subject(self, action: Action) -> str:
        """What ``as`` binds: the server the action is about, else the leader."""
        ref: str | None = None
        if isinstance(action, ServerFault | DiskFault):
            ref = action.target
        elif isinstance(action, Request):
            if action.kind == "add":
                assert action.subject is not None
                return action.subject
            ref = action.subject if action.subject is not None else action.via
        if ref is not None:
            return self.require(ref)
        leader = self.cluster.leader()
        if leader is None:
            raise StepFailure("'as' binds the leader for this kind of step, but no server "
                              "leads now")
        return leader

    def _record(self, server: str | None, kind: str, fields: dict[str, Any]) -> None:
        recorder = self.cluster.recorder
        if recorder is not None:
            node = self.cluster.servers[server].node if server is not None else None
            recorder.record(server, node.term if node is not None else 0, kind, fields)

    def _cluster_call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except ValueError as exc:
            raise StepFailure(str(exc)) from None

    def _fault(self, fault: str, sid: str) -> None:
        server = self.cluster.servers[sid]
        if fault == "restart" and server.running:
            raise StepFailure(f"cannot restart {sid}: it is running (crash it first)")
        if fault in ("crash", "pause", "resume", "isolate") and not server.running:
            raise StepFailure(f"cannot {fault} {sid}: it is not running (restart it first)")
        if fault == "pause" and server.paused:
            raise StepFailure(f"cannot pause {sid}: it is paused already")
        if fault == "resume" and not server.paused:
            raise StepFailure(f"cannot resume {sid}: it is not paused")
        self._cluster_call(lambda: getattr(self.cluster, fault)(sid))

    def _disk_fault(self, action: DiskFault, sid: str) -> None:
        """A disk fault of ``sid`` (fail_fsync and disk_full fail its next save,
        torn_write tears its next log write, corrupt damages its newest committed
        record, slow_disk makes its saves take time)."""
        cluster = self.cluster
        calls: dict[str, Callable[[], object]] = {
            "fail_fsync": lambda: cluster.fail_disk(sid, "fsync"),
            "disk_full": lambda: cluster.fail_disk(sid, "write"),
            "torn_write": lambda: cluster.torn_write(sid),
            "corrupt": lambda: cluster.corrupt_disk(sid),
            "slow_disk": lambda: cluster.slow_disk(sid, action.seconds),
        }
        call = calls[action.fault]

        def act() -> None:
            call()

        self._cluster_call(act)

    def _network_setting(self, action: NetworkSetting) -> None:
        network = self.cluster.network
        value = action.value
        if isinstance(value, tuple):
            network.set_latency(*value)
            shown: Any = list(value)
        elif action.name == "loss":
            network.set_loss(value)
            shown = value
        elif action.name == "duplication":
            network.set_duplication(value)
            shown = value
        else:
            network.set_reorder(value)
            shown = value
        self._record(None, "fault", {"fault": action.name, "value": shown})

    # -------------------------------------------------------------- expectations

    def _check(self, condition: Condition,
               configs: dict[str, ServedConfiguration] | None = None) -> ConditionCheck:
        if condition.kv is not None:
            condition = dataclasses.replace(
                condition, kv={k: self.interpolate(v) for k, v in condition.kv.items()})
        if condition.entry is not None:
            entry = condition.entry
            condition = dataclasses.replace(condition, entry=dataclasses.replace(
                entry, key=None if entry.key is None else self.interpolate(entry.key),
                value=None if entry.value is None else self.interpolate(entry.value)))
        changes: dict[str, Any] = {}
        for key in ("on", "voters", "nonvoters"):
            refs = getattr(condition, key)
            if refs is not None:
                changes[key] = self._expand(refs)
        for f in dataclasses.fields(condition):
            value = getattr(condition, f.name)
            if isinstance(value, str) and value.startswith("$") and f.name not in (
                    "leader", "leader_not"):
                changes[f.name] = self._kept_number(value)
        if changes:
            condition = dataclasses.replace(condition, **changes)
        return ConditionCheck(condition, self.cluster, self.resolve, configs)

    def _kept_number(self, ref: str) -> int:
        kept = _number(self.values.get(ref[1:]))
        if not isinstance(kept, int):
            raise StepFailure(f"{ref} was kept as {json.dumps(kept)}, not a whole number")
        return kept

    def _expect(self, action: Expect) -> None:
        condition = action.condition
        if action.eventually is not None:
            self.wait_until(lambda: self._check(condition).holds(), action.eventually)
        configs = None
        if condition.needs_api:
            ids, _ = self._check(condition)._on()
            configs = self.cluster.run(self._served_configurations(ids))
        check = self._check(condition, configs)
        mismatches = check.mismatches()
        text = check.describe()
        if action.eventually is not None:
            text += f" (within {action.eventually:g}s)"
        self.expectations += 1
        self.checks += 1
        if mismatches:
            problems = "; ".join(str(m) for m in mismatches)
            self._record(None, "expect", {"ok": False, "text": f"{text}: {problems}"})
            raise StepFailure(problems)
        self._record(None, "expect", {"ok": True, "text": text})

    async def _served_configurations(self, ids: list[str]
                                     ) -> dict[str, ServedConfiguration]:
        """Each server's committed configuration, asked of its API with ?stale."""
        served: dict[str, ServedConfiguration] = {}
        for sid in ids:
            server = self.cluster.servers[sid]
            if not server.running:
                served[sid] = "not running"
                continue
            if server.paused:  # SIGSTOPped: it would answer only after it resumes
                served[sid] = "paused, so it answers nothing"
                continue
            response = await self._send(sid, "GET", "/v1/operator/raft/configuration?stale")
            try:
                if response.status != 200:
                    raise ValueError(response.status)
                listed = response.json()["Servers"]
                voters = tuple(str(s["ID"]) for s in listed if s["Voter"])
                nonvoters = tuple(str(s["ID"]) for s in listed if not s["Voter"])
            except (ValueError, KeyError, TypeError):
                served[sid] = f"answered {response.status}: {_excerpt(response)}"
                continue
            served[sid] = (voters, nonvoters)
        return served

    # -------------------------------------------------------------- requests

    async def _send(self, sid: str, method: str, path: str, body: bytes = b"",
                    headers: dict[str, str] | None = None,
                    timeout: float | None = None) -> ApiResponse:
        """The answer; status 0 when the connection was refused or, with ``timeout``,
        no answer came in time."""
        request = self.api.request(sid, method, path, body=body, headers=headers)
        try:
            if timeout is None:
                return await request
            return await asyncio.wait_for(request, timeout)
        except ConnectionRefusedError:
            return ApiResponse(0, {}, b"connection refused")
        except TimeoutError:
            return ApiResponse(0, {}, f"no answer within {timeout:g}s".encode())

    def _request(self, step: Step, action: Request) -> None:
        via = self.require(action.via)
        method, path, body, headers = self._build_request(action, via)
        ticket = (self.observer.request_sent(step, method, path, body)
                  if self.observer is not None else None)
        coro = self._exchange(step, action, via, method, path, body, headers, ticket)
        if action.background:
            self._background.append(self.cluster.loop.create_task(coro))
        else:
            failure = self.cluster.run(coro)
            if failure is not None:
                raise StepFailure(failure)

    def _build_request(self, action: Request, via: str
                       ) -> tuple[str, str, bytes, dict[str, str]]:
        kind = action.kind
        if kind in ("write", "read", "delete"):
            assert action.key is not None
            path = "/v1/kv/" + quote(self.interpolate(action.key), safe="/")
            if kind == "write":
                assert action.value is not None
                return "PUT", path, self.interpolate(action.value).encode(), {}
            if kind == "read":
                return "GET", path + ("?stale" if action.stale else ""), b"", {}
            return "DELETE", path, b"", {}
        if kind == "api":
            return (action.method, self.interpolate(action.path),
                    self.interpolate(action.body).encode(),
                    {k: self.interpolate(v) for k, v in action.headers})
        assert action.subject is not None
        if kind == "add":
            subject = action.subject
            if subject not in self.cluster.servers:
                self.cluster.add_server(subject)
            params = [("id", subject), ("address", self.cluster.addresses[subject]),
                      ("voter", "true" if action.voter else "false")]
            return "PUT", f"/v1/operator/raft/peer?{urlencode(params)}", b"", {}
        subject = self.require(action.subject)
        if kind == "remove":
            if action.by == "address":
                query = urlencode([("address", self.cluster.addresses[subject])])
            else:
                query = urlencode([("id", subject)])
            return "DELETE", f"/v1/operator/raft/peer?{query}", b"", {}
        if kind == "promote":
            return "POST", f"/v1/operator/raft/promote?id={quote(subject)}", b"", {}
        path = f"/v1/operator/raft/transfer-leadership?id={quote(subject)}"
        return "PUT", path, b"", {}

    async def _exchange(self, step: Step, action: Request, via: str, method: str,
                        path: str, body: bytes, headers: dict[str, str],
                        ticket: object) -> str | None:
        """Send, narrate the answer, and judge it: the failure message, or None."""
        response: ApiResponse | None = None
        try:
            response = await self._send(via, method, path, body, headers or None,
                                        None if action.background else CLIENT_TIMEOUT)
            return self._answered(step, action, via, response)
        finally:
            if self.observer is not None:
                self.observer.request_ended(ticket, response)

    def _answered(self, step: Step, action: Request, via: str,
                  response: ApiResponse) -> str | None:
        if response.status == 0 and response.body == b"connection refused":
            self._record(via, "client", {"text": "refused the connection: it is not running"})
        elif response.status == 0:
            self._record(via, "client", {"text": f"gave no answer: {response.text}"})
        elif response.text.strip():
            # the api record has the status; this tells what the body said, whole
            self._record(via, "client",
                         {"text": f"answered {response.status}: {response.text.strip()}"})
        if (action.kind == "write" and response.status == 200 and response.text == "true"
                and action.key is not None and action.value is not None):
            self.checker.write_acknowledged(self.interpolate(action.key),
                                            self.interpolate(action.value).encode())
        if not self.judge_answers:
            return None
        self.checks += 1
        problem = self._judge(action, response)
        if problem is None:
            problem = self._keep(action, response)
        if problem is not None and action.background and self._background_failure is None:
            self._background_failure = Failure(step.number, step.kind, self.cluster.now,
                                               f"(in the background) {problem}")
        return problem

    def _judge(self, action: Request, response: ApiResponse) -> str | None:
        answer = action.answer
        if response.status not in answer.statuses:
            excerpt = _excerpt(response)
            wanted = (str(answer.status) if len(answer.statuses) == 1
                      else "one of " + ", ".join(map(str, answer.statuses)))
            return (f"status: expected {wanted}, actual {response.status}"
                    + (f" ({excerpt})" if excerpt else ""))
        if answer.text is not None:
            want = self.interpolate(answer.text)
            if response.text != want:
                return f"text: expected {want!r}, actual {response.text!r}"
        if answer.has_json:
            try:
                got = response.json()
            except ValueError:
                return f"json: expected JSON, actual {response.text[:ANSWER_EXCERPT]!r}"
            problem = json_mismatch(self._interpolate_json(answer.json), got)
            if problem is not None:
                return problem
        if answer.compare:
            problem = self._compare(answer.compare, response)
            if problem is not None:
                return problem
        if action.kind == "read" and action.value is not None and response.status == 200:
            want = self.interpolate(action.value)
            if response.text != want:
                return f"value: expected {want!r}, actual {response.text!r}"
        return None


    def _compare(self, compare: tuple[tuple[str, Any], ...], response: ApiResponse
                 ) -> str | None:
        try:
            got = response.json()
        except ValueError:
            return f"compare: expected JSON, actual {_excerpt(response)!r}"
        for path, (operator, operand) in compare:
            found, value = json_at(got, path)
            if not found:
                return f"compare.{path}: the answer has no {path}"
            if isinstance(operand, str):
                want = self.values.get(operand[1:])
                shown = f"{operand} ({json.dumps(want)})"
            else:
                want, shown = operand, str(operand)
            left, right = _number(value), _number(want)
            if left is None or right is None or not _COMPARE[operator](left, right):
                return (f"compare.{path}: expected {operator} {shown}, actual "
                        f"{json.dumps(value)}")
        return None

    def _keep(self, action: Request, response: ApiResponse) -> str | None:
        """Bind the values ``keep`` names; a problem if the answer lacks one."""
        if not action.answer.keep:
            return None
        try:
            got = response.json()
        except ValueError:
            return f"keep: expected JSON to keep values from, actual {_excerpt(response)!r}"
        for name, path in action.answer.keep:
            found, value = json_at(got, path)
            if not found:
                return f"keep.{name}: the answer has no {path}"
            self.values[name] = value
        return None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _number(value: Any) -> int | float | None:
    """A number, or one written as text (Nomad's raft stats are strings: "term": "2")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def json_at(value: Any, path: str) -> tuple[bool, Any]:
    """The value at a JSON path such as ``Servers[0].ID``: (found, value)."""
    for match in _PATH_PART.finditer(path):
        name, index = match.group(1), match.group(2)
        if name is not None:
            if not isinstance(value, dict) or name not in value:
                return False, None
            value = value[name]
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                return False, None
            value = value[position]
    return True, value


async def _settle(tasks: list[asyncio.Task[str | None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _excerpt(response: ApiResponse) -> str:
    text = response.text.strip()
    if len(text) > ANSWER_EXCERPT:
        text = text[:ANSWER_EXCERPT] + "..."
    return text


def run_scenario(scenario: Scenario, *, seed: int | None = None, bugs: tuple[str, ...] = (),
                 listeners: tuple[Callable[[Record], None], ...] = ()) -> RunResult:
    """Run ``scenario`` once and judge it."""
    return ScenarioRunner(scenario, seed=seed, bugs=bugs, listeners=listeners).run()

