"""The TCP transport on its own: who dials, one connection per pair, hellos, redialing,
replacement, backpressure. Two or three transports on loopback in one event loop."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from raftsim.core.messages import Message, RequestVote, RequestVoteResponse
from raftsim.core.settings import NodeSettings
from raftsim.live import transport as transport_module
from raftsim.live.transport import (
    HELLO,
    PING,
    PRE_HELLO_BYTES,
    PROTOCOL_VERSION,
    LinkSettings,
    TcpTransport,
    split_address,
)
from raftsim.runtime.errors import RequestFailed
from raftsim.runtime.server import Server
from raftsim.storage.memory import MemoryStorage
from raftsim.wire import Frame, Notification, Request, Response, encode_frame, encode_message
from tests.livecluster import until_async

FAST = LinkSettings(idle_timeout=1.0, frame_timeout=1.0, backoff_min=0.01, backoff_max=0.1)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []
        self.frames: list[tuple[str, Frame]] = []

    def receive_message(self, source: str, message: Message) -> None:
        self.messages.append((source, message))

    def receive_frame(self, source: str, frame: Frame, connection: object = None) -> None:
        self.frames.append((source, frame))

    def connection_closed(self, connection: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Pair:
    """Transports "a" and "b" that know each other's addresses."""

    def __init__(self, settings: LinkSettings = FAST) -> None:
        self.ports = {"a": free_port(), "b": free_port()}
        self.settings = settings
        self.inboxes = {"a": Inbox(), "b": Inbox()}
        self.transports: dict[str, TcpTransport] = {}

    def address(self, sid: str) -> str:
        return f"127.0.0.1:{self.ports[sid]}"

    async def start(self, sid: str) -> TcpTransport:
        other = "b" if sid == "a" else "a"
        transport = TcpTransport(sid, f"{sid}.global", loop=asyncio.get_running_loop(),
                                 peers={other: self.address(other)}, settings=self.settings)
        transport.follow(self.inboxes[sid], lambda: (), lambda peer: None)
        await transport.start("127.0.0.1", self.ports[sid])
        self.transports[sid] = transport
        return transport

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    pair = Pair()
    await pair.start("a")
    await pair.start("b")
    try:
        yield pair
    finally:
        await pair.close()


def vote(source: str, target: str, term: int = 5) -> RequestVote:
    return RequestVote(term, source, target, 0, 0, True, False)


async def connected(pair: Pair) -> None:
    await until_async(lambda: pair.transports["a"].connected() == ["b"]
                      and pair.transports["b"].connected() == ["a"], 5.0)


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:4647", ("127.0.0.1", 4647)),
    ("localhost:1", ("localhost", 1)),
    ("[::1]:4646", ("::1", 4646)),
])
def test_split_address(text: str, expected: tuple[str, int]) -> None:
    assert split_address(text) == expected


@pytest.mark.parametrize("text", ["4647", "host:", ":4647", "host:0", "host:65536", "h:x"])
def test_split_address_refuses_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError):
        split_address(text)


@pytest.mark.parametrize("kwargs", [{"idle_timeout": 0}, {"frame_timeout": -1},
                                    {"backoff_min": 2.0, "backoff_max": 1.0},
                                    {"max_send_buffer": 0}])
def test_link_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LinkSettings(**kwargs)


async def test_the_smaller_id_dials_first_and_one_connection_carries_both_ways(
        pair: Pair) -> None:
    await connected(pair)
    a, b = pair.transports["a"], pair.transports["b"]
    assert a._links["b"].dialed and not b._links["a"].dialed
    assert a.names == {"a": "a.global", "b": "b.global"} == b.names
    a.send("b", encode_message(vote("a", "b")))
    b.send("a", encode_message(RequestVoteResponse(5, "b", "a", True, True)))
    await until_async(lambda: pair.inboxes["a"].messages and pair.inboxes["b"].messages, 5.0)
    assert pair.inboxes["b"].messages == [("a", vote("a", "b"))]
    assert pair.inboxes["a"].messages == [("b", RequestVoteResponse(5, "b", "a", True, True))]
    link_a, link_b = a._links["b"], b._links["a"]
    sock_a = link_a.writer.get_extra_info("socket")
    sock_b = link_b.writer.get_extra_info("socket")
    assert sock_a.getsockname() == sock_b.getpeername()


#: ``asyncio.sleep`` of this yields for one event-loop turn
ONE_TURN = 0


