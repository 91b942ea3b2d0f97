"""``raftsim ui``: a web page that shows a simulated cluster live and lets you break it.

One aiohttp application on loopback serves one page (``static/``: plain HTML, CSS and
JavaScript shipped in the package; no build step, nothing fetched from elsewhere) and one
WebSocket. Every page that connects gets a session of its own (``ui_sessions``): a
simulated cluster on its own thread (``ui_runner.SimRunner``), paced to the wall clock;
its frames (compact snapshots, at most 20 a second, with the narrated lines that are new)
reach that page over the WebSocket, and the page's commands come back the same way. The
browser never polls.

The first message a page gets is ``{"type": "hello", "session": token, ...}`` (the token
lets the page reconnect to the same session with ``/ws?resume=token``), or ``{"type":
"full", "error": ...}`` when the server runs as many sessions as it allows.

The page speaks JSON: it sends ``{"req": n, "op": ..., ...}`` (see ``SimRunner``'s
commands) and gets ``{"type": "reply", "req": n, "ok": ..., ...}`` for each, and
``{"type": "state", ...}`` frames whenever the simulation moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from raftsim.viz.ui_lessons import Lesson, default_lessons_dir, load_lessons
from raftsim.viz.ui_runner import DEFAULT_SPEED, Frame, SimRunner
from raftsim.viz.ui_session import SessionSpec
from raftsim.viz.ui_sessions import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_SESSIONS,
    Page,
    SessionPool,
)

__all__ = ["UiServer", "build_ui_app", "serve_ui", "STATIC_DIR"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
#: the files the page is made of, and their content types
STATIC_FILES = {"ui.js": "text/javascript", "ui.css": "text/css"}
#: the largest command a page may send (a permalink or a scenario file fits easily)
MAX_MESSAGE = 4 * 1024 * 1024

POOL = web.AppKey("raftsim_ui_pool", SessionPool)


# ---------------------------------------------------------------------- handlers

async def index(request: web.Request) -> web.StreamResponse:
    return _static_response("index.html", "text/html")


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return _static_response(name, STATIC_FILES[name])


def _static_response(name: str, content_type: str) -> web.Response:
    body = (STATIC_DIR / name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8",
                        headers={"Cache-Control": "no-store",
                                 "X-Content-Type-Options": "nosniff"})


def _same_origin(request: web.Request) -> bool:
    """Only the page this server served may drive it (no other site in the browser)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


async def websocket(request: web.Request) -> web.StreamResponse:
    """One page: its own session (a new one, or the one it had before a reconnect)."""
    if not _same_origin(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=None)
    await ws.prepare(request)
    pool = request.app[POOL]
    token = request.query.get("resume")
    visit = pool.resume(token) if token else None
    resumed = visit is not None
    # a page that opens on the lesson list starts its session paused at t=0 (nothing
    # happens behind the list); "paused" asks for the same without the list
    start = request.query.get("start")
    show_lessons = (start == "lessons" and bool(pool.hello.get("lessons"))
                    and not pool.hello.get("scenario"))
    if visit is None:
        visit = pool.open(playing=start not in ("paused", "lessons") or
                          (start == "lessons" and not show_lessons))
    if visit is None:
        await ws.send_str(json.dumps({"type": "full", "error": pool.full_message()}))
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many sessions")
        return ws
    page = Page(ws)
    page.reply({"type": "hello", "session": visit.token, "resumed": resumed,
                "show_lessons": show_lessons and not resumed, **pool.hello})
    visit.join(page)
    runner = visit.runner
    loop = asyncio.get_running_loop()
    pump = loop.create_task(page.pump())
    try:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            try:
                command = json.loads(message.data)
                if not isinstance(command, dict):
                    raise ValueError("a command is a JSON object")
            except ValueError as exc:
                page.reply({"type": "reply", "req": None, "ok": False, "error": str(exc)})
                continue
            req = command.get("req")

            def deliver(answer: dict[str, Any], req: Any = req) -> None:
                # called on the simulation thread
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(page.reply, {"type": "reply", "req": req,
                                                           **answer})

            runner.submit(command, deliver)
    finally:
        visit.leave(page)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await pump
    return ws


