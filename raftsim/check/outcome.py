"""Playing a schedule once and judging it: invariants after every event, then the KV
history for linearizability. Used by the fuzzer, its reducer and the property tests."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from raftsim.check.history import KvHistory, resolve_unknown
from raftsim.check.linearizability import Event, LinearizabilityResult, check_history
from raftsim.check.player import PlayedStep, SchedulePlayer, scenario_of

__all__ = ["LINEARIZABILITY", "LINEARIZABILITY_STEPS", "CaseRun", "judge", "play_schedule",
           "trace_digest"]

#: the name a linearizability failure is reported under, next to the invariants'
LINEARIZABILITY = "linearizability"
#: the search budget for one run's history (a verdict of "unknown" past it)
LINEARIZABILITY_STEPS = 500_000


@dataclass(slots=True)
class CaseRun:
    """What one play of a schedule did and how it was judged."""

    played: list[PlayedStep]
    violations: list[Any]
    linearizability: LinearizabilityResult | None
    digest: str
    end_time: float
    history: KvHistory
    #: the history with unknown outcomes settled from the committed log
    events: list[Event] = field(default_factory=list)
    #: unexpected exceptions inside the servers or the API (bugs, not faults)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.violations) or (self.linearizability is not None
                                         and self.linearizability.verdict == "violation")

    @property
    def invariant(self) -> str | None:
        if self.violations:
            return str(self.violations[0].invariant)
        if self.linearizability is not None and self.linearizability.verdict == "violation":
            return LINEARIZABILITY
        return None

    @property
    def message(self) -> str | None:
        if self.violations:
            return str(self.violations[0].message)
        if self.linearizability is not None and self.linearizability.verdict == "violation":
            return self.linearizability.message
        return None

    @property
    def time(self) -> float | None:
        if self.violations:
            return float(self.violations[0].t)
        return None

    @property
    def record(self) -> dict[str, Any] | None:
        if self.violations:
            return dict(self.violations[0].record)
        return None

    @property
    def inconclusive(self) -> bool:
        return (not self.failed and self.linearizability is not None
                and self.linearizability.verdict == "unknown")


def trace_digest(records: Sequence[dict[str, Any]]) -> str:
    """A SHA-256 of the trace, one ``repr`` per record: the same records give the same
    digest in any process (dicts keep their insertion order; every value is a string,
    number, bool, None or a list of them). Several times cheaper than the JSON digest
    of :meth:`TraceRecorder.digest`, and just as deterministic."""
    h = hashlib.sha256()
    for record in records:
        h.update(repr(record).encode())
        h.update(b"\n")
    return h.hexdigest()


class _ErrorLog(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        self.errors.append(text)


@contextmanager
def _captured_api_errors(errors: list[str]) -> Iterator[None]:
    """The API logs an exception it did not expect; keep it as a finding instead of
    printing a traceback in the middle of a campaign's progress bar."""
    logger = logging.getLogger("raftsim.api")
    handler = _ErrorLog(errors)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def play_schedule(steps: Sequence[dict[str, Any]], *, cluster: dict[str, Any], seed: int,
                  bugs: Sequence[str] = (), clients_of: Sequence[str | None] | None = None,
                  trace_messages: bool = False, title: str = "fuzz schedule",
                  linearizability_steps: int = LINEARIZABILITY_STEPS) -> CaseRun:
    """Play ``steps`` (scenario step tables) on a fresh cluster through the scenario
    runner's engine; stop at the first invariant violation, else check the KV history.
    """
    scenario = scenario_of(list(steps), cluster=cluster, seed=seed, bugs=tuple(bugs),
                           title=title)
    clients: Sequence[str | None] = clients_of or [None] * len(steps)
    player = SchedulePlayer(scenario, trace_messages=trace_messages)
    errors: list[str] = []
    with _captured_api_errors(errors):
        cluster_ = player.begin()

        def on_exception(loop: Any, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            errors.append(f"{context.get('message')}"
                          + (f": {type(exc).__name__}: {exc}" if exc is not None else ""))

        cluster_.loop.set_exception_handler(on_exception)
        try:
            for step, table, client in zip(scenario.steps, steps, clients, strict=True):
                player.play(step, table, client)
                if player.violations:
                    break
            else:
                player.end()
        except BaseException:
            player.close()
            raise
        return judge(player, errors, linearizability_steps=linearizability_steps)


def judge(player: SchedulePlayer, errors: list[str] | None = None, *,
          linearizability_steps: int = LINEARIZABILITY_STEPS) -> CaseRun:
    """Close a played run and judge it: the invariant checker's verdict, else the KV
    history's linearizability (unknown outcomes settled from the committed log)."""
    try:
        cluster = player.cluster
        recorder = cluster.recorder
        assert recorder is not None
        digest = trace_digest(recorder.records)
        end_time = cluster.now
        committed = player.checker.committed_log()
    finally:
        player.close()
    violations = player.violations
    lin: LinearizabilityResult | None = None
    events: list[Event] = []
    if not violations:
        events = resolve_unknown(player.history.events, committed)
        lin = check_history(events, max_steps=linearizability_steps)
    return CaseRun(player.played, violations, lin, digest, end_time, player.history, events,
                   list(errors or []))
