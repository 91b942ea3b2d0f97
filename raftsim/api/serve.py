"""Serving an application on a real TCP port (the live world: one port per server), with
limits on what clients can hold.

A port anyone can reach must not let anyone hold it: aiohttp on its own keeps a
connection that never finishes its request headers open for an hour, accepts connections
until the process runs out of file descriptors (and then storage cannot open a file: the
server stops), and asyncio then logs a traceback for every failed accept. So
:func:`serve_http` serves with :class:`HttpLimits`:

- ``header_timeout``: a connection must finish a request's headers this long after it
  connects or after its previous response, else it is closed; an idle keep-alive
  connection is closed after it too (aiohttp's keep-alive timer does both);
- ``body_timeout``: a request's body must arrive this long after its headers, else the
  answer is 408 (see ``app.py``);
- ``max_connections``: connections past it are answered 503 and closed at once; the cap
  is lowered to leave ``fd_reserve`` file descriptors of the process's limit
  (``RLIMIT_NOFILE``) to storage and to the servers' RPC connections;
- failed accepts are logged once per minute, with how many there were
  (:class:`AcceptErrorLog`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

from aiohttp import web

from raftsim.api.shortcut import KvShortcut, ShortcutSite
from raftsim.api.state import STATE

logger = logging.getLogger(__name__)

_TOO_MANY_BODY: Final = b"Too many connections: try again later"
_TOO_MANY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_TOO_MANY_BODY), _TOO_MANY_BODY)
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client may hold of an HTTP port (seconds, connections, descriptors)."""

    header_timeout: float = 30.0
    body_timeout: float = 30.0
    max_connections: int = 1024
    #: file descriptors of the process's limit that HTTP connections never take
    fd_reserve: int = 256

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "max_connections", "fd_reserve"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")


def connection_cap(limits: HttpLimits) -> int:
    """How many HTTP connections this process may hold open: ``max_connections``, or
    fewer if the descriptor limit less ``fd_reserve`` is lower (at least one)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(min(limits.max_connections, soft - limits.fd_reserve), 1)


class _TooMany(asyncio.Protocol):
    """What a connection past the cap gets: a 503, then the connection closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's transports are no subclass
        stream.write(_TOO_MANY)
        stream.close()


class _CappedSite(web.BaseSite):
    """aiohttp's TCPSite with a cap on open connections."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, cap: int, *,
                 ssl_context: ssl.SSLContext | None = None,
                 shortcut_timeout: float | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._cap = cap
        self.refused = 0
        #: the KV write shortcut's connections (None: every connection goes to aiohttp)
        self.shortcuts = ShortcutSite() if shortcut_timeout is not None else None
        self._shortcut_timeout = shortcut_timeout or 0.0

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        cap = self._cap
        shortcuts = self.shortcuts
        state = self._runner.app[STATE] if isinstance(self._runner, web.AppRunner) else None
        timeout = self._shortcut_timeout

        def protocol() -> asyncio.BaseProtocol:
            open_now = len(server.connections) + (
                len(shortcuts.connections) if shortcuts is not None else 0)
            if open_now >= cap:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    logger.warning("HTTP %s: %d connections open, the cap: refused %d so far",
                                   self.name, cap, self.refused)
                return _TooMany()
            if shortcuts is not None and state is not None:
                return KvShortcut(state, server, shortcuts, timeout)
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=True)


    async def stop(self) -> None:
        await super().stop()
        if self.shortcuts is not None:
            self.shortcuts.close_all()


class AcceptErrorLog:
    """The loop's exception handler, except for failed accepts (asyncio reports each one
    with a traceback: 144 in 3.5 s measured with 100 clients waiting): one warning per
    ``interval`` seconds says what failed and how often."""

    MESSAGE: ClassVar[str] = "socket.accept() out of system resource"

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.previous = loop.get_exception_handler()
        self.suppressed = 0
        self.logged_at = float("-inf")

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop, interval: float = 60.0) -> None:
        """Put the rate limit in front of the loop's handler (once per loop)."""
        if isinstance(loop.get_exception_handler(), cls):
            return
        loop.set_exception_handler(cls(loop, interval))

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = loop.time()
        if now - self.logged_at < self.interval:
            self.suppressed += 1
            return
        logger.warning("cannot accept connections: %s (%d more failed accepts in the last "
                       "%g s); retrying", context.get("exception"), self.suppressed,
                       self.interval)
        self.logged_at, self.suppressed = now, 0


async def serve_http(app: web.Application, host: str, port: int, *,
                     limits: HttpLimits | None = None,
                     ssl_context: ssl.SSLContext | None = None,
                     kv_shortcut: bool = True) -> web.AppRunner:
    """Listen on ``host:port`` (port 0: any free port; read it from
    ``runner.addresses``) within ``limits``, HTTPS with ``ssl_context``. Stop with
    ``await runner.cleanup()``. No access log: the application's requests carry ACL
    tokens, and nothing of a request is logged. ``kv_shortcut``: answer short KV writes
    at the leader without aiohttp's per-request machinery (``shortcut.py``); off, aiohttp
    answers every request."""
    limits = limits or HttpLimits()
    app[STATE].body_timeout = limits.body_timeout
    AcceptErrorLog.install(asyncio.get_running_loop())
    # lingering_time: after answering a request whose body is still coming (408, 413),
    # aiohttp reads on so the client sees the answer, by default for 10 s.
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=limits.header_timeout,
                           lingering_time=min(limits.body_timeout, 2.0))
    await runner.setup()
    site = _CappedSite(runner, host, port, connection_cap(limits), ssl_context=ssl_context,
                       shortcut_timeout=limits.header_timeout if kv_shortcut else None)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the first site of ``runner`` listens on."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the runner listens on no TCP port")
