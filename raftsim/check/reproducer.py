"""Turning a failing fuzz run into a short scenario file that ``raftsim run`` fails on.

1. The run's *resolved* steps (every server reference replaced by the server it meant,
   skipped steps by a ``say``) replay it exactly; everything after the step at which the
   first invariant broke is dropped.
2. Reduction (delta debugging, within a budget of runs): drop chunks of steps, halving
   the chunk size, and keep a drop whenever the run still breaks the same invariant.
   Each kept candidate is replayed leniently and its resolved steps become the new
   current schedule, so the result is always a valid, exact script.
3. Every request's answer status is written into its step (the runner judges answers,
   and these are the answers this run gives). A linearizability failure is pinned on
   the read that no linearizable store could have answered so: its step says what a
   linearizable store may answer, and the run fails on that step.
4. The file is played once more by the plain scenario runner, which must fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftsim.check.history import legal_read_values
from raftsim.check.linearizability import operations_from_events
from raftsim.check.outcome import LINEARIZABILITY, CaseRun, play_schedule
from raftsim.check.player import PlayedStep
from raftsim.check.tomlwrite import scenario_toml
from raftsim.core.bugs import BUGS
from raftsim.scenario.errors import ScenarioError

__all__ = ["Reproducer", "ReductionBudget", "reduce_schedule", "verify_reproducer",
           "write_reproducer", "write_scenario_file"]

_REQUESTS = ("write", "read", "delete", "api", "add", "remove", "promote", "transfer")


@dataclass(frozen=True, slots=True)
class ReductionBudget:
    """How hard to try: at most ``runs`` replays and ``seconds`` of wall time."""

    runs: int = 150
    seconds: float = 60.0


@dataclass(slots=True)
class Reproducer:
    path: Path
    steps: int
    original_steps: int
    invariant: str
    message: str
    #: whether ``raftsim run`` failed on the file when it was checked
    verified: bool
    verify_message: str
    runs: int


@dataclass(slots=True)
class _Schedule:
    steps: list[dict[str, Any]]
    run: CaseRun


def _waits_only(step: dict[str, Any]) -> bool:
    return set(step) <= {"at", "after", "when", "within"}


def _resolved(run: CaseRun) -> list[dict[str, Any]]:
    """The steps as they acted (the last one is where the first invariant broke)."""
    return [dict(p.step) for p in run.played]


class _Reducer:
    def __init__(self, *, cluster: dict[str, Any], seed: int, bugs: Sequence[str],
                 invariant: str, budget: ReductionBudget,
                 log: Callable[[str], None] | None) -> None:
        self.cluster = cluster
        self.seed = seed
        self.bugs = tuple(bugs)
        self.invariant = invariant
        self.budget = budget
        self.runs = 0
        self.started = time.perf_counter()
        self.log = log

    def exhausted(self) -> bool:
        return (self.runs >= self.budget.runs
                or time.perf_counter() - self.started >= self.budget.seconds)

    def attempt(self, steps: list[dict[str, Any]],
                clients_of: Sequence[str | None] | None = None) -> _Schedule | None:
        """Play ``steps``; the schedule it resolves to if it still fails the same way."""
        self.runs += 1
        try:
            run = play_schedule(steps, cluster=self.cluster, seed=self.seed, bugs=self.bugs,
                                clients_of=clients_of)
        except ScenarioError:
            return None  # e.g. a step names a server whose `add` was dropped
        if run.invariant != self.invariant:
            return None
        return _Schedule(_resolved(run), run)

    def reduce(self, current: _Schedule) -> _Schedule:
        # drop every placeholder at once first: they only keep the clock's steps
        if any(_waits_only(s) for s in current.steps):
            trial = self.attempt([s for s in current.steps if not _waits_only(s)])
            if trial is not None:
                current = trial
        chunks = 2
        while not self.exhausted() and len(current.steps) > 1:
            size = max(1, len(current.steps) // chunks)
            reduced = False
            start = 0
            while start < len(current.steps) and not self.exhausted():
                candidate = current.steps[:start] + current.steps[start + size:]
                trial = self.attempt(candidate) if candidate else None
                if trial is not None and len(trial.steps) < len(current.steps):
                    current = trial
                    reduced = True
                    if self.log is not None:
                        self.log(f"reduced to {len(current.steps)} steps")
                else:
                    start += size
            if not reduced:
                if size == 1:
                    break
                chunks *= 2
            else:
                chunks = max(2, chunks)
        return current


def reduce_schedule(steps: list[dict[str, Any]], *, cluster: dict[str, Any], seed: int,
                    bugs: Sequence[str], invariant: str,
                    clients_of: Sequence[str | None] | None = None,
                    budget: ReductionBudget = ReductionBudget(),
                    log: Callable[[str], None] | None = None) -> tuple[_Schedule, int]:
    """The shortest still-failing resolved schedule found within ``budget``; and the
    number of replays it took. ``clients_of`` goes with a generated schedule (see
    :class:`~raftsim.check.schedule.FuzzCase`)."""
    reducer = _Reducer(cluster=cluster, seed=seed, bugs=bugs, invariant=invariant,
                       budget=budget, log=log)
    first = reducer.attempt(steps, clients_of)
    if first is None:
        raise RuntimeError("the failing schedule did not fail again when replayed")
    result = reducer.reduce(first)
    return result, reducer.runs


# ---------------------------------------------------------------- pinning answers

def _pin_statuses(played: list[PlayedStep]) -> list[dict[str, Any]]:
    steps = []
    for p in played:
        step = {k: (dict(v) if isinstance(v, dict) else v) for k, v in p.step.items()}
        for kind in _REQUESTS:
            table = step.get(kind)
            if isinstance(table, dict) and p.status is not None:
                table["status"] = p.status
                table.update(p.pin)
        steps.append(step)
    return steps


def _culprit(run: CaseRun) -> tuple[int, object] | None:
    """(played-step index, a value a linearizable store may answer) of a read that no
    linearizable store could have answered as it was answered."""
    result = run.linearizability
    if result is None or result.verdict != "violation" or result.key is None:
        return None
    ops = [op for op in operations_from_events(run.events) if op.key == result.key]
    by_client = {op.client: op for op in ops}
    candidates: list[object] = [None]
    for op in result.history:
        value = op.input[1] if op.f == "cas" and isinstance(op.input, tuple) else op.input
        if op.f in ("write", "cas") and value not in candidates:
            candidates.append(value)
    reads = sorted((op for op in result.history if op.f == "read" and op.ret is not None),
                   key=lambda op: op.ret_time or 0.0)
    for histories in (ops, list(result.history)):
        for read in reads:
            target = by_client.get(read.client) if histories is ops else read
            if target is None or not read.client[1:].isdigit():
                continue
            legal = legal_read_values(histories, target, candidates=candidates)
            if legal and target.output not in legal:
                return int(read.client[1:]), legal[-1]
    return None


def _pin_linearizability(run: CaseRun) -> str | None:
    """Write the culprit read's legal answer into its step; the explanation."""
    found = _culprit(run)
    if found is None:
        return None
    index, value = found
    played = run.played[index]
    if value is None:
        played.pin = {"status": 404}
        want = "absent (404)"
    else:
        played.pin = {"status": 200, "value": str(value)}
        want = repr(value)
    read = played.step.get("read", {})
    got = ("absent (404)" if played.status == 404
           else repr((played.body or b"").decode("utf-8", errors="replace")))
    return (f"the read of {read.get('key')!r} via {read.get('via')} at t={played.step['at']}"
            f" answered {got}; a linearizable store could answer {want} there")


