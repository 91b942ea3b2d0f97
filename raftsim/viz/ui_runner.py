"""The web UI's simulation thread: one :class:`UiSession`, paced to the wall clock.

The web server runs on an ordinary asyncio loop; the simulated cluster has its own
virtual-time loop. Asyncio will not run one loop inside another, so the session lives on
this thread and nothing else touches it. The thread drives the session with a pump
(see ``ui_session``): every ``TICK`` of wall time, while playing, the pump grants the
wall time that passed times the speed (at most ``MAX_SLICE`` of wall time's worth, so a
stall never turns into a burst); paused, it grants nothing and waits for commands. The
page's commands arrive on a queue and are handled inside the pump, so an action always
lands at a quiet moment of the simulation, at the virtual time the log then records.
Frames (a snapshot and the narrated lines not sent yet) go out at most ``PUBLISH_RATE``
times a second, and only when something changed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from raftsim.viz.ui_session import (
    Grant,
    ReplayDone,
    ReplayPump,
    RunFor,
    SessionSpec,
    StepOnce,
    UiSession,
    decode_permalink,
    load_scenario_text,
)
from raftsim.viz.ui_timetravel import TimeMachine, TimeTravelError

__all__ = ["SimRunner", "MIN_SPEED", "MAX_SPEED", "DEFAULT_SPEED"]

log = logging.getLogger(__name__)

MIN_SPEED = 0.01
MAX_SPEED = 100.0
#: a pace at which messages can be followed by eye (10-15 ms hops take 0.2-0.3 s)
DEFAULT_SPEED = 0.05
#: wall seconds between simulation slices
TICK = 0.02
#: the most wall time one slice makes up for
MAX_SLICE = 0.1
#: frames per wall second, at most
PUBLISH_RATE = 20.0
#: wall seconds between configuration polls while playing
POLL_INTERVAL = 0.25
#: narrated lines sent in one frame, at most
MAX_LINES_PER_FRAME = 200
#: trace records kept in memory: past ``MAX_RECORDS``, only the newest ``KEEP_RECORDS``
MAX_RECORDS = 400_000
KEEP_RECORDS = 100_000

#: a session this old (virtual seconds) gets its time machine, so that a jump into a
#: long past is quick from the first one
MACHINE_AFTER = 60.0
#: wall seconds between feeding the time machine what happened
FEED_INTERVAL = 1.0

Frame = dict[str, Any]
Reply = Callable[[dict[str, Any]], None]


class _Replaced(BaseException):
    """The session was replaced: unwind it (and any scenario playing in it)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__()
        self.answer = answer


class _Stopping(BaseException):
    """The runner is stopping."""