async def test_sends_gathered_until_release_leave_in_order_in_one_write_per_peer(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group-commit flush gathers its messages: nothing is written until release, then
    every message to a peer leaves, in order, in one write."""
    await connected(pair)
    a = pair.transports["a"]
    writer = a._links["b"].writer
    writes: list[bytes] = []
    write = writer.write

    def counted(data: bytes) -> None:
        writes.append(data)
        write(data)

    monkeypatch.setattr(writer, "write", counted)
    a.gather()
    for term in (5, 6, 7):
        a.send("b", encode_message(vote("a", "b", term)))
    await asyncio.sleep(ONE_TURN)
    assert writes == [] and pair.inboxes["b"].messages == []
    a.release()
    await until_async(lambda: len(pair.inboxes["b"].messages) == 3, 5.0)
    assert [m.term for _, m in pair.inboxes["b"].messages] == [5, 6, 7]
    assert len(writes) == 1
    a.send("b", encode_message(vote("a", "b", 8)))  # not gathering: written at once
    assert len(writes) == 2


async def test_requests_and_responses_reach_the_receiver_as_frames(pair: Pair) -> None:
    await connected(pair)
    pair.transports["b"].send("a", encode_frame(Request(7, "api.forward", [1])))
    pair.transports["a"].send("b", encode_frame(Response(7, None, "ok")))
    await until_async(lambda: pair.inboxes["a"].frames and pair.inboxes["b"].frames, 5.0)
    assert pair.inboxes["a"].frames == [("b", Request(7, "api.forward", [1]))]
    assert pair.inboxes["b"].frames == [("a", Response(7, None, "ok"))]


async def test_messages_are_handed_on_in_the_callback_that_read_them(pair: Pair) -> None:
    """A message reaches the receiver inside the I/O callback that read its bytes, not in
    a task woken an event-loop turn later: on a write's round trip at one client
    connection that turn came twice (the follower's AppendEntries, the leader's
    acknowledgement). Both directions: the dialed and the accepted connection. Many
    messages at once (several frames per read, frames split across reads) arrive whole
    and in order."""
    await connected(pair)
    tasks: list[asyncio.Task[Any] | None] = []
    inbox_b, inbox_a = pair.inboxes["b"], pair.inboxes["a"]
    for inbox in (inbox_a, inbox_b):
        record = inbox.receive_message

        def noting(source: str, message: Message, record: Any = record) -> None:
            tasks.append(asyncio.current_task())
            record(source, message)

        inbox.receive_message = noting  # type: ignore[method-assign]
    many = [vote("a", "b", term) for term in range(1, 2001)]
    for message in many:
        pair.transports["a"].send("b", encode_message(message))
    pair.transports["b"].send("a", encode_message(RequestVoteResponse(5, "b", "a", True, True)))
    await until_async(lambda: len(inbox_b.messages) == len(many) and inbox_a.messages, 5.0)
    assert [m for _, m in inbox_b.messages] == many
    assert tasks and all(task is None for task in tasks)


async def test_the_dialer_redials_a_restarted_peer() -> None:
    pair = Pair()
    try:
        await pair.start("a")
        await pair.start("b")
        await connected(pair)
        await pair.transports.pop("b").close()
        await until_async(lambda: pair.transports["a"].connected() == [], 5.0)
        pair.inboxes["b"] = Inbox()
        await pair.start("b")
        await connected(pair)
        pair.transports["a"].send("b", encode_message(vote("a", "b")))
        await until_async(lambda: pair.inboxes["b"].messages, 5.0)
    finally:
        await pair.close()


async def test_the_larger_id_dials_too_and_drops_what_it_cannot_send() -> None:
    pair = Pair()
    try:
        b = await pair.start("b")  # "a" is not up yet
        b.send("a", encode_message(vote("b", "a")))
        assert list(b._dialers) == ["a"] and b.connected() == []
        await pair.start("a")
        await connected(pair)
        assert pair.inboxes["a"].messages == []  # the early message was dropped
    finally:
        await pair.close()


async def test_without_tls_a_second_connection_claiming_a_connected_id_is_refused(
        pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    await connected(pair)
    b = pair.transports["b"]
    old = b._links["a"]
    reader, writer = await asyncio.open_connection("127.0.0.1", pair.ports["b"])
    with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
        writer.write(encode_frame(Notification(HELLO, [PROTOCOL_VERSION, "a", "a.global"])))
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # hung up, no hello back
    assert "a is connected already" in caplog.text
    assert b._links["a"] is old and not old.closed
    writer.close()
    await writer.wait_closed()


async def test_a_peer_outside_the_configuration_is_refused(
        pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    await connected(pair)
    reader, writer = await asyncio.open_connection("127.0.0.1", pair.ports["b"])
    with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
        writer.write(encode_frame(Notification(HELLO, [PROTOCOL_VERSION, "x", "x.global"])))
        assert await asyncio.wait_for(reader.read(), 5.0) == b""
    assert "'x' is not in this server's configuration" in caplog.text
    assert pair.transports["b"].connected() == ["a"]
    writer.close()
    await writer.wait_closed()


async def test_a_frame_over_the_peer_frame_limit_closes_the_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    pair = Pair(LinkSettings(idle_timeout=1.0, frame_timeout=1.0, backoff_min=0.01,
                             backoff_max=0.1, max_frame_bytes=PRE_HELLO_BYTES))
    try:
        a = await pair.start("a")
        await pair.start("b")
        await connected(pair)
        link = pair.transports["b"]._links["a"]
        with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
            a.send("b", encode_frame(Notification(PING, [bytes(PRE_HELLO_BYTES)])))
            await until_async(lambda: link.closed, 5.0)
        assert "over the limit" in caplog.text
    finally:
        await pair.close()


async def test_identified_connections_are_capped(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(transport_module, "MAX_PEERS", 1)
    pair = Pair()
    try:
        await pair.start("a")
        b = await pair.start("b")
        b.peers["c"] = "127.0.0.1:1"  # a configured peer that is not up
        await connected(pair)
        reader, writer = await asyncio.open_connection("127.0.0.1", pair.ports["b"])
        with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
            writer.write(encode_frame(Notification(HELLO, [PROTOCOL_VERSION, "c", "c.g"])))
            assert await asyncio.wait_for(reader.read(), 5.0) == b""
        assert "1 peers are connected already" in caplog.text
        writer.close()
        await writer.wait_closed()
    finally:
        await pair.close()


async def test_a_joining_server_is_dialed_whatever_its_id_sorts_as() -> None:
    """"0" is in no configuration (it waits to be added) and sorts below "a"."""
    loop = asyncio.get_running_loop()
    port = free_port()
    a = TcpTransport("a", loop=loop, settings=FAST)
    joiner = TcpTransport("0", loop=loop, settings=FAST)
    members: list[str] = ["a"]
    a.follow(Inbox(), lambda: members, {"0": f"127.0.0.1:{port}"}.get)
    joiner.follow(Inbox(), lambda: (), lambda peer: None)
    try:
        await joiner.start("127.0.0.1", port)
        await a.start("127.0.0.1", free_port())
        members.append("0")  # PUT /v1/operator/raft/peer added it
        await until_async(lambda: a.connected() == ["0"] and joiner.connected() == ["a"], 5.0)
    finally:
        await a.close()
        await joiner.close()


async def test_a_dialed_server_that_answers_with_another_id_is_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    """"a" dials "b"'s address, where "c" listens."""
    port = free_port()
    loop = asyncio.get_running_loop()
    a = TcpTransport("a", loop=loop, peers={"b": f"127.0.0.1:{port}"}, settings=FAST)
    c = TcpTransport("c", loop=loop, settings=FAST)
    a.follow(Inbox(), lambda: (), lambda peer: None)
    c.follow(Inbox(), lambda: (), lambda peer: None)
    try:
        with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
            await c.start("127.0.0.1", port)
            await a.start("127.0.0.1", free_port())
            await until_async(lambda: "dialed 'b' but 'c' answered" in caplog.text, 5.0)
        assert a.connected() == []
    finally:
        await a.close()
        await c.close()


async def test_members_added_later_are_dialed_at_the_address_resolved_for_them() -> None:
    loop = asyncio.get_running_loop()
    port = free_port()
    a = TcpTransport("a", loop=loop, settings=FAST)
    z = TcpTransport("z", loop=loop, settings=FAST)
    members: list[str] = []
    a.follow(Inbox(), lambda: members, {"z": f"127.0.0.1:{port}"}.get)
    z.follow(Inbox(), lambda: (), lambda peer: None)
    try:
        await z.start("127.0.0.1", port)
        await a.start("127.0.0.1", free_port())
        members.append("z")  # e.g. a configuration change added it
        await until_async(lambda: a.connected() == ["z"], 5.0)
        members.clear()  # removed again, and not a static peer: hung up
        await until_async(lambda: a.connected() == [] and not a._dialers, 5.0)
    finally:
        await a.close()
        await z.close()


async def test_messages_are_dropped_once_a_peer_stops_reading() -> None:
    pair = Pair(LinkSettings(idle_timeout=30.0, frame_timeout=30.0, backoff_min=0.01,
                             backoff_max=0.1, max_send_buffer=1 << 20))
    try:
        a = await pair.start("a")
        b = await pair.start("b")
        await connected(pair)
        b._links["a"].writer.transport.pause_reading()  # type: ignore[attr-defined]
        big = encode_frame(Notification("raftsim.ping", [bytes(1 << 20)]))
        for _ in range(64):
            a.send("b", big)  # once the socket is full, asyncio buffers: it never blocks
        assert a.dropped > 0
        assert a.connected() == ["b"]  # dropping is not closing
    finally:
        await pair.close()


async def test_close_ends_every_connection_and_task(pair: Pair) -> None:
    await connected(pair)
    a = pair.transports["a"]
    await a.close()
    assert a.connected() == [] and not a._tasks and not a._dialers
    await until_async(lambda: pair.transports["b"].connected() == [], 5.0)


# ---------------------------------------------------------------------- calls, connections


class RpcNode:
    """A runtime Server with no Raft configuration on a real transport: enough to make
    and serve msgpack-rpc calls."""

    def __init__(self, sid: str, port: int, peers: dict[str, str]) -> None:
        self.sid, self.port = sid, port
        loop = asyncio.get_running_loop()
        self.transport = TcpTransport(sid, f"{sid}.global", loop=loop, peers=peers,
                                      settings=FAST)
        self.server = Server(sid, settings=NodeSettings(), rng=random.Random(0),
                             storage=MemoryStorage(), transport=self.transport, loop=loop)
        self.transport.follow(self.server, lambda: (), lambda peer: None)

    async def start(self) -> RpcNode:
        self.server.start()
        await self.transport.start("127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        await self.transport.close()
        self.server.crash()


async def test_an_answer_from_another_peer_is_dropped() -> None:
    """"c" answers the msgid of a call that "a" made to "b"; "a" waits for "b"."""
    ports = {sid: free_port() for sid in "abc"}
    addresses = {sid: f"127.0.0.1:{port}" for sid, port in ports.items()}
    nodes = [RpcNode(sid, ports[sid], {p: a for p, a in addresses.items() if p != sid})
             for sid in "abc"]
    a, b, c = nodes
    release = asyncio.Event()

    async def slow(source: str, params: list[Any]) -> str:
        await release.wait()
        return "from b"

    b.server.rpc_handlers["slow"] = slow
    try:
        for node in nodes:
            await node.start()
        await until_async(lambda: a.transport.connected() == ["b", "c"], 5.0)
        call = asyncio.ensure_future(a.server.call("b", "slow", [], timeout=5.0))
        await until_async(lambda: bool(a.server._rpcs), 5.0)
        msgid = next(iter(a.server._rpcs))
        heard_from_c = a.transport._links["c"].received
        c.transport.send("a", encode_frame(Response(msgid, None, "forged by c")))
        await until_async(lambda: a.transport._links["c"].received > heard_from_c, 5.0)
        assert not call.done()
        release.set()
        assert await call == "from b"
    finally:
        for node in nodes:
            await node.stop()


async def test_a_late_answer_for_a_previous_incarnation_is_dropped() -> None:
    """"a" calls "b", restarts (a new process: msgids start again), calls again; "b"'s
    answer to the first call must not answer the second."""
    ports = {sid: free_port() for sid in "ab"}
    addresses = {sid: f"127.0.0.1:{port}" for sid, port in ports.items()}
    release = asyncio.Event()

    async def slow(source: str, params: list[Any]) -> str:
        await release.wait()
        return f"answer to {params[0]}"

    a = await RpcNode("a", ports["a"], {"b": addresses["b"]}).start()
    b = await RpcNode("b", ports["b"], {"a": addresses["a"]}).start()
    b.server.rpc_handlers["slow"] = slow
    new_a: RpcNode | None = None
    try:
        await until_async(lambda: a.transport.connected() == ["b"], 5.0)
        first = asyncio.ensure_future(a.server.call("b", "slow", ["first"], timeout=5.0))
        await until_async(lambda: bool(a.server._rpcs), 5.0)
        await a.stop()
        with pytest.raises(RequestFailed):
            await first
        new_a = await RpcNode("a", ports["a"], {"b": addresses["b"]}).start()
        await until_async(lambda: new_a is not None and new_a.transport.connected() == ["b"]
                          and b.transport.connected() == ["a"], 5.0)
        second = asyncio.ensure_future(new_a.server.call("b", "slow", ["second"], timeout=5.0))
        await until_async(lambda: new_a is not None and bool(new_a.server._rpcs), 5.0)
        release.set()  # "b" answers both now, the first one first
        assert await second == "answer to second"
    finally:
        for node in (b, new_a):
            if node is not None:
                await node.stop()
