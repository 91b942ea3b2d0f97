"""One real HTTP/1.1 exchange with an application, over an in-memory transport.

aiohttp's own request handling (``web.AppRunner`` and the ``RequestHandler`` protocol of
its ``web.Server``) parses the request bytes and writes the response bytes, exactly as
for a TCP connection; only the transport is a buffer. No port is opened and no clock is
read, so this works in virtual time. The simulated world's clients use it, and so does a
leader answering a request a follower forwarded.

Each exchange is one connection with ``Connection: close``: the response is complete when
aiohttp closes the transport.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload
from urllib.parse import quote

from aiohttp import web

from raftsim.api.state import STATE

#: a request's HTTP method must be a token (RFC 9110 section 5.6.2)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: what may stay as it is in a request target; everything else is percent-encoded
_TARGET_SAFE = "/?&=%:@!$'()*+,;~-._"


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @overload
    def header(self, name: str) -> str | None: ...

    @overload
    def header(self, name: str, default: str) -> str: ...

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by name, whatever its case."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default


class MemoryTransport(asyncio.Transport):
    """The server side of one connection: collects what the protocol writes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, extra: Mapping[str, Any]) -> None:
        super().__init__(dict(extra))
        self._loop = loop
        self._protocol: asyncio.BaseProtocol | None = None
        self._chunks: list[bytes] = []
        self._closing = False
        #: resolves to every byte written once the protocol closed the connection
        self.done: asyncio.Future[bytes] = loop.create_future()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._chunks.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self._connection_lost)

    def abort(self) -> None:
        self.close()

    def _connection_lost(self) -> None:
        if self._protocol is not None:
            self._protocol.connection_lost(None)
        if not self.done.done():
            self.done.set_result(b"".join(self._chunks))

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def is_reading(self) -> bool:
        return not self._closing

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


def request_target(path_with_query: str) -> str:
    """Percent-encode what an HTTP request line cannot carry (spaces, non-ASCII) and
    leave existing escapes alone."""
    if not path_with_query.startswith("/"):
        raise ValueError(f"the path must start with '/', got {path_with_query!r}")
    return quote(path_with_query, safe=_TARGET_SAFE)


def encode_request(method: str, path_with_query: str,
                   headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    if not _TOKEN.match(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    lines = [f"{method} {request_target(path_with_query)} HTTP/1.1", "Host: raftsim",
             "Connection: close", f"Content-Length: {len(body)}"]
    for name, value in headers:
        if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"not a valid HTTP header: {name!r}")
        if name.lower() in ("host", "connection", "content-length", "transfer-encoding"):
            continue
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def decode_response(raw: bytes) -> ApiResponse:
    head, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("the application closed the connection without a whole response")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(rest)
    elif "content-length" in lowered:
        body = rest[: int(lowered["content-length"])]
    else:
        body = rest
    return ApiResponse(int(parts[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    position = 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        start = line_end + 2
        out += data[start:start + size]
        position = start + size + 2


async def local_http_server(app: web.Application) -> web.Server:
    """The application's request handling, set up once (shared by every exchange)."""
    state = app[STATE]
    if state.local_runner is None:
        state.local_runner = asyncio.get_running_loop().create_task(_setup(app))
    runner = await asyncio.shield(state.local_runner)
    server = runner.server
    assert server is not None
    return server


async def _setup(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    return runner


async def close_local_http_server(app: web.Application) -> None:
    state = app[STATE]
    task, state.local_runner = state.local_runner, None
    if task is not None:
        runner = await task
        await runner.cleanup()


async def exchange(app: web.Application, raw_request: bytes,
                   extra: Mapping[str, Any] | None = None) -> ApiResponse:
    """Hand ``raw_request`` to the application as one connection; its response.
    ``extra`` is what the handlers see from ``request.transport.get_extra_info``."""
    server = await local_http_server(app)
    loop = asyncio.get_running_loop()
    info: dict[str, Any] = {"peername": ("127.0.0.1", 0), "sockname": ("127.0.0.1", 0)}
    info.update(extra or {})
    transport = MemoryTransport(loop, info)
    protocol = server()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    protocol.data_received(raw_request)
    try:
        raw = await asyncio.shield(transport.done)
    finally:
        transport.close()
    return decode_response(raw)