class SimRunner:
    """Owns the session and the thread that drives it. ``publish`` is called on that
    thread with each frame (a dict) and must hand it over quickly."""

    def __init__(self, spec: SessionSpec, publish: Callable[[Frame], None], *,
                 speed: float = DEFAULT_SPEED, playing: bool = True,
                 permalink: str | None = None,
                 lessons: Mapping[str, str] | None = None) -> None:
        self._publish = publish
        #: lesson name -> scenario text, the lessons the page may start
        self.lessons = dict(lessons or {})
        #: (session number, stop) of the lesson stop the runner last paused at
        self._held: tuple[int, int] = (0, 0)
        #: the session's time machine (started late or on first use), the past picture
        #: shown instead of the present while travelling, what the page was last sent
        self._machine: TimeMachine | None = None
        self._travel: dict[str, Any] | None = None
        self._last_feed = -1.0
        self._shown: tuple[Any, ...] = ()
        self.speed = _clamp_speed(speed)
        self.playing = playing
        self._commands: queue.SimpleQueue[tuple[dict[str, Any], Reply | None]] = \
            queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raftsim-ui-sim", daemon=True)
        self._replay: ReplayPump | None = None
        self._retired: list[UiSession] = []
        if permalink is not None:
            spec, actions, until = decode_permalink(permalink)
            self._replay = ReplayPump(actions, until)
        self.session = UiSession(spec)
        self._sent_lines = 0
        self._sent_session = 0
        self._last_publish = -1.0
        self._last_poll = -1.0
        self._last_wall = time.monotonic()
        self._next_tick = self._last_wall
        self._step_requested = False
        self._dirty = True
        self.error: str | None = None

    # ------------------------------------------------------------------ outside API

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the session (idempotent)."""
        self._stopping.set()
        self._commands.put(({"op": "_wake"}, None))
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._close_retired()
            self._close_machine()
            self.session.close()

    def submit(self, command: dict[str, Any], reply: Reply | None = None) -> None:
        """Queue a command from the page; ``reply`` is called on the runner's thread."""
        self._commands.put((command, reply))

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._stopping.is_set():
            session = self.session
            try:
                session.drive(self._pump)
            except _Replaced:
                pass
            except _Stopping:
                break
            except Exception as exc:  # a bug in the simulation: stop, say so, keep serving
                log.exception("the simulation failed")
                self.playing = False
                self.error = f"the simulation stopped: {type(exc).__name__}: {exc}"
                self._dirty = True
                self._wait_while_broken(session)
            self._close_retired()

    def _wait_while_broken(self, session: UiSession) -> None:
        """After a failure, serve commands (a new session, a link) but run nothing."""
        while self.session is session and not self._stopping.is_set():
            try:
                self._pump_commands(block=0.2)
            except _Replaced:
                return
            except _Stopping:
                return
            self._maybe_publish(time.monotonic())

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for session in retired:
            try:
                session.close()
            except Exception:
                log.exception("closing a session failed")

    def _pump(self, session: UiSession) -> Grant:
        """The session's pump: commands, frames, polls, and how far to run next."""
        if self._replay is not None:
            try:
                return self._replay(session)
            except ReplayDone:
                self._replay = None
                self.playing = False
                self._dirty = True
                self._last_wall = time.monotonic()
        if session.holding and self._held != (session.number, session.stops):
            self._held = (session.number, session.stops)  # a lesson's stop: wait for Next
            self.playing = False
            self._dirty = True
        while True:
            now = time.monotonic()
            self._maybe_publish(now)
            self._maybe_feed(session, now)
            if self._step_requested:
                self._step_requested = False
                self._dirty = True
                return StepOnce()
            if self.playing and now >= self._next_tick:
                if len(session.recorder.records) > MAX_RECORDS:
                    session.forget_old_records(KEEP_RECORDS)
                slice_ = min(now - self._last_wall, MAX_SLICE) * self.speed
                self._last_wall = now
                self._next_tick = now + TICK
                return RunFor(slice_)
            if not self.playing:
                self._last_wall = now
            wait = max(self._next_tick - now, 0.0) if self.playing else 0.25
            if self._dirty:  # a frame is waiting for its slot
                wait = min(wait, max(self._last_publish + 1.0 / PUBLISH_RATE - now, 0.0))
            self._pump_commands(block=wait)

    def _pump_commands(self, block: float) -> None:
        """Handle queued commands, waiting up to ``block`` seconds for the first."""
        if self._stopping.is_set():
            raise _Stopping()
        try:
            command, reply = self._commands.get(timeout=block)
        except queue.Empty:
            return
        while True:
            if self._stopping.is_set():
                raise _Stopping()
            if command.get("op") != "_wake":
                self._dirty = True
                try:
                    answer = self._handle(command)
                except _Replaced as replaced:
                    if reply is not None:
                        reply({"ok": True, **replaced.answer})
                    raise
                if reply is not None:
                    reply(answer)
            try:
                command, reply = self._commands.get_nowait()
            except queue.Empty:
                return

    def _maybe_publish(self, now: float) -> None:
        """Poll the configurations now and then, and send a frame when one is due."""
        soon = now - self._last_poll >= 1.0 / PUBLISH_RATE
        if self.session.holding:
            pass  # a lesson's hold runs nothing, not even a poll
        elif (self.playing and now - self._last_poll >= POLL_INTERVAL) or \
                (soon and (self._dirty or self.session.configs_stale)):
            self._last_poll = now
            self._poll()
        if not (self._dirty or self.playing) or \
                now - self._last_publish < 1.0 / PUBLISH_RATE:
            return
        self._last_publish = now
        self._dirty = False
        self._publish(self.frame())

    def _maybe_feed(self, session: UiSession, now: float) -> None:
        """Keep the time machine up with the session (starting it once it is worth it)."""
        if now - self._last_feed < FEED_INTERVAL:
            return
        self._last_feed = now
        if self._machine is None and session.now < MACHINE_AFTER:
            return
        try:
            self._machine_for(session).feed(session.actions, session.now)
        except (OSError, TimeTravelError):
            log.exception("the time machine failed; it starts again on the next jump")
            self._close_machine()

    def _machine_for(self, session: UiSession) -> TimeMachine:
        if self._machine is None:
            self._machine = TimeMachine(session.spec)
        return self._machine

    def _close_machine(self) -> None:
        machine, self._machine = self._machine, None
        if machine is not None:
            try:
                machine.close()
            except Exception:
                log.exception("closing the time machine failed")

    def _travel_to(self, t: Any) -> dict[str, Any]:
        """Show the session as it was at virtual time ``t`` (None: the present)."""
        session = self.session
        if t is None:
            self._travel = None
            return {"t": session.now}
        if isinstance(t, bool) or not isinstance(t, int | float) or not t >= 0:
            raise ValueError("travel needs 't': a virtual time in seconds, or null for now")
        self.playing = False
        if t >= session.now:
            self._travel = None
            return {"t": session.now}
        started = time.monotonic()
        machine = self._machine_for(session)
        try:
            machine.feed(session.actions, session.now)
            answer = machine.show(float(t))
        except (OSError, TimeTravelError) as exc:
            self._close_machine()
            raise ValueError(f"time travel failed: {exc}") from None
        self._travel = answer
        return {"t": answer["t"], "checkpoint": answer.get("checkpoint"),
                "took": round(time.monotonic() - started, 3)}

    def _poll(self) -> None:
        try:
            self.session.poll_configurations()
        except Exception:
            log.exception("polling the configuration failed")

    def frame(self) -> Frame:
        """The state frame: the snapshot, the pace, and narrated lines not sent yet (or,
        while travelling, the picture of the past, with the lines up to then)."""
        session = self.session
        travel = self._travel
        shown: tuple[Any, ...] = (session.number, None if travel is None else travel["t"])
        if shown != self._shown:
            self._shown = shown
            self._sent_session = -1  # the page starts its picture again
        if travel is not None:
            reset = self._sent_session == -1
            self._sent_session = -2  # the past picture is on the page
            return {"type": "state", **travel["snapshot"], "playing": False,
                    "speed": self.speed, "reset": reset,
                    "lines": travel["lines"] if reset else [], "skipped_lines": 0,
                    "error": self.error, "replaying": False,
                    "travel": {"t": travel["t"], "now": session.now,
                               "checkpoint": travel.get("checkpoint")},
                    "now": session.now}
        reset = self._sent_session != session.number
        if reset:
            self._sent_session = session.number
            self._sent_lines = 0
        lines = session.feed.since(self._sent_lines)
        skipped = 0
        if len(lines) > MAX_LINES_PER_FRAME:
            skipped = len(lines) - MAX_LINES_PER_FRAME
            lines = lines[-MAX_LINES_PER_FRAME:]
        self._sent_lines = session.feed.count
        return {"type": "state", **session.snapshot(), "playing": self.playing,
                "speed": self.speed, "reset": reset, "lines": lines,
                "skipped_lines": skipped, "error": self.error,
                "replaying": self._replay is not None, "travel": None, "now": session.now}

    # ------------------------------------------------------------------ commands

    def _handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command.get("op")
        try:
            result = self._dispatch(op, command)
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        except (_Replaced, _Stopping):
            raise
        except Exception as exc:
            log.exception("command %r failed", op)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, **result}

    def _dispatch(self, op: Any, command: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        if op == "travel":
            return self._travel_to(command.get("t"))
        if op not in ("permalink", "speed", "pause"):
            self._travel = None  # anything that changes the session: back to the present
        if op == "play":
            self.playing = True
            self._last_wall = time.monotonic()
            return {}
        if op == "pause":
            self.playing = False
            return {}
        if op == "step":
            self.playing = False
            self._step_requested = True
            return {}
        if op == "speed":
            self.speed = _clamp_speed(command.get("speed"))
            return {"speed": self.speed}
        if op == "action":
            if self._replay is not None:
                raise ValueError("wait until the link has been replayed")
            logged = session.apply(command.get("action"))
            return {"action": logged}
        if op == "permalink":
            return {"permalink": session.permalink()}
        if op == "reset":
            settings = session.cluster.settings
            self._replace(SessionSpec(
                servers=_int(command.get("servers", session.spec.servers)),
                seed=_int(command.get("seed", session.spec.seed)),
                pre_vote=settings.pre_vote, check_quorum=settings.check_quorum), playing=True)
        if op == "load":
            text = command.get("permalink")
            if not isinstance(text, str):
                raise ValueError("load needs 'permalink'")
            spec, actions, until = decode_permalink(text)
            self._replace(spec, playing=False, replay=ReplayPump(actions, until),
                          answer={"until": until})
        if op == "lesson":
            name = command.get("name")
            if not isinstance(name, str) or name not in self.lessons:
                raise ValueError(f"no lesson {name!r}; lessons are "
                                 f"{', '.join(self.lessons) or 'none'}")
            text = self.lessons[name]
            scenario = load_scenario_text(text, name)
            self._replace(SessionSpec(seed=scenario.seed, scenario=text, scenario_name=name,
                                      lesson=True), playing=True,
                          answer={"title": scenario.title})
        if op == "back":
            self._back()
        if op == "scenario":
            text, name = command.get("text"), command.get("name")
            if not isinstance(text, str) or not text.strip():
                raise ValueError("scenario needs 'text': the scenario file's contents")
            name = str(name or "scenario")[:100]
            scenario = load_scenario_text(text, name)
            self._replace(SessionSpec(seed=scenario.seed, scenario=text, scenario_name=name),
                          playing=True, answer={"title": scenario.title})
        raise ValueError(f"unknown command {op!r}")

    def _back(self) -> None:
        """A lesson's previous stop: the same lesson replayed from its seed and the
        actions taken before that stop, paused there."""
        session = self.session
        if not session.spec.lesson:
            raise ValueError("Back goes to a lesson's previous stop: start a lesson first")
        target = session.stops - 1 if session.holding else session.stops
        if target <= 0:
            self._replace(session.spec, playing=False, answer={"stop": 0})
        actions = [a for a, before in zip(session.actions, session.action_stops, strict=True)
                   if before < target]
        self._replace(session.spec, playing=False,
                      replay=ReplayPump(actions, 0.0, until_stop=target),
                      answer={"stop": target})

    def _replace(self, spec: SessionSpec, *, playing: bool,
                 replay: ReplayPump | None = None,
                 answer: dict[str, Any] | None = None) -> None:
        """Start a new session (the old one is closed once unwound) and unwind."""
        new = UiSession(spec, number=self.session.number + 1)
        self._close_machine()
        self._travel = None
        self._retired.append(self.session)
        self.session = new
        self._replay = replay
        self.playing = playing
        self.error = None
        self._dirty = True
        self._last_wall = time.monotonic()
        raise _Replaced({"session": new.number, **(answer or {})})


def _clamp_speed(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"speed must be a number from {MIN_SPEED} to {MAX_SPEED}")
    return min(max(float(value), MIN_SPEED), MAX_SPEED)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number, got {value!r}") from None
