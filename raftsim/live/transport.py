"""TCP between live servers: one connection per pair of servers, msgpack-rpc frames on it.

Of two servers, the one with the smaller id dials the other and redials with backoff
whenever the connection drops; the other only accepts. That rule gives one connection per
pair with no tie-break protocol: a new connection from a peer simply replaces the old one
(the peer restarted, or its side of the old one died). A message for a peer with no
connection is dropped, as a lost message is something Raft already survives.

On the connection, both ways, the first frame is a hello, ``[2, "raftsim.hello",
[version, server id, node name]]`` (the node names fill the member directory, Nomad's
Serf stand-in); then Raft messages as notifications and msgpack-rpc requests and
responses, pipelined and matched by msgid in the server.

Everything that arrives goes through a :class:`~raftsim.wire.FrameDecoder` with the
wire layer's limits, and a Raft message is decoded and checked (fields, types, that it
comes from the peer the connection belongs to) before the server sees it. Anything else —
bytes that are no frame, a frame over a limit, a message with the wrong types, a frame
that stays incomplete for ``frame_timeout`` (a slow-loris), a connection that says
nothing for ``idle_timeout`` — closes that connection only, with one log line. Idle
connections stay alive with small ping frames, so silence means the peer or the path is
gone (a partition leaves TCP connections open but mute).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from raftsim.core.messages import Message
from raftsim.wire import (
    Frame,
    FrameDecoder,
    FrameError,
    Notification,
    WireError,
    decode_message,
    encode_frame,
)

logger = logging.getLogger(__name__)

HELLO: Final = "raftsim.hello"
PING: Final = "raftsim.ping"
PROTOCOL_VERSION: Final = 1
#: longest server id or node name a hello may carry
MAX_NAME_LEN: Final = 256
#: bytes a connection may send before its hello is complete (a hello is ~30 bytes): until
#: it says who it is, a connection does not get the wire's 4 MiB frame limit
PRE_HELLO_BYTES: Final = 64 * 1024
#: connections accepted but not yet identified by a hello, at most
MAX_UNIDENTIFIED: Final = 64
_READ_SIZE: Final = 1 << 18
_PING_FRAME: Final = encode_frame(Notification(PING, []))


class Receiver(Protocol):
    """Where a transport delivers what arrives (a runtime Server)."""

    def receive_message(self, source: str, message: Message) -> None: ...

    def receive_frame(self, source: str, frame: Frame) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Timeouts and limits of the server-to-server connections (seconds, bytes)."""

    #: a connection that receives nothing (not even a ping) this long is closed
    idle_timeout: float = 5.0
    #: a frame that is still incomplete this long after its first byte closes it
    frame_timeout: float = 5.0
    connect_timeout: float = 2.0
    backoff_min: float = 0.05
    backoff_max: float = 1.0
    #: past this many unsent bytes to one peer, further messages to it are dropped
    max_send_buffer: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "frame_timeout", "connect_timeout", "backoff_min",
                     "backoff_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must be at least backoff_min")
        if self.max_send_buffer < 1:
            raise ValueError("max_send_buffer must be positive")


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as a (host, port) pair; ValueError if it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _hello_frame(server_id: str, node_name: str) -> bytes:
    return encode_frame(Notification(HELLO, [PROTOCOL_VERSION, server_id, node_name]))


