"""What one server's HTTP port puts up with (raftsim/api/serve.py, issue 11): clients that
never finish a request, connections beyond a cap, bytes that are not UTF-8 in a token,
absolute-form request targets, and a flood of accept errors in the log. A real aiohttp
server on a loopback port in front of a one-server cluster, and raw sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from raftsim.api import build_app, serve_http
from raftsim.api.acl import Acl
from raftsim.api.serve import (
    AcceptErrorLog,
    HttpLimits,
    bound_port,
    connection_cap,
)
from raftsim.api.standin import StandIn
from raftsim.core.ready import Role
from raftsim.live.launcher import ACL_TOKEN_ENV
from raftsim.runtime.server import Server
from tests.livecluster import free_port_run, http, observe_for, wait_until
from tests.lone_server import lone_server

TOKEN = "4f1c-management"
#: how often the tests look again while they wait for something (never a fixed sleep)
POLL = 0.02
#: the limits of every test port: short, so a test waits a fraction of a second
FAST = HttpLimits(header_timeout=0.5, body_timeout=0.5, max_connections=8)



@dataclass
class Port:
    server: Server
    runner: web.AppRunner
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def start_port(limits: HttpLimits | None) -> Port:
    server = lone_server(asyncio.get_running_loop())
    while server.role is not Role.LEADER:
        await asyncio.sleep(POLL)
    app = build_app(server, acl=Acl(TOKEN))
    runner = await (serve_http(app, "127.0.0.1", 0) if limits is None
                    else serve_http(app, "127.0.0.1", 0, limits=limits))
    return Port(server, runner, bound_port(runner))


@pytest.fixture
async def port() -> AsyncIterator[Port]:
    started = await start_port(FAST)
    try:
        yield started
    finally:
        await started.runner.cleanup()
        started.server.crash()


async def exchange(port: Port, raw: bytes) -> bytes:
    reader, writer = await port.connect()
    try:
        writer.write(raw)
        return await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
        await writer.wait_closed()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after
    ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


# ---------------------------------------------------------------- requests that never end


async def test_a_request_whose_headers_never_finish_is_closed(port: Port) -> None:
    clients = []
    for _ in range(5):
        reader, writer = await port.connect()
        writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        clients.append((reader, writer))
    try:
        for reader, _ in clients:
            # Before: open for as long as the client liked (1,500 of them, forever).
            await closed_within(reader, FAST.header_timeout * 4)
    finally:
        for _, writer in clients:
            writer.close()
            await writer.wait_closed()


async def test_an_idle_keep_alive_connection_is_closed(port: Port) -> None:
    reader, writer = await port.connect()
    try:
        writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"HTTP/1.1 200")
        rest = await closed_within(reader, FAST.header_timeout * 4)
        assert rest.endswith(b'"127.0.0.1:1"')
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_body_that_never_arrives_gets_408_and_a_closed_connection(port: Port) -> None:
    reader, writer = await port.connect()
    try:
        writer.write(b"PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nX-Nomad-Token: " + TOKEN.encode()
                     + b"\r\nContent-Length: 10\r\n\r\nabc")
        answer = await closed_within(reader, FAST.body_timeout * 4)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"request body" in answer
    finally:
        writer.close()
        await writer.wait_closed()
    assert port.server.kv.get("k") is None


# ---------------------------------------------------------------- the connection cap


async def test_connections_past_the_cap_get_503_and_the_port_recovers(port: Port) -> None:
    cap = connection_cap(FAST)
    assert cap == FAST.max_connections
    held = [await port.connect() for _ in range(cap)]
    try:
        for reader, writer in held:  # each one counted (a request answered on each)
            writer.write(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        answer = await exchange(port, b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"too many connections" in answer.lower()
    finally:
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        answer = await exchange(port, b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n"
                                      b"Connection: close\r\n\r\n")
        if answer.startswith(b"HTTP/1.1 200"):
            break
        assert asyncio.get_running_loop().time() < deadline, answer
        await asyncio.sleep(POLL)


def test_the_cap_keeps_file_descriptors_in_reserve_for_storage() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = HttpLimits(max_connections=10**6, fd_reserve=100)
    assert connection_cap(limits) == max(soft - 100, 1)
    assert connection_cap(HttpLimits(max_connections=3)) == min(3, max(soft - 256, 1))


@pytest.mark.parametrize("field", ["header_timeout", "body_timeout", "max_connections",
                                   "fd_reserve"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HttpLimits(**{field: 0})


# ---------------------------------------------------------------- odd but valid requests


async def test_a_token_that_is_not_utf8_is_403_not_500(port: Port) -> None:
    for header in (b"X-Nomad-Token: \xff\xfe\xfd", b"Authorization: Bearer \xc3\x28"):
        answer = await exchange(port, b"GET /v1/operator/raft/configuration HTTP/1.1\r\n"
                                      b"Host: x\r\nConnection: close\r\n" + header + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403"), answer
        assert answer.endswith(b"Permission denied")


async def test_an_absolute_form_request_target_is_served(port: Port) -> None:
    target = f"http://127.0.0.1:{port.port}/v1/status/leader".encode()
    answer = await exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b'"127.0.0.1:1"')
    put = (f"PUT http://127.0.0.1:{port.port}/v1/kv/abs?cas=0 HTTP/1.1\r\nHost: x\r\n"
           f"X-Nomad-Token: {TOKEN}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    answer = await exchange(port, put.encode())
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"true"), answer
    item = port.server.kv.get("abs")
    assert item is not None and item.value == b"ok"


# ---------------------------------------------------------------- the log


def test_accept_errors_are_logged_at_most_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    """asyncio reports each failed accept (EMFILE: out of file descriptors) to the loop's
    exception handler, with a traceback."""
    loop = asyncio.new_event_loop()
    try:
        seen: list[dict[str, object]] = []
        loop.set_exception_handler(lambda _, context: seen.append(context))
        AcceptErrorLog.install(loop, interval=60.0)
        AcceptErrorLog.install(loop, interval=60.0)  # once is enough
        error = OSError(24, "Too many open files")
        with caplog.at_level(logging.WARNING, logger="raftsim.api.serve"):
            for _ in range(50):
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource", "exception": error})
            loop.call_exception_handler({"message": "something else"})
        lines = [r.getMessage() for r in caplog.records if r.name == "raftsim.api.serve"]
        assert len(lines) == 1, lines
        assert "Too many open files" in lines[0]
        assert [c["message"] for c in seen] == ["something else"]  # the rest goes on
    finally:
        loop.close()


# ---------------------------------------------------------------- the token and ps


def test_raftsim_cluster_keeps_the_acl_token_out_of_every_command_line(tmp_path: Path) -> None:
    """``ps`` shows every process's arguments to every user: the token is read from a
    0600 file and handed to the agents in their environment."""
    secret = "s3cret-" + "x" * 24
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    token_file.chmod(0o600)
    ready = tmp_path / "ready.json"
    command = [sys.executable, "-m", "raftsim.cli", "cluster", "--servers", "3",
               "--base-port", str(free_port_run(6)), "--ready-file", str(ready),
               "--data-dir", str(tmp_path / "data"), "--acl-token-file", str(token_file)]
    env = {k: v for k, v in os.environ.items() if k != ACL_TOKEN_ENV}
    with open(tmp_path / "cluster.out", "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    try:
        info = wait_until(lambda: json.loads(ready.read_text()) if ready.exists() else None,
                          30.0, "the ready file")
        pids = [process.pid, *(server["pid"] for server in info["servers"])]
        for pid in pids:
            assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        url = f"http://{info['servers'][0]['http']}/v1/operator/raft/configuration"
        assert http("GET", url)[0] == 403
        status, _ = http("GET", url, token=secret)
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


_OUT_OF_FDS = """
import asyncio, logging, random, resource, sys
from raftsim.api import build_app, serve_http
from raftsim.api.serve import HttpLimits, bound_port
from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.node import bootstrap_state
from raftsim.core.settings import NodeSettings
from raftsim.runtime.server import Server
from raftsim.storage.memory import MemoryStorage

