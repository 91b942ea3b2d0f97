"""The live HTTP port's shortcut for the request a write-heavy client repeats: ``PUT
/v1/kv/<key>`` answered by the leader.

aiohttp's handling of one request costs about 50 µs of CPU on the project's machine
(parsing into a Request, routing, a task per request and one waking its connection's
task, building and serializing a Response); a raw asyncio protocol answering the same
request costs under 10 µs. At one client connection every write waits for that on the
leader, so the shortcut answers this one request shape itself, with the same bytes
aiohttp would send (status line, headers in aiohttp's order, body), and hands everything
else to aiohttp unchanged:

- only a request whose body is all here once its head is (as a client writes a small
  request: with one write): request line ``PUT /v1/kv/<key> HTTP/1.1`` with no query,
  plain header lines (visible ASCII, no obsolete folding), one
  ``Content-Length`` within the value limit and exactly that many body bytes after the
  headers, one ``Host``; no ``Transfer-Encoding``, ``Expect``, ``Upgrade``,
  ``Connection`` other than ``keep-alive``;
- only while this server leads and no leadership transfer is under way, and with ACLs on
  only with the management token (``X-Nomad-Token`` or ``Authorization: Bearer``, read as
  aiohttp's path reads them; a request without it gets aiohttp's 403);
- only a key that is valid (an invalid one gets aiohttp's 400).

Anything else, on a connection that did not already go to aiohttp, is given to an aiohttp
``RequestHandler`` made for this connection, which then owns it for good (the
connection's protocol becomes that handler): so aiohttp answers every other request, with
its limits, timeouts and error answers, and responses stay in request order. A write the
leader could not append (it lost leadership first) is handed to aiohttp the same way, as
it arrived: aiohttp forwards it to the new leader, as it would have.

A request's head is gathered here until it is complete (at most MAX_HEAD_BYTES), so a
shortcut connection that has not sent a whole request head ``header_timeout`` seconds
after it connected or after its last answer is closed, as aiohttp closes such
connections; the HTTP port's connection cap counts shortcut connections too
(``serve.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Final, cast

from aiohttp.http import SERVER_SOFTWARE

from raftsim.api.acl import request_token
from raftsim.api.app import answer_for
from raftsim.api.errors import ApiError
from raftsim.api.kv import RETRY_AFTER_SECONDS, key_in_path
from raftsim.api.meta import KNOWN_LEADER, known_leader
from raftsim.api.state import ApiState
from raftsim.core.errors import NotLeader, ProposalDropped, UncommittedLimitReached
from raftsim.core.ready import Role
from raftsim.runtime.errors import Overloaded, ServerStopped
from raftsim.runtime.kv import MAX_VALUE_BYTES, encode_put

log = logging.getLogger(__name__)

#: a request head longer than this goes to aiohttp (its own line limit is 8190 bytes)
MAX_HEAD_BYTES: Final = 8190
#: bytes a client may pipeline behind a write still waiting to commit before reading
#: from its connection pauses
MAX_PIPELINED_BYTES: Final = MAX_VALUE_BYTES + 65536

_REQUEST_LINE: Final = re.compile(rb"PUT (/v1/kv/[!-~]+) HTTP/1\.1")
_HEADER_LINE: Final = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([ -~\t]*?)[ \t]*")
#: headers whose presence sends the request to aiohttp
_NOT_SHORT: Final = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
#: the headers an ACL token comes in, by their lowered names
_TOKEN_HEADERS: Final = {b"x-nomad-token": "X-Nomad-Token", b"authorization": "Authorization"}
_SERVER_LINE: Final = f"Server: {SERVER_SOFTWARE}\r\n".encode()


class _Date:
    """The ``Date`` header's value, formatted once per second (as aiohttp does)."""

    second = -1
    line = b""

    @classmethod
    def header(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return cls.line


def parse_short_put(data: bytes | bytearray) -> tuple[str, bytes, dict[str, str]] | None:
    """``(raw path, body, token headers)`` if ``data`` is exactly one whole request the
    shortcut takes (see the module docstring), else None. The token headers are the first
    ``X-Nomad-Token`` and ``Authorization`` lines, by those names, as aiohttp's
    ``request.headers.get`` would find them."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD_BYTES:
        return None
    lines = bytes(data[:end]).split(b"\r\n")
    request = _REQUEST_LINE.fullmatch(lines[0])
    if request is None:
        return None
    target = request.group(1)
    if b"?" in target or b"#" in target:
        return None
    length = -1
    hosts = 0
    tokens: dict[str, str] = {}
    for line in lines[1:]:
        header = _HEADER_LINE.fullmatch(line)
        if header is None:
            return None
        name = header.group(1).lower()
        if name == b"content-length":
            value = header.group(2)
            if length >= 0 or not value.isdigit() or len(value) > 10:
                return None
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            if header.group(2).lower() != b"keep-alive":
                return None
        elif name in _NOT_SHORT:
            return None
        elif name in _TOKEN_HEADERS:
            tokens.setdefault(_TOKEN_HEADERS[name], header.group(2).decode("ascii"))
    body_at = end + 4
    if (length < 0 or length > MAX_VALUE_BYTES or len(data) - body_at != length
            or hosts != 1):  # aiohttp refuses an HTTP/1.1 request without a Host
        return None
    return target.decode("ascii"), bytes(data[body_at:]), tokens


_SHORT_START: Final = b"PUT /v1/kv/"


def could_become_short(data: bytes | bytearray) -> bool:
    """Whether an unfinished head may still turn out to be a request the shortcut
    takes: it starts as one (``PUT /v1/kv/``) and ends every line it has with CRLF.
    Anything else goes to aiohttp at once, which answers a malformed head (a bare LF,
    say) with its 400 instead of leaving the client waiting for the header timeout."""
    return (_SHORT_START.startswith(bytes(data[:len(_SHORT_START)]))
            and data.count(b"\n") == data.count(b"\r\n"))


def _answer(status: str, content_type: bytes, body: bytes, known: bool,
            extra: bytes = b"") -> bytes:
    return b"".join((
        b"HTTP/1.1 ", status.encode(), b"\r\nContent-Type: ", content_type, b"\r\n", extra,
        KNOWN_LEADER.encode(), b": true\r\n" if known else b": false\r\n",
        b"Content-Length: %d\r\n" % len(body), _Date.header(), _SERVER_LINE, b"\r\n", body))


_JSON: Final = b"application/json; charset=utf-8"
_TEXT: Final = b"text/plain; charset=utf-8"


class ShortcutSite:
    """What a site keeps of its shortcut connections: how many, to count and close them."""

    def __init__(self) -> None:
        self.connections: set[KvShortcut] = set()

    def close_all(self) -> None:
        for connection in list(self.connections):
            connection.close()


class KvShortcut(asyncio.Protocol):
    """One HTTP connection: short writes answered here, the rest by an aiohttp handler
    (``make_handler``) that takes the connection over on the first request it gets."""

    def __init__(self, state: ApiState, make_handler: Callable[[], asyncio.Protocol],
                 site: ShortcutSite, header_timeout: float) -> None:
        self.state = state
        self.make_handler = make_handler
        self.site = site
        self.header_timeout = header_timeout
        self.loop = state.server.loop
        self.transport: asyncio.Transport | None = None
        #: bytes received and not yet answered or handed on
        self.pending = bytearray()
        #: a write is waiting to commit (what arrives meanwhile waits in ``pending``)
        self.busy = False
        #: the future of the write waiting to commit
        self.waiting: asyncio.Future[bool] | None = None
        self.handed_over = False
        self.closed = False
        self.paused = False
        self.idle_until = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- the protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.site.connections.add(self)
        self.idle_until = self.loop.time() + self.header_timeout
        self.timer = self.loop.call_at(self.idle_until, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.busy:
            self.pending += data
            if len(self.pending) > MAX_PIPELINED_BYTES and not self.paused:
                self.paused = True
                assert self.transport is not None
                self.transport.pause_reading()
            return
        if self.pending:
            self.pending += data
            self._serve()
        else:
            self._serve(data)

    def eof_received(self) -> bool | None:
        return None  # close, as aiohttp's handler does

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    # ---------------------------------------------------------------- serving

    def _serve(self, data: bytes | bytearray | None = None) -> None:
        """Answer what is pending if it is one short write this server can take now;
        else hand it (and the connection) to aiohttp."""
        if data is None:
            data, self.pending = self.pending, bytearray()
        if len(data) <= MAX_HEAD_BYTES and b"\r\n\r\n" not in data:
            if could_become_short(data):
                # The head is not all here: wait for it, within what is left of the
                # header timeout (the idle timer closes the connection then, as aiohttp
                # would).
                self.pending = bytearray(data)
            else:
                self._hand_over(data)  # aiohttp waits for it, or answers a bad one now
            return
        parsed = parse_short_put(data) if self._may_take() else None
        if parsed is None:
            self._hand_over(data)
            return
        path, value, tokens = parsed
        acl = self.state.acl
        if acl.enabled and not acl.allows(request_token(tokens)):
            self._hand_over(data)  # aiohttp answers the 403
            return
        try:
            key = key_in_path(path)
        except ApiError:
            self._hand_over(data)  # aiohttp answers the 400
            return
        server = self.state.server
        try:
            waiting = server.submit_waiting(encode_put(key, value, None),
                                            self.state.request_timeout,
                                            then=lambda fut: self._committed_now(fut, data))
        except (Overloaded, UncommittedLimitReached) as exc:
            self._write(self._overloaded(exc))
            return
        except (NotLeader, ProposalDropped, ServerStopped):
            self._hand_over(data)  # nothing happened: aiohttp finds the leader
            return
        self.busy = True
        self.waiting = waiting
        # a timeout fails the future without ``then``: its callback answers then
        waiting.add_done_callback(lambda fut: self._committed(fut, data))

    def _may_take(self) -> bool:
        state = self.state
        node = state.server.node
        return (node is not None and node.role is Role.LEADER
                and node.transfer_target is None)

    def _committed_now(self, fut: asyncio.Future[bool], request: bytes | bytearray) -> None:
        """``_committed`` inside the server's processing, which must not raise."""
        try:
            self._committed(fut, request)
        except Exception:
            log.exception("answering a short KV write failed; closing its connection")
            self.close()

    def _committed(self, fut: asyncio.Future[bool], request: bytes | bytearray) -> None:
        """Answer the write ``fut`` waited for (called once or twice for it: at once by
        the server, and as the future's callback; the first answers)."""
        if fut is not self.waiting:
            return
        self.waiting = None
        self.busy = False
        if self.closed:
            return
        exc = ServerStopped() if fut.cancelled() else fut.exception()
        if exc is None:
            answer = _answer("200 OK", _JSON, b"true" if fut.result() else b"false",
                             known_leader(self.state))
        elif isinstance(exc, NotLeader | ProposalDropped):
            # not appended: the request did not take effect; aiohttp forwards it
            self._hand_over(request + self.pending)
            return
        elif isinstance(exc, Overloaded | UncommittedLimitReached):
            answer = self._overloaded(exc)
        else:
            error = answer_for(exc if isinstance(exc, Exception) else RuntimeError(exc),
                               "PUT", "/v1/kv/{key}")
            answer = self._error(error.status, error.message)
        self._write(answer)

    def _overloaded(self, exc: Exception) -> bytes:
        return _answer("429 Too Many Requests", _TEXT, str(exc).encode(),
                       known_leader(self.state),
                       b"Retry-After: %d\r\n" % RETRY_AFTER_SECONDS)

    def _error(self, status: int, message: str) -> bytes:
        return _answer(f"{status} {HTTPStatus(status).phrase}", _TEXT, message.encode(),
                       known_leader(self.state))

    def _write(self, answer: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(answer)
        self.idle_until = self.loop.time() + self.header_timeout
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if self.pending:
            self._serve()

    def _hand_over(self, data: bytes | bytearray) -> None:
        """aiohttp's handler takes this connection over, starting with ``data``."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._forget()
        self.handed_over = True
        handler = self.make_handler()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if data:
            handler.data_received(bytes(data))

    # ---------------------------------------------------------------- idle and closing

    def _check_idle(self) -> None:
        self.timer = None
        if self.closed or self.handed_over:
            return
        now = self.loop.time()
        if self.busy or now < self.idle_until:
            due = self.idle_until if now < self.idle_until else now + self.header_timeout
            self.timer = self.loop.call_at(due, self._check_idle)
            return
        self.close()

    def close(self) -> None:
        transport = self.transport
        self._forget()
        if transport is not None and not self.handed_over:
            transport.close()

    def _forget(self) -> None:
        if not self.closed:
            self.closed = True
            self.site.connections.discard(self)
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
