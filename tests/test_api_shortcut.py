"""The HTTP port's shortcut for short KV writes at the leader (raftsim/api/shortcut.py):
answered with the bytes aiohttp would send, without aiohttp's request handling; every
other request, on the same connection too, still answered by aiohttp, in order; idle
shortcut connections closed and counted against the connection cap. A real aiohttp port
(and a second one with the shortcut off, to compare) in front of a one-server cluster,
and raw sockets."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from raftsim.api import build_app, serve_http
from raftsim.api.acl import Acl
from raftsim.api.serve import HttpLimits, bound_port
from raftsim.api.shortcut import parse_short_put
from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.node import bootstrap_state
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import MAX_VALUE_BYTES, encode_put
from raftsim.runtime.server import Server
from raftsim.storage.memory import MemoryStorage
from tests.lone_server import Nowhere, lone_server

#: how often the tests look again while they wait for something (never a fixed sleep)
POLL = 0.02
FAST = HttpLimits(header_timeout=0.5, body_timeout=0.5, max_connections=4)
PUT = b"PUT /v1/kv/k1 HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nvvvvvvvv"


def with_header(header: bytes) -> bytes:
    return PUT.replace(b"Host: x", b"Host: x\r\n" + header)



@dataclass
class Ports:
    server: Server
    #: the shortcut on (the default) and off
    on: web.AppRunner
    off: web.AppRunner

    async def connect(self, runner: web.AppRunner) -> tuple[asyncio.StreamReader,
                                                             asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", bound_port(runner))


@pytest.fixture
async def ports() -> AsyncIterator[Ports]:
    server = lone_server(asyncio.get_running_loop())
    while server.role is not Role.LEADER:
        await asyncio.sleep(POLL)
    on = await serve_http(build_app(server), "127.0.0.1", 0, limits=FAST)
    off = await serve_http(build_app(server), "127.0.0.1", 0, limits=FAST, kv_shortcut=False)
    try:
        yield Ports(server, on, off)
    finally:
        await on.cleanup()
        await off.cleanup()
        server.crash()


async def answers(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """``count`` whole responses (each has a Content-Length)."""
    out = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        out.append(head + await asyncio.wait_for(reader.readexactly(length), 5.0))
    return out


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n")
                        if not line.startswith(b"Date: "))


async def one_exchange(ports: Ports, runner: web.AppRunner, raw: bytes) -> bytes:
    reader, writer = await ports.connect(runner)
    try:
        writer.write(raw)
        return (await answers(reader, 1))[0]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_short_write_is_answered_as_aiohttp_answers_it_without_aiohttp(
        ports: Ports) -> None:
    for runner in (ports.off, ports.on):
        assert without_date(await one_exchange(ports, runner, PUT)) == (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"X-Nomad-KnownLeader: true\r\nContent-Length: 4\r\n"
            b"Server: " + SERVER_SOFTWARE.encode() + b"\r\n\r\ntrue")
    item = ports.server.kv.get("k1")
    assert item is not None and item.value == b"vvvvvvvv"
    # aiohttp handled the write on the port without the shortcut, not on the other
    assert ports.off.server is not None and ports.off.server.requests_count == 1
    assert ports.on.server is not None and ports.on.server.requests_count == 0


async def test_an_overloaded_leader_answers_429_the_same_way(ports: Ports) -> None:
    ports.server.max_pending_commands = 0
    off = await one_exchange(ports, ports.off, PUT)
    on = await one_exchange(ports, ports.on, PUT)
    assert off.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"Retry-After: 1\r\n" in off
    assert without_date(on) == without_date(off)
    assert ports.server.kv.get("k1") is None


async def test_other_requests_on_a_shortcut_connection_go_to_aiohttp_in_order(
        ports: Ports) -> None:
    reader, writer = await ports.connect(ports.on)
    try:
        writer.write(PUT)
        first = await answers(reader, 1)
        # pipelined: a compare-and-set (a query: aiohttp's), a read, a short write
        writer.write(b"PUT /v1/kv/k1?cas=0 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
                     b"GET /v1/kv/k1 HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"PUT /v1/kv/k2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nv2")
        rest = await answers(reader, 3)
    finally:
        writer.close()
        await writer.wait_closed()
    bodies = [answer.split(b"\r\n\r\n", 1)[1] for answer in first + rest]
    assert bodies == [b"true", b"false", b"vvvvvvvv", b"true"]
    assert ports.on.server is not None and ports.on.server.requests_count == 3


async def test_a_head_that_arrives_in_pieces_is_gathered_first(ports: Ports) -> None:
    reader, writer = await ports.connect(ports.on)
    try:
        for piece in (PUT[:10], PUT[10:30], PUT[30:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(POLL)  # let each piece arrive on its own
        answer = (await answers(reader, 1))[0]
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.endswith(b"\r\n\r\ntrue")
    assert ports.on.server is not None and ports.on.server.requests_count == 0


async def test_a_head_that_never_finishes_after_a_short_write_is_closed(
        ports: Ports) -> None:
    reader, writer = await ports.connect(ports.on)
    try:
        writer.write(PUT)
        await answers(reader, 1)
        writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert await asyncio.wait_for(reader.read(), FAST.header_timeout * 4) == b""
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("raw", [
    PUT,
    PUT.replace(b"Host: x\r\n", b""),
    with_header(b"Host: y"),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/%zz"),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/a//b/../c"),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/a%00b"),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/%C3%A9t%C3%A9"),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/" + b"k" * 513),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/"),
    PUT.replace(b"/v1/kv/k1", b"/v1/kv/a;b=c"),
    PUT.replace(b"Content-Length: 8", b"Content-Length: 008"),
    with_header(b"Content-Type: application/json"),
    with_header(b"Connection: keep-alive"),
])
async def test_the_shortcut_answers_odd_requests_as_aiohttp_does(ports: Ports,
                                                                  raw: bytes) -> None:
    """Status, headers (but the date) and body, request by request, on a port with the
    shortcut and one without."""
    off = await one_exchange(ports, ports.off, raw)
    on = await one_exchange(ports, ports.on, raw)
    assert without_date(on) == without_date(off)


async def test_an_invalid_key_gets_aiohttps_400(ports: Ports) -> None:
    raw = b"PUT /v1/kv/%ff HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
    on = await one_exchange(ports, ports.on, raw)
    assert on.startswith(b"HTTP/1.1 400")
    assert on.endswith(b"Key is not valid UTF-8")
    assert without_date(on) == without_date(await one_exchange(ports, ports.off, raw))


async def test_with_acls_on_only_the_management_token_takes_the_shortcut(
        ports: Ports) -> None:
    app = build_app(ports.server, acl=Acl("secret"))
    runner = await serve_http(app, "127.0.0.1", 0, limits=FAST)
    try:
        refused = [await one_exchange(ports, runner, with_header(header))
                   for header in (b"X-Trace: 1", b"X-Nomad-Token: wrong",
                                  b"Authorization: Bearer wrong", b"X-Nomad-Token: ",
                                  b"X-Nomad-Token: wrong\r\nAuthorization: Bearer secret")]
        assert ports.server.kv.get("k1") is None
        assert runner.server is not None and runner.server.requests_count == len(refused)
        taken = [await one_exchange(ports, runner, with_header(header))
                 for header in (b"X-Nomad-Token: secret", b"Authorization: Bearer secret",
                                b"X-Nomad-Token:  secret \r\nX-Nomad-Token: wrong")]
        assert runner.server.requests_count == len(refused)  # none of these went to aiohttp
    finally:
        await runner.cleanup()
    assert all(answer.startswith(b"HTTP/1.1 403") for answer in refused), refused
    assert all(answer.endswith(b"\r\n\r\ntrue") for answer in taken), taken


async def test_an_idle_shortcut_connection_is_closed(ports: Ports) -> None:
    reader, writer = await ports.connect(ports.on)
    try:
        writer.write(PUT)
        await answers(reader, 1)
        assert await asyncio.wait_for(reader.read(), FAST.header_timeout * 4) == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_shortcut_connections_count_against_the_cap(ports: Ports) -> None:
    held = [await ports.connect(ports.on) for _ in range(FAST.max_connections)]
    try:
        for reader, writer in held:
            writer.write(PUT)
            await answers(reader, 1)
        reader, writer = await ports.connect(ports.on)
        writer.write(PUT)
        refused = await asyncio.wait_for(reader.read(), 5.0)
        writer.close()
        await writer.wait_closed()
        assert refused.startswith(b"HTTP/1.1 503"), refused
    finally:
        for _, writer in held:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("raw", [
    PUT.replace(b"k1 ", b"k1?cas=0 "),
    PUT.replace(b"PUT", b"POST"),
    PUT.replace(b"HTTP/1.1", b"HTTP/1.0"),
    PUT[:-1],  # the body not all here yet
    PUT + b"P",  # the next request's start behind it
    PUT.replace(b"Content-Length: 8", b"Transfer-Encoding: chunked"),
    PUT.replace(b"Host: x", b"Host: x\r\nContent-Length: 8"),  # two lengths
    PUT.replace(b"Host: x\r\n", b""),  # no Host: aiohttp answers 400
    PUT.replace(b"Host: x", b"Host: x\r\nHost: y"),
    PUT.replace(b"Host: x", b"Host: x\r\nExpect: 100-continue"),
    PUT.replace(b"Host: x", b"Host: x\r\nConnection: close"),
    PUT.replace(b"Host: x", b"Host: x\r\n folded"),
    PUT.replace(b"Host: x", b"Host: \xc3\xa9"),
    PUT.replace(b"Host: x", b"Host: x\r\nBad Name: x"),
    PUT.replace(b"Content-Length: 8", b"Content-Length: +8"),
    b"PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_VALUE_BYTES + 1)
    + b"v" * (MAX_VALUE_BYTES + 1),
    b"PUT http://x/v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv",
])
def test_what_the_shortcut_leaves_to_aiohttp(raw: bytes) -> None:
    assert parse_short_put(raw) is None


def test_what_the_shortcut_takes() -> None:
    assert parse_short_put(PUT) == ("/v1/kv/k1", b"vvvvvvvv", {})
    keep = PUT.replace(b"Host: x", b"Host: x\r\nConnection: Keep-Alive\r\nUser-Agent: wrk")
    assert parse_short_put(keep) == ("/v1/kv/k1", b"vvvvvvvv", {})
    empty = b"PUT /v1/kv/a%2Fb HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
    assert parse_short_put(empty) == ("/v1/kv/a%2Fb", b"", {})
    tokens = PUT.replace(b"Host: x", b"Host: x\r\nx-nomad-token:  t1 \r\nX-Nomad-Token: t2\r\n"
                                      b"AUTHORIZATION: Bearer b1")
    assert parse_short_put(tokens) == ("/v1/kv/k1", b"vvvvvvvv",
                                       {"X-Nomad-Token": "t1", "Authorization": "Bearer b1"})


def test_connections_past_the_cap_get_503_on_uvloop_too() -> None:
    """Live agents run on uvloop, whose transports are no asyncio.Transport subclass: the
    503 answer past the cap asserted that they were, and failed there."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        storage = MemoryStorage()
        hard_state, entries = bootstrap_state(
            Configuration((ServerInfo("s1", "127.0.0.1:1"),)))
        storage.save(hard_state, tuple(entries), None)
        server = Server("s1", settings=NodeSettings(), rng=random.Random(1), storage=storage,
                        transport=Nowhere(), loop=loop, group_commit=True)
        server.start()
        limits = HttpLimits(header_timeout=5.0, body_timeout=5.0, max_connections=1)
        runner = await serve_http(build_app(server), "127.0.0.1", 0, limits=limits)
        port = bound_port(runner)
        try:
            held_reader, held = await asyncio.open_connection("127.0.0.1", port)
            held.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(held_reader.readuntil(b"\r\n\r\n"), 5.0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(reader.read(), 5.0)
            writer.close()
            held.close()
            return refused
        finally:
            await runner.cleanup()
            server.crash()

    assert uvloop.run(main()).startswith(b"HTTP/1.1 503")


async def test_a_committed_write_is_answered_before_the_futures_callbacks_run(
        ports: Ports) -> None:
    """``Server.submit_waiting(then=...)`` calls ``then`` inside the server's processing,
    as the command resolves the future: the shortcut answers there, a loop turn before
    the future's own callbacks could."""
    order: list[str] = []
    fut = ports.server.submit_waiting(encode_put("k9", b"v", None), 5.0,
                                      then=lambda f: order.append(f"then: done={f.done()}"))
    fut.add_done_callback(lambda f: order.append("callback"))
    assert await fut is True
    assert order == ["then: done=True", "callback"]


@pytest.mark.parametrize("raw", [
    b"GET /v1/status/leader HTTP/1.1\nHost: x\n\n",  # bare LF: aiohttp's 400, at once
    b"PUT /v1/kv/k1 HTTP/1.1\nHost: x\nContent-Length: 8\n\nvvvvvvvv",
], ids=["get-bare-lf", "put-bare-lf"])
async def test_a_malformed_head_is_answered_by_aiohttp_at_once(ports: Ports,
                                                               raw: bytes) -> None:
    """A head the shortcut could never take goes to aiohttp as soon as that is clear,
    so a malformed one gets aiohttp's 400 at once, not silence until the header
    timeout closes the connection."""
    expected = await one_exchange(ports, ports.off, raw)
    reader, writer = await ports.connect(ports.on)
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                      FAST.header_timeout / 2)
    finally:
        writer.close()
        await writer.wait_closed()
    assert head.startswith(b"HTTP/1.0 400 Bad Request")
    assert expected.startswith(b"HTTP/1.0 400 Bad Request")