class Nowhere:
    def send(self, target, data, meta=None):
        pass

async def main():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
    storage = MemoryStorage()
    hard_state, entries = bootstrap_state(Configuration((ServerInfo("s1", "127.0.0.1:1"),)))
    storage.save(hard_state, tuple(entries), None)
    server = Server("s1", settings=NodeSettings(), rng=random.Random(1), storage=storage,
                    transport=Nowhere(), loop=asyncio.get_running_loop(), group_commit=True)
    server.start()
    # no reserve and no cap: this process runs out of descriptors on purpose
    limits = HttpLimits(max_connections=10**6, fd_reserve=1)
    runner = await serve_http(build_app(server), "127.0.0.1", 0, limits=limits)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(bound_port(runner), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_running_out_of_file_descriptors_logs_one_line_not_one_per_accept(
        tmp_path: Path) -> None:
    """A real process at its descriptor limit with 100 clients waiting: left alone,
    asyncio logs a traceback for each failed accept (144 in 3.5 s measured)."""
    err = tmp_path / "server.err"
    with open(err, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _OUT_OF_FDS], stdout=subprocess.PIPE,
                                   stderr=stderr)
    clients: list[socket.socket] = []
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        for _ in range(100):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))

        def warnings() -> list[str]:
            return [line for line in err.read_text().splitlines()
                    if "cannot accept connections" in line]

        wait_until(warnings, 10.0, "the accept warning")

        def at_most_one() -> None:
            assert len(warnings()) == 1, err.read_text()

        observe_for(2.5, at_most_one)
        text = err.read_text()
        assert "Too many open files" in warnings()[0]
        assert "Traceback" not in text and "out of system resource" not in text, text
    finally:
        for client in clients:
            client.close()
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_an_absolute_form_request_to_a_follower_is_forwarded_as_its_path() -> None:
    """The follower hands the leader the request's path, not the absolute URL (which the
    leader could not serve)."""
    with StandIn(3, acl_token=TOKEN) as servers:
        leader = servers.leader()
        follower = next(sid for sid in servers.ports if sid != leader)
        port = servers.ports[follower]
        request = (f"PUT http://127.0.0.1:{port}/v1/kv/via%20follower HTTP/1.1\r\nHost: x\r\n"
                   f"X-Nomad-Token: {TOKEN}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request.encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"true"), answer
        status, body = http("GET", f"{servers.url(leader)}/v1/kv/via%20follower", token=TOKEN)
        assert (status, body) == (200, b"ok")