def build_ui_app(pool: SessionPool) -> web.Application:
    """The UI's application around a session pool (whose sessions stop with the app)."""
    app = web.Application()
    app[POOL] = pool
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/ws", websocket)

    async def start_reaper(app: web.Application) -> None:
        pool.start_reaper()

    async def close_pages(app: web.Application) -> None:
        for visit in list(pool.visits.values()):
            for page in list(visit.hub.pages):
                await page.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def stop_sessions(app: web.Application) -> None:
        await pool.shutdown()

    app.on_startup.append(start_reaper)
    app.on_shutdown.append(close_pages)
    app.on_cleanup.append(stop_sessions)
    return app


# ---------------------------------------------------------------------- serving

class UiServer:
    """The UI on ``host:port`` (port 0: any free port), on a thread of its own, for
    tests and embedding; ``serve_ui`` is the command-line form."""

    def __init__(self, spec: SessionSpec, *, host: str = "127.0.0.1", port: int = 0,
                 speed: float = DEFAULT_SPEED, playing: bool = True,
                 permalink: str | None = None, max_sessions: int = DEFAULT_MAX_SESSIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 lessons: list[Lesson] | None = None) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.speed = speed
        self.playing = playing
        self.permalink = permalink
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        #: the lessons the page lists (none: it opens on the cluster)
        self.lessons = list(lessons or [])
        #: the visitors' sessions (while serving)
        self.pool: SessionPool | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> UiServer:
        self._thread = threading.Thread(target=self._main, name="raftsim-ui-web",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the UI server did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # reported to start()
            self._failure = exc
            self._ready.set()

    async def serve(self, announce: bool = False) -> None:
        """Serve until ``close`` (or cancellation); ``announce``: print the address and
        stop cleanly on SIGINT or SIGTERM (call it on the main thread then)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if announce:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    self._loop.add_signal_handler(signum, self._stop.set)
        pool = SessionPool(self._loop, self._new_runner, limit=self.max_sessions,
                           idle_timeout=self.idle_timeout)
        pool.hello = {"lessons": [lesson.summary() for lesson in self.lessons],
                      "scenario": self.spec.scenario is not None}
        self.pool = pool
        app = build_ui_app(pool)
        web_runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                   shutdown_timeout=2.0)
        await web_runner.setup()
        try:
            site = web.TCPSite(web_runner, self.host, self.port)
            await site.start()
            for address in web_runner.addresses:  # the port chosen, when it was 0
                if isinstance(address, tuple) and len(address) >= 2:
                    self.port = int(address[1])
                    break
            self._ready.set()
            if announce:
                print(f"raftsim ui: serving {self.url} (Ctrl-C to stop)", flush=True)
            await self._stop.wait()
        finally:
            await web_runner.cleanup()

    def _new_runner(self, publish: Callable[[Frame], None], playing: bool) -> SimRunner:
        """A new visitor's session: the server's cluster (or scenario) from t=0."""
        return SimRunner(self.spec, publish, speed=self.speed,
                         playing=self.playing and playing, permalink=self.permalink,
                         lessons={lesson.name: lesson.text for lesson in self.lessons})

    def close(self, timeout: float = 15.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> UiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_ui(*, servers: int = 5, seed: int = 0, scenario: Path | str | None = None,
             host: str = "127.0.0.1", port: int = 8080, speed: float = DEFAULT_SPEED,
             max_sessions: int = DEFAULT_MAX_SESSIONS,
             lessons_dir: Path | str | None = None) -> int:
    """Run the UI in this thread until interrupted (the ``raftsim ui`` command).
    Raises ValueError for a bad argument or scenario file (nothing is served then).
    ``lessons_dir``: where the lessons' scenario files are (default: this checkout's
    ``scenarios/``)."""
    if scenario is not None:
        from raftsim.scenario import ScenarioError, load_scenario

        try:
            loaded = load_scenario(scenario)
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
        spec = SessionSpec(seed=loaded.seed, scenario=Path(scenario).read_text(encoding="utf-8"),
                           scenario_name=Path(scenario).stem)
    else:
        spec = SessionSpec(servers=servers, seed=seed)
    if lessons_dir is not None and not Path(lessons_dir).is_dir():
        raise ValueError(f"--lessons {lessons_dir}: not a directory of scenario files")
    lessons = load_lessons(Path(lessons_dir) if lessons_dir is not None
                           else default_lessons_dir())
    server = UiServer(spec, host=host, port=port, speed=speed, max_sessions=max_sessions,
                      lessons=lessons)
    try:
        asyncio.run(server.serve(announce=True))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"raftsim ui: cannot listen on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0
