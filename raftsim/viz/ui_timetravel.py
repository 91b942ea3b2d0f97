"""Time travel for the web UI: the exact state of a session at any earlier moment, in
well under a second, by deterministic replay from checkpoints.

A session is a function of its spec and its action log, so its state at time ``X`` is
what a replay of the actions up to ``X`` shows at ``X``. Replaying five virtual minutes
takes seconds, so the replay starts from a *checkpoint*: a copy of the replayed session
parked at an earlier moment. A session cannot be copied inside Python (its servers are
asyncio tasks, suspended coroutines), but a process can: ``fork`` copies the whole
heap, stack included. So a *time machine* runs in a process of its own (single-threaded,
so forking it is safe), replays the session as the live one goes, fed the new actions
and the live clock, and forks a *holder* every ``CHECKPOINT_EVERY`` virtual seconds: a
process parked inside the replay at that moment. To show ``X``, the holder nearest
before ``X`` forks a *worker*, which runs from the checkpoint to ``X`` (at most
``CHECKPOINT_EVERY`` seconds of replay), writes the picture and exits; the holder stays
parked for the next jump. Past ``MAX_CHECKPOINTS``, every other holder goes and the
spacing doubles.

The web UI's side is :class:`TimeMachine` (JSON lines over the machine's stdin and
stdout); the machine is ``python -m raftsim.viz.ui_timetravel``. Linux and other POSIX
systems only (``fork``).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any

from raftsim.viz.ui_session import (
    Action,
    Grant,
    RunFor,
    RunUntil,
    SessionSpec,
    UiSession,
)

__all__ = ["CHECKPOINT_EVERY", "MAX_CHECKPOINTS", "TimeMachine", "TimeTravelError"]

#: virtual seconds between checkpoints (a jump replays at most this much)
CHECKPOINT_EVERY = 10.0
#: holders at once; past this the spacing doubles
MAX_CHECKPOINTS = 32
#: narrated lines a picture of the past carries
PAST_LINES = 200
#: records the replica keeps (only the newest matter for its picture)
KEEP_RECORDS = 2000
#: wall seconds a jump may take before the UI gives up on it
SHOW_TIMEOUT = 20.0


class TimeTravelError(Exception):
    """The time machine could not show the moment asked for."""


# ---------------------------------------------------------------------- the UI's side

class TimeMachine:
    """One session's time machine, seen from the web UI's simulation thread. Started
    on first use; ``feed`` it the live session's log as it grows; ``show`` a moment."""

    def __init__(self, spec: SessionSpec, *, every: float = CHECKPOINT_EVERY,
                 max_checkpoints: int = MAX_CHECKPOINTS) -> None:
        if not every > 0 or max_checkpoints < 2:
            raise ValueError("checkpoints need a positive spacing and room for two")
        self.spec = spec
        self.every = every
        self.max_checkpoints = max_checkpoints
        self._proc: subprocess.Popen[bytes] | None = None
        self._sent = 0
        self._fed_now = -1.0
        self._buffer = b""

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "raftsim.viz.ui_timetravel"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
            self._write({"op": "start", "spec": self.spec.as_dict(), "every": self.every,
                         "max_checkpoints": self.max_checkpoints})
        return self._proc

    def _write(self, message: dict[str, Any]) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise TimeTravelError("the time machine stopped") from None

    def feed(self, actions: list[Action], now: float) -> None:
        """The live session's actions (all of them; only new ones are sent) and its
        clock: the machine replays up to ``now`` in the background."""
        self._ensure()
        if len(actions) == self._sent and now == self._fed_now:
            return
        self._write({"op": "feed", "actions": actions[self._sent:], "now": now})
        self._sent = len(actions)
        self._fed_now = now

    def show(self, t: float, timeout: float = SHOW_TIMEOUT) -> dict[str, Any]:
        """The session's picture at ``t`` (its snapshot and the narrated lines up to
        then): ``{"t", "snapshot", "lines", "checkpoint"}``."""
        self._ensure()
        self._write({"op": "show", "t": t})
        answer = self._read(timeout)
        if not answer.get("ok"):
            raise TimeTravelError(str(answer.get("error", "the time machine failed")))
        return answer

    def _read(self, timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeTravelError(f"the time machine did not answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise TimeTravelError("the time machine stopped")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# ---------------------------------------------------------------------- the machine

class _Quit(BaseException):
    """The UI closed the machine's stdin."""


@dataclass
class _Holder:
    t: float
    pid: int
    requests: IO[bytes]
    replies: IO[bytes]


class _Machine:
    """The replica session and its checkpoints. ``pump`` drives the replica; in a
    holder it parks, in a worker it runs to the moment asked for."""

    def __init__(self, spec: SessionSpec, commands: IO[bytes], out: IO[bytes], *,
                 every: float = CHECKPOINT_EVERY,
                 max_checkpoints: int = MAX_CHECKPOINTS) -> None:
        self.commands = commands
        self.out = out
        self.pending: deque[Action] = deque()
        self.known: list[Action] = []
        self.fed_now = 0.0
        self.every = every
        self.max_checkpoints = max_checkpoints
        self.next_checkpoint = 0.0
        self.holders: list[_Holder] = []
        self.worker_target: float | None = None
        self.session = UiSession(spec)

    # -------------------------------------------------------------- the replica

    def pump(self, session: UiSession) -> Grant:
        if self.worker_target is not None:
            return self._work(session)
        while True:
            if session.holding:
                return RunFor(0.0)  # a lesson's stop: the live page acted on nothing
            self._apply_due(session)
            if session.now >= self.next_checkpoint and self.fed_now > session.now:
                self._checkpoint(session)  # returns in the machine, or as a worker
                if self.worker_target is not None:
                    return self._work(session)
                continue
            target = min(self.fed_now, self.next_checkpoint,
                         self.pending[0]["t"] if self.pending else self.fed_now)
            if session.now < target:
                return RunUntil(target)
            self._serve_one()

    def _apply_due(self, session: UiSession) -> None:
        while self.pending and self.pending[0]["t"] <= session.now:
            action = self.pending.popleft()
            session.apply({k: v for k, v in action.items() if k != "t"})

    def _serve_one(self) -> None:
        line = self.commands.readline()
        if not line:
            raise _Quit()
        message = json.loads(line)
        op = message.get("op")
        if op == "feed":
            for action in message.get("actions", []):
                self.known.append(action)
                self.pending.append(action)
            self.fed_now = max(self.fed_now, float(message.get("now", 0.0)))
        elif op == "show":
            self._reply(self._show(float(message.get("t", 0.0))))
        else:
            self._reply({"ok": False, "error": f"unknown time machine command {op!r}"})

    def _reply(self, answer: dict[str, Any]) -> None:
        self.out.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    # -------------------------------------------------------------- checkpoints

    def _checkpoint(self, session: UiSession) -> None:
        session.forget_old_records(KEEP_RECORDS)
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            self._become_holder(request_r, reply_w, (request_w, reply_r))
            return  # a worker now
        os.close(request_r)
        os.close(reply_w)
        self.holders.append(_Holder(session.now, pid, os.fdopen(request_w, "wb"),
                                    os.fdopen(reply_r, "rb")))
        self.next_checkpoint = session.now + self.every
        if len(self.holders) > self.max_checkpoints:
            self._thin()

    def _thin(self) -> None:
        """Keep the first holder and every other one after it; double the spacing."""
        keep = self.holders[::2]
        for holder in self.holders[1::2]:
            holder.requests.close()
            holder.replies.close()
            os.waitpid(holder.pid, 0)
        self.holders = keep
        self.every *= 2
        self.next_checkpoint = keep[-1].t + self.every

    def _become_holder(self, requests_fd: int, replies_fd: int, mine: tuple[int, int]
                       ) -> None:
        """In the forked holder: keep only its own pipes, then serve jumps (each in a
        worker of its own) until the machine goes away."""
        for fd in mine:
            os.close(fd)
        for holder in self.holders:
            holder.requests.close()
            holder.replies.close()
        self.holders = []
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        requests = os.fdopen(requests_fd, "rb")
        while True:
            line = requests.readline()
            if not line:
                os._exit(0)
            message = json.loads(line)
            pid = os.fork()
            if pid == 0:
                requests.close()
                self.out = os.fdopen(replies_fd, "wb")
                self.pending = deque(message["actions"])
                self.worker_target = float(message["t"])
                return
            os.waitpid(pid, 0)

    def _show(self, t: float) -> dict[str, Any]:
        t = min(max(t, 0.0), self.fed_now)
        holder = None
        for candidate in self.holders:
            if candidate.t <= t:
                holder = candidate
        if holder is None:
            return {"ok": False, "error": "no checkpoint yet"}
        actions = [a for a in self.known if holder.t < a["t"] <= t]
        holder.requests.write(json.dumps({"t": t, "actions": actions}).encode() + b"\n")
        holder.requests.flush()
        line = holder.replies.readline()
        if not line:
            return {"ok": False, "error": "a checkpoint process stopped"}
        answer: dict[str, Any] = json.loads(line)
        answer["checkpoint"] = holder.t
        return answer

    # -------------------------------------------------------------- a worker

    def _work(self, session: UiSession) -> Grant:
        target = self.worker_target
        assert target is not None
        if session.holding:
            return RunFor(0.0)
        self._apply_due(session)
        if session.now < target:
            return RunUntil(min(target, self.pending[0]["t"]) if self.pending
                            else target)
        try:
            session.poll_configurations()
            lines = session.feed.since(0)[-PAST_LINES:]
            self._reply({"ok": True, "t": session.now, "snapshot": session.snapshot(),
                         "lines": lines})
        except BaseException as exc:
            self._reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        os._exit(0)

    # -------------------------------------------------------------- the end

    def run(self) -> None:
        try:
            self.session.drive(self.pump)
        except _Quit:
            pass
        for holder in self.holders:
            holder.requests.close()
        for holder in self.holders:
            os.waitpid(holder.pid, 0)


def main() -> None:
    """The machine: read ``start``, then serve ``feed`` and ``show`` until stdin ends."""
    commands = sys.stdin.buffer
    out = sys.stdout.buffer
    first = commands.readline()
    if not first:
        return
    data = json.loads(first)
    spec = SessionSpec(**dict(data["spec"]))
    _Machine(spec, commands, out, every=float(data.get("every", CHECKPOINT_EVERY)),
             max_checkpoints=int(data.get("max_checkpoints", MAX_CHECKPOINTS))).run()
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