# ---------------------------------------------------------------- the file

def _describe_record(record: dict[str, Any] | None) -> str:
    if record is None:
        return "(end of run)"
    fields = {k: v for k, v in record.items() if k not in ("t", "server", "term", "kind")}
    rest = ", ".join(f"{k}={v}" for k, v in fields.items())
    return (f"t={record.get('t')} {record.get('server')} (term {record.get('term')}) "
            f"{record.get('kind')}" + (f": {rest}" if rest else ""))


def write_reproducer(path: Path, *, steps: list[dict[str, Any]], cluster: dict[str, Any],
                     seed: int, bugs: Sequence[str], invariant: str,
                     clients_of: Sequence[str | None] | None = None,
                     budget: ReductionBudget = ReductionBudget(),
                     log: Callable[[str], None] | None = None,
                     verify: bool = True) -> Reproducer:
    """Reduce the failing schedule ``steps`` (resolved or not), pin its answers, write it
    to ``path`` and check that ``raftsim run`` fails on it."""
    schedule, runs = reduce_schedule(steps, cluster=cluster, seed=seed, bugs=bugs,
                                     invariant=invariant, clients_of=clients_of,
                                     budget=budget, log=log)
    origin = (f"Found by `raftsim fuzz` at seed {seed}. Reduced from {len(steps)} to "
              f"{len(schedule.steps)} steps in {runs} replays.")
    written = write_scenario_file(path, schedule.run, cluster=cluster, seed=seed, bugs=bugs,
                                  title=f"fuzz seed {seed}", origin=origin)
    verified, verify_message = (verify_reproducer(path) if verify else (False, "not checked"))
    return Reproducer(path, written, len(steps), schedule.run.invariant or invariant,
                      schedule.run.message or "", verified, verify_message, runs)


def write_scenario_file(path: Path, run: CaseRun, *, cluster: dict[str, Any], seed: int,
                        bugs: Sequence[str], title: str, origin: str) -> int:
    """Write the failing ``run``'s resolved steps as a scenario file, answers pinned (and
    a linearizability failure pinned on its read); the number of steps written."""
    invariant = run.invariant or "unknown"
    explanation = _pin_linearizability(run) if invariant == LINEARIZABILITY else None
    pinned = _pin_statuses(run.played)
    message = run.message or ""
    lines = [origin]
    if bugs:
        lines.append(f"Bug switches: {', '.join(bugs)}.")
    lines.append(f"Broken: {invariant}: {message}")
    if run.record is not None:
        lines.append(f"First violating event: {_describe_record(run.record)}")
    if explanation:
        lines.append(f"Pinned: {explanation}.")
    for bug in bugs:
        if bug in BUGS:
            lines.append(f"Bug switch {bug}: {BUGS[bug]}.")
    lines.append("Every request step states the answer status this run gives; "
                 "replay with: raftsim run " + path.name)
    comments = {k: f"skipped by the fuzzer ({p.skipped}): only waits"
                for k, p in enumerate(run.played) if p.skipped}
    text = scenario_toml(title=f"{title}: {invariant}", description=f"{invariant}: {message}",
                         seed=seed, bugs=list(bugs), cluster=cluster, steps=pinned,
                         header="\n".join(lines), step_comments=comments)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return len(pinned)


def verify_reproducer(path: Path) -> tuple[bool, str]:
    """Whether the plain scenario runner (``raftsim run``) fails on ``path``, and why."""
    from raftsim.scenario import load_scenario, run_scenario

    try:
        result = run_scenario(load_scenario(path))
    except Exception as exc:  # the runner itself broke: say so rather than crash
        return False, f"raftsim run raised {type(exc).__name__}: {exc}"
    if result.failure is None:
        return False, "raftsim run passed the file"
    return True, str(result.failure)