class _Link:
    """One TCP connection to a peer: reads and checks what arrives, writes what is sent."""

    def __init__(self, transport: TcpTransport, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, peer: str | None) -> None:
        self.transport = transport
        self.reader = reader
        self.writer = writer
        #: the peer's id: known when we dialed, learned from the hello when we accepted
        self.peer = peer
        self.heard_hello = False
        peername = writer.get_extra_info("peername")
        self.remote = (f"{peername[0]}:{peername[1]}"
                       if isinstance(peername, tuple) and len(peername) >= 2 else "?")
        self.decoder = FrameDecoder()
        self.received = 0
        now = transport.loop.time()
        self.last_received = now
        self.last_sent = now
        self.partial_since: float | None = None
        self.closed = False

    def describe(self) -> str:
        if self.peer is not None and self.heard_hello:
            return f"with {self.peer} ({self.remote})"
        return f"from {self.remote}"

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        transport = self.writer.transport
        if transport.is_closing():
            return  # the peer hung up; run() is about to notice
        if transport.get_write_buffer_size() > self.transport.settings.max_send_buffer:
            self.transport.dropped += 1
            return
        # Straight to the socket: group commit already makes few, large messages, and an
        # answer written now leaves before the server goes on to apply entries.
        self.writer.write(data)
        self.last_sent = self.transport.loop.time()

    def close(self, reason: str, *, level: int = logging.DEBUG) -> None:
        """Close at once (unsent data is dropped); log ``reason`` once."""
        if self.closed:
            return
        self.closed = True
        logger.log(level, "%s: closing RPC connection %s: %s", self.transport.id,
                   self.describe(), reason)
        self.writer.transport.abort()
        self.transport._forget(self)

    async def run(self) -> None:
        """Read until the connection ends; hand every checked frame on."""
        loop = self.transport.loop
        reader = self.reader
        decoder = self.decoder
        try:
            while not self.closed:
                try:
                    data = await reader.read(_READ_SIZE)
                except OSError as exc:
                    self.close(f"read failed: {exc}")
                    return
                if not data:
                    self.close("the peer closed the connection")
                    return
                now = loop.time()
                self.last_received = now
                self.received += len(data)
                try:
                    frames = decoder.feed(data)
                except FrameError as exc:
                    self.close(f"bad frame: {exc}", level=logging.WARNING)
                    return
                if decoder.buffered:
                    if self.partial_since is None:
                        self.partial_since = now
                else:
                    self.partial_since = None
                for frame in frames:
                    if not self._dispatch(frame):
                        return
                if not self.heard_hello and self.received > PRE_HELLO_BYTES:
                    self.close(f"{self.received} bytes and no hello", level=logging.WARNING)
                    return
        finally:
            if not self.closed:  # cancelled
                self.close("shutting down")

    def _dispatch(self, frame: Frame) -> bool:
        """Hand one frame on; False if it was bad (the connection is then closed)."""
        if type(frame) is Notification:
            method = frame.method
            if method == HELLO:
                return self._on_hello(frame.params)
            if not self.heard_hello or self.peer is None:
                self.close(f"expected a {HELLO} first, got {method!r}", level=logging.WARNING)
                return False
            if method == PING:
                return True
            try:
                message = decode_message(frame)
            except WireError as exc:
                self.close(f"invalid message: {exc}", level=logging.WARNING)
                return False
            if message.source != self.peer or message.target != self.transport.id:
                self.close(f"a {method} from {message.source!r} to {message.target!r} on the "
                           f"connection from {self.peer!r}", level=logging.WARNING)
                return False
            receiver = self.transport.receiver
            if receiver is not None:
                receiver.receive_message(self.peer, message)
            return True
        if not self.heard_hello or self.peer is None:
            self.close(f"expected a {HELLO} first, got a {type(frame).__name__.lower()}",
                       level=logging.WARNING)
            return False
        receiver = self.transport.receiver
        if receiver is not None:
            receiver.receive_frame(self.peer, frame)
        return True

    def _on_hello(self, params: list[Any]) -> bool:
        if self.heard_hello:
            self.close("a second hello", level=logging.WARNING)
            return False
        if not (len(params) == 3 and type(params[0]) is int and isinstance(params[1], str)
                and isinstance(params[2], str) and 0 < len(params[1]) <= MAX_NAME_LEN
                and len(params[2]) <= MAX_NAME_LEN):
            self.close("a hello is [version, server id, node name]", level=logging.WARNING)
            return False
        version, peer, name = params
        if version != PROTOCOL_VERSION:
            self.close(f"protocol version {version}, expected {PROTOCOL_VERSION}",
                       level=logging.WARNING)
            return False
        transport = self.transport
        if peer == transport.id:
            self.close(f"the peer says it is this server ({peer!r})", level=logging.WARNING)
            return False
        if self.peer is not None and peer != self.peer:
            self.close(f"dialed {self.peer!r} but {peer!r} answered", level=logging.WARNING)
            return False
        self.heard_hello = True
        if name:
            transport.names[peer] = name
        if self.peer is None:  # we accepted: this is the peer's connection now
            self.peer = peer
            self.send(transport.hello)
            transport._register(self)
        return True


