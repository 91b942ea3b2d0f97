"""A cluster per visitor: the web UI's sessions, one per open page, and the pages each
one feeds.

A classroom opens the UI in thirty tabs at once; each student must get a cluster of
their own, starting at t=0 before the first election, at their own speed, and a
permalink one of them opens must never touch anybody else's. So every WebSocket that
connects gets a :class:`Visit` of its own: a :class:`~raftsim.viz.ui_runner.SimRunner`
(its own simulation thread) and a :class:`Hub` (the pages it feeds). The page keeps the
visit's token in memory only, to reconnect after a network blip; a reload or a new tab
is a new visitor.

Sessions cost a thread and memory each, so the pool holds at most ``limit`` of them. A
visit no page has watched for ``idle_timeout`` wall seconds is reclaimed (a reaper
looks now and then, and a newcomer who finds the pool full reclaims first); when the
pool is still full, the newcomer is told so in words and nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from raftsim.viz.ui_runner import Frame, SimRunner

__all__ = ["DEFAULT_MAX_SESSIONS", "DEFAULT_IDLE_TIMEOUT", "Hub", "Page", "SessionPool",
           "Visit"]

log = logging.getLogger(__name__)

#: sessions at once, by default (each is a thread; a class of students fits)
DEFAULT_MAX_SESSIONS = 32
#: wall seconds a session may go unwatched before it is reclaimed
DEFAULT_IDLE_TIMEOUT = 120.0
#: narrated lines a newly opened page gets
BACKLOG = 300
#: lines kept for a page that cannot keep up (it then misses the oldest)
MAX_PENDING_LINES = 1000

RunnerFactory = Callable[[Callable[[Frame], None], bool], SimRunner]


class Page:
    """One open page: what it still has to be sent, sent by one task in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.state: Frame | None = None
        self.lines: list[dict[str, Any]] = []
        self.reset = False
        self.replies: list[dict[str, Any]] = []
        self.wake = asyncio.Event()

    def offer(self, frame: Frame) -> None:
        if frame["reset"]:
            self.lines = []
            self.reset = True
        self.lines.extend(frame["lines"])
        del self.lines[:-MAX_PENDING_LINES]
        self.state = frame
        self.wake.set()

    def reply(self, answer: dict[str, Any]) -> None:
        self.replies.append(answer)
        self.wake.set()

    async def pump(self) -> None:
        ws = self.ws
        while not ws.closed:
            await self.wake.wait()
            self.wake.clear()
            replies, self.replies = self.replies, []
            for answer in replies:
                await ws.send_str(json.dumps(answer))
            if self.state is not None:
                frame = {**self.state, "lines": self.lines, "reset": self.reset}
                self.state, self.lines, self.reset = None, [], False
                await ws.send_str(json.dumps(frame))


class Hub:
    """The web loop's side of one session's frames: its open pages and what a new one
    needs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pages: set[Page] = set()
        self.last: Frame | None = None
        self.backlog: deque[dict[str, Any]] = deque(maxlen=BACKLOG)

    def publish_threadsafe(self, frame: Frame) -> None:
        """Called on the simulation thread."""
        try:
            self.loop.call_soon_threadsafe(self._publish, frame)
        except RuntimeError:
            pass  # the web loop is closing

    def _publish(self, frame: Frame) -> None:
        if frame["reset"]:
            self.backlog.clear()
        self.backlog.extend(frame["lines"])
        self.last = frame
        for page in self.pages:
            page.offer(frame)

    def join(self, page: Page) -> None:
        self.pages.add(page)
        if self.last is not None:
            page.offer({**self.last, "lines": list(self.backlog), "reset": True})


class Visit:
    """One visitor's session: its runner, the pages watching it, since when nobody has."""

    def __init__(self, token: str, runner: SimRunner, hub: Hub) -> None:
        self.token = token
        self.runner = runner
        self.hub = hub
        self.unwatched_since: float | None = time.monotonic()

    def join(self, page: Page) -> None:
        self.hub.join(page)
        self.unwatched_since = None

    def leave(self, page: Page) -> None:
        self.hub.pages.discard(page)
        if not self.hub.pages:
            self.unwatched_since = time.monotonic()

    def idle_for(self, now: float) -> float:
        return 0.0 if self.unwatched_since is None else now - self.unwatched_since


class SessionPool:
    """The visits of one UI server. Lives on the web loop; ``make_runner(publish,
    playing)`` builds a new visitor's runner (not started)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, make_runner: RunnerFactory, *,
                 limit: int = DEFAULT_MAX_SESSIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        if limit < 1:
            raise ValueError(f"the session limit must be at least 1, got {limit}")
        if not idle_timeout > 0:
            raise ValueError(f"the idle timeout must be positive, got {idle_timeout}")
        self.loop = loop
        self.limit = limit
        self.idle_timeout = idle_timeout
        self._make_runner = make_runner
        self.visits: dict[str, Visit] = {}
        self.opened = 0
        self.reclaimed = 0
        #: what every page is told when it connects, besides its session's token
        self.hello: dict[str, Any] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.visits)

    # ------------------------------------------------------------------ visits

    def open(self, *, playing: bool | None = None) -> Visit | None:
        """A new visitor's session, started; None when the pool is full even after
        reclaiming the idle ones."""
        if len(self.visits) >= self.limit:
            self.reclaim_idle()
        if len(self.visits) >= self.limit:
            return None
        hub = Hub(self.loop)
        runner = self._make_runner(hub.publish_threadsafe, playing is not False)
        token = secrets.token_urlsafe(16)
        visit = Visit(token, runner, hub)
        self.visits[token] = visit
        self.opened += 1
        runner.start()
        return visit

    def resume(self, token: str) -> Visit | None:
        """The visit a reconnecting page had, if it still exists."""
        return self.visits.get(token)

    def full_message(self) -> str:
        return (f"This raftsim server already runs {len(self.visits)} sessions, the most it "
                f"allows (raftsim ui --max-sessions {self.limit}). A session nobody watches "
                f"is closed after {self.idle_timeout:g} s: try again in a minute, or close "
                "a tab that has raftsim open.")

    def reclaim_idle(self) -> int:
        """Close every visit unwatched for ``idle_timeout``; how many were closed."""
        now = time.monotonic()
        idle = [v for v in self.visits.values() if v.idle_for(now) >= self.idle_timeout]
        for visit in idle:
            self.close(visit)
        self.reclaimed += len(idle)
        return len(idle)

    def close(self, visit: Visit) -> None:
        """Forget the visit now; its thread stops off the web loop."""
        if self.visits.pop(visit.token, None) is None:
            return
        task = self.loop.create_task(self._stop(visit.runner))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _stop(self, runner: SimRunner) -> None:
        await self.loop.run_in_executor(None, runner.stop)

    # ------------------------------------------------------------------ life

    def start_reaper(self) -> None:
        self._reaper = self.loop.create_task(self._reap())

    async def _reap(self) -> None:
        interval = min(self.idle_timeout / 2, 10.0)
        while True:
            await asyncio.sleep(interval)
            try:
                self.reclaim_idle()
            except Exception:
                log.exception("reclaiming idle sessions failed")

    async def shutdown(self) -> None:
        """Stop the reaper and every session."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for visit in list(self.visits.values()):
            self.close(visit)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