class TcpTransport:
    """The live world's :class:`~raftsim.runtime.server.Transport`.

    ``peers`` (id -> ``host:port``) are dialed from the start; ``members`` (set with
    :meth:`follow`) names more servers to stay connected to, and ``resolve`` their
    addresses (both from the server's latest configuration). ``names`` maps server ids
    to node names, this server's own and those learned from hellos.
    """

    def __init__(self, server_id: str, node_name: str = "", *,
                 loop: asyncio.AbstractEventLoop, peers: Mapping[str, str] | None = None,
                 settings: LinkSettings | None = None) -> None:
        if not server_id or len(server_id) > MAX_NAME_LEN:
            raise ValueError(f"a server id must be 1 to {MAX_NAME_LEN} characters")
        self.id = server_id
        self.loop = loop
        self.settings = settings or LinkSettings()
        self.peers: dict[str, str] = dict(peers or {})
        for address in self.peers.values():
            split_address(address)
        self.names: dict[str, str] = {server_id: node_name} if node_name else {}
        self.hello = _hello_frame(server_id, node_name)
        self.receiver: Receiver | None = None
        self.members: Callable[[], Iterable[str]] = lambda: ()
        self.resolve: Callable[[str], str | None] = lambda peer: None
        #: messages dropped because a peer's send buffer was full
        self.dropped = 0
        self._links: dict[str, _Link] = {}
        self._unidentified: set[_Link] = set()
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: asyncio runs each accepted connection in a task of its own; close() lets these
        #: end by closing their connections (Python 3.11's streams log cancelled ones)
        self._accepting: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Server | None = None
        self._closing = False

    # ------------------------------------------------------------------ setup

    def follow(self, receiver: Receiver, members: Callable[[], Iterable[str]],
               resolve: Callable[[str], str | None]) -> None:
        """Deliver to ``receiver``; stay connected to ``members()``, found at
        ``resolve(id)`` (the static peers' addresses are used when it says None)."""
        self.receiver = receiver
        self.members = members
        self.resolve = resolve

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (0: any free port, see :attr:`port`) and start dialing."""
        self._listener = await asyncio.start_server(self._accept, host, port,
                                                    limit=_READ_SIZE * 4)
        self._spawn(self._watch())

    @property
    def port(self) -> int:
        assert self._listener is not None and self._listener.sockets
        return int(self._listener.sockets[0].getsockname()[1])

    def connected(self) -> list[str]:
        """Peers with an open connection whose hello was heard."""
        return sorted(p for p, link in self._links.items() if link.heard_hello)

    async def close(self) -> None:
        """Stop listening and dialing; close every connection."""
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        for link in [*self._links.values(), *self._unidentified]:
            link.close("shutting down")
        tasks = [*self._tasks, *self._dialers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._accepting, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()

    # ------------------------------------------------------------------ sending

    def send(self, target: str, data: bytes, meta: object = None) -> None:
        link = self._links.get(target)
        if link is not None:
            link.send(data)
        elif self._dials(target) and target not in self._dialers and not self._closing:
            self._dial(target)  # a server we were not yet connected to (just added)

    def _dials(self, peer: str) -> bool:
        return self.id < peer

    # ------------------------------------------------------------------ connections

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        if len(self._unidentified) >= MAX_UNIDENTIFIED:
            logger.warning("%s: refusing an RPC connection from %s: %d connections have not "
                           "said hello yet", self.id, writer.get_extra_info("peername"),
                           len(self._unidentified))
            writer.transport.abort()
            return
        link = _Link(self, reader, writer, None)
        self._unidentified.add(link)
        task = asyncio.current_task()
        if task is not None:
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)
        await link.run()

    def _register(self, link: _Link) -> None:
        assert link.peer is not None
        self._unidentified.discard(link)
        old = self._links.get(link.peer)
        self._links[link.peer] = link
        if old is not None and old is not link:
            old.close("replaced by a newer connection")

    def _forget(self, link: _Link) -> None:
        self._unidentified.discard(link)
        if link.peer is not None and self._links.get(link.peer) is link:
            del self._links[link.peer]

    def _address_of(self, peer: str) -> str | None:
        return self.resolve(peer) or self.peers.get(peer)

    def _wanted(self) -> set[str]:
        wanted = set(self.peers)
        wanted.update(self.members())
        wanted.discard(self.id)
        return {peer for peer in wanted if self._dials(peer)}

    def _dial(self, peer: str) -> None:
        self._dialers[peer] = self.loop.create_task(self._dial_loop(peer))

    async def _dial_loop(self, peer: str) -> None:
        settings = self.settings
        delay = settings.backoff_min
        failing = False
        try:
            while not self._closing:
                address = self._address_of(peer)
                if address is None:
                    await asyncio.sleep(settings.backoff_max)
                    continue
                try:
                    host, port = split_address(address)
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port, limit=_READ_SIZE * 4),
                        settings.connect_timeout)
                except (OSError, TimeoutError, ValueError) as exc:
                    if not failing:
                        logger.info("%s: cannot connect to %s at %s (%s); retrying",
                                    self.id, peer, address, exc or type(exc).__name__)
                        failing = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, settings.backoff_max)
                    continue
                if failing:
                    logger.info("%s: connected to %s at %s", self.id, peer, address)
                    failing = False
                link = _Link(self, reader, writer, peer)
                link.send(self.hello)
                self._register(link)
                started = self.loop.time()
                await link.run()
                if self.loop.time() - started > settings.backoff_max:
                    delay = settings.backoff_min  # it worked for a while: redial at once
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, settings.backoff_max)
        finally:
            if self._dialers.get(peer) is asyncio.current_task():
                del self._dialers[peer]

    async def _watch(self) -> None:
        """Keep the wanted peers dialed; ping quiet connections; close dead ones."""
        settings = self.settings
        tick = max(min(settings.idle_timeout, settings.frame_timeout) / 4, 0.01)
        ping_after = settings.idle_timeout / 3
        next_maintenance = 0.0
        while True:
            now = self.loop.time()
            if now >= next_maintenance:
                next_maintenance = now + settings.backoff_max
                self._maintain()
            for link in [*self._links.values(), *self._unidentified]:
                if link.partial_since is not None and (
                        now - link.partial_since > settings.frame_timeout):
                    link.close(f"a frame stayed incomplete for {settings.frame_timeout:g} s "
                               f"({link.decoder.buffered} bytes)", level=logging.WARNING)
                elif now - link.last_received > settings.idle_timeout:
                    level = logging.INFO if link.heard_hello else logging.WARNING
                    link.close(f"nothing received for {settings.idle_timeout:g} s", level=level)
                elif link.heard_hello and now - link.last_sent > ping_after:
                    link.send(_PING_FRAME)
            await asyncio.sleep(tick)

    def _maintain(self) -> None:
        wanted = self._wanted()
        for peer in wanted:
            if peer not in self._dialers:
                self._dial(peer)
        for peer in [p for p in self._dialers if p not in wanted]:
            self._dialers.pop(peer).cancel()
            link = self._links.get(peer)
            if link is not None:
                link.close("no longer a peer")
