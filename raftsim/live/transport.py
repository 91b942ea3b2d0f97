"""TCP between live servers: one connection per pair of servers, msgpack-rpc frames on it.

Every server dials each server of its configuration (and each ``--peer``) that it has no
connection to, and redials with backoff when the connection drops; a server that is not
in any configuration yet (waiting to be added) only accepts. Of two servers, the one with
the larger id waits a moment (``backoff_min``) before it dials, so that at start-up the
smaller one's connection usually arrives first. A message for a peer with no connection is
dropped, as a lost message is something Raft already survives.

On the connection, both ways, the first frame is a hello, ``[2, "raftsim.hello",
[version, server id, node name]]`` (the node names fill the member directory, Nomad's
Serf stand-in); then Raft messages as notifications and msgpack-rpc requests and
responses. A response is matched to its request by the server with the peer *and the
connection* it came on (see ``Server.call``), and a request is answered on the
connection it arrived on, so an answer never reaches another connection or another
incarnation of the asking process.

Who a peer is: with TLS (:mod:`raftsim.live.tls`) its certificate says it, and a hello
claiming another id is refused; without TLS the hello says it, and anyone who can reach
the port can claim any id that has no live connection (see docs/live.md: TLS is what makes
a cluster safe beyond one machine). A peer is accepted only if it is in this server's
latest configuration or among its ``--peer`` servers (a server in no configuration yet
accepts any peer: the members must be able to reach it to add it).

One connection per peer identity. When a second connection for an identity that already
has one arrives:

- with TLS, the identity is proven on both, so the older one can only be stale or the
  other half of a simultaneous dial: if both were dialed by the same server, the newer
  replaces the older (that server restarted or redialed); otherwise the one dialed by the
  smaller id of the pair is kept, on both ends alike;
- without TLS, a connection that has heard its peer's hello is kept and the newcomer is
  refused, so a second connection claiming a connected id cannot take over its link (the
  price: a peer that restarts on a host that vanished without closing its sockets is
  refused until ``idle_timeout`` ends the old connection). Before its hello is heard, our
  own dialed connection yields to the pair rule above.

Everything that arrives goes through a :class:`~raftsim.wire.FrameDecoder` with the
transport's limits (``max_frame_bytes`` per frame; a few kilobytes until the hello), and a
Raft message is decoded and checked (fields, types, that it comes from the peer the
connection belongs to) before the server sees it. Anything else — bytes that are no
frame, a frame over a limit, a message with the wrong types, a frame that stays
incomplete for ``frame_timeout`` (a slow-loris), a connection that says nothing for
``idle_timeout`` — closes that connection only, with one log line. Idle connections stay
alive with small ping frames, so silence means the peer or the path is gone (a partition
leaves TCP connections open but mute). A process that was stopped (SIGSTOP) and resumes
reads what arrived meanwhile before it judges any connection idle.

A message is written to its connection at once, except while the transport gathers
(:meth:`TcpTransport.gather`, for a server's flush): then what goes to each peer is
written with one write when the flush releases it, in the order it was sent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from raftsim.core.messages import Message
from raftsim.live.tls import PeerIdentityError, TlsConfig, peer_identity
from raftsim.wire import (
    MAX_FRAME_BYTES,
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
#: it says who it is, a connection does not get the full frame limit
PRE_HELLO_BYTES: Final = 64 * 1024
#: the largest frame a peer may send after its hello (the one limit for server-to-server
#: frames: an AppendEntries batch and a snapshot chunk must fit in it; the wire's limit)
MAX_PEER_FRAME_BYTES: Final = MAX_FRAME_BYTES
#: connections accepted but not yet identified by a hello, at most
MAX_UNIDENTIFIED: Final = 64
#: identified connections (one per peer), at most
MAX_PEERS: Final = 256
_READ_SIZE: Final = 1 << 18
#: after the process was stopped, what it sends waits this long (seconds), so that what
#: arrived meanwhile is read first (see TcpTransport._holding)
_RESUME_HOLD: Final = 0.01
_PING_FRAME: Final = encode_frame(Notification(PING, []))


class _DirectReader(asyncio.StreamReader):
    """A connection's stream reader that hands each chunk to its link as it arrives,
    inside the protocol's ``data_received``, instead of buffering it and waking the
    link's reading task: that wake-up is one more event-loop turn on every message's
    way (a follower's AppendEntries, the leader's acknowledgement: two per write at one
    client connection). Until a link is attached, and while anything is still buffered,
    it buffers as any stream reader does and the link's ``run`` reads that first, so
    the order of the bytes is kept. EOF and errors still reach ``run`` as before."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_READ_SIZE * 4, loop=loop)
        self.link: _Link | None = None

    def feed_data(self, data: bytes) -> None:  # type: ignore[override]
        link = self.link
        if link is None or getattr(self, "_buffer", None) or self.at_eof():
            super().feed_data(data)
        elif not link.closed:
            link._take(bytes(data))


def _stream_protocol(loop: asyncio.AbstractEventLoop,
                     connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                         Any] | None = None) -> asyncio.StreamReaderProtocol:
    """What ``asyncio.start_server`` / ``open_connection`` make, with a _DirectReader."""
    return asyncio.StreamReaderProtocol(_DirectReader(loop), connected, loop=loop)


async def _open_connection(loop: asyncio.AbstractEventLoop, host: str, port: int,
                           **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` with a _DirectReader."""
    reader = _DirectReader(loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, host, port, **kwargs)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class Receiver(Protocol):
    """Where a transport delivers what arrives (a runtime Server). ``connection`` is the
    connection a frame came on: answer a request on it, match a response by it."""

    def receive_message(self, source: str, message: Message) -> None: ...

    def receive_frame(self, source: str, frame: Frame, connection: object = None) -> None: ...

    def connection_closed(self, connection: object) -> None: ...


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
    #: the largest frame accepted from a peer (after its hello)
    max_frame_bytes: int = MAX_PEER_FRAME_BYTES

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "frame_timeout", "connect_timeout", "backoff_min",
                     "backoff_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must be at least backoff_min")
        if self.max_send_buffer < 1:
            raise ValueError("max_send_buffer must be positive")
        if self.max_frame_bytes < PRE_HELLO_BYTES:
            raise ValueError(f"max_frame_bytes must be at least {PRE_HELLO_BYTES}")


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
    """One TCP connection to a peer: reads and checks what arrives, writes what is sent.
    The runtime server holds it as the connection a request came on or a call went on."""

    def __init__(self, transport: TcpTransport, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, peer: str | None, *, dialed: bool,
                 certified: str | None = None) -> None:
        self.transport = transport
        self.reader = reader
        self.writer = writer
        #: the peer's id: known when we dialed, learned from the hello when we accepted
        self.peer = peer
        #: True if this server dialed it, False if it accepted it
        self.dialed = dialed
        #: the server id the peer's TLS certificate names (None without TLS)
        self.certified = certified
        self.number = next(transport._numbers)
        if isinstance(reader, _DirectReader):
            # from now on what arrives is taken as it arrives (not before __init__ ends:
            # nothing arrives while it runs)
            reader.link = self
        self.heard_hello = False
        peername = writer.get_extra_info("peername")
        self.remote = (f"{peername[0]}:{peername[1]}"
                       if isinstance(peername, tuple) and len(peername) >= 2 else "?")
        self.decoder = FrameDecoder(max_buffer_bytes=transport.settings.max_frame_bytes)
        self.received = 0
        now = transport.loop.time()
        self.last_received = now
        self.last_sent = now
        self.partial_since: float | None = None
        self.closed = False
        #: frames sent while the transport gathers (see TcpTransport.gather), in order
        self.gathered: list[bytes] = []

    def __repr__(self) -> str:
        return f"<connection #{self.number} {self.describe()}>"

    def describe(self) -> str:
        if self.peer is not None and self.heard_hello:
            return f"with {self.peer} ({self.remote})"
        return f"from {self.remote}"

    def dialer(self) -> str | None:
        """The id of the server that dialed this connection."""
        return self.transport.id if self.dialed else self.peer

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.transport._holding(self, data):
            return
        transport = self.writer.transport
        if transport.is_closing():
            return  # the peer hung up; run() is about to notice
        if transport.get_write_buffer_size() > self.transport.settings.max_send_buffer:
            self.transport.dropped += 1
            return
        if self.transport._gathering:
            if not self.gathered:
                self.transport._gathered_links.append(self)
            self.gathered.append(data)
            return
        # Straight to the socket: group commit already makes few, large messages, and an
        # answer written now leaves before the server goes on to apply entries.
        self.writer.write(data)
        self.last_sent = self.transport.loop.time()

    def write_gathered(self) -> None:
        """Write what was gathered for this peer, with one write (one system call)."""
        frames, self.gathered = self.gathered, []
        if self.closed or not frames or self.writer.transport.is_closing():
            return
        self.writer.write(frames[0] if len(frames) == 1 else b"".join(frames))
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
        reader = self.reader
        try:
            while not self.closed:
                try:
                    data = await reader.read(_READ_SIZE)
                except OSError as exc:
                    # A write that failed (the peer hung up while this process was
                    # stopped) fails the reader too, before what it buffered was read:
                    # an answer may be in there. Take it first.
                    buffered = bytes(getattr(reader, "_buffer", b""))
                    if buffered and not self._take(buffered):
                        return
                    self.close(f"read failed: {exc}")
                    return
                if not data:
                    self.close("the peer closed the connection")
                    return
                if not self._take(data):
                    return
        finally:
            if not self.closed:  # cancelled
                self.close("shutting down")

    def _take(self, data: bytes) -> bool:
        """Decode and hand on what ``data`` completes; False once the link is closed."""
        now = self.transport.loop.time()
        self.last_received = now
        self.received += len(data)
        decoder = self.decoder
        try:
            frames = decoder.feed(data)
        except FrameError as exc:
            self.close(f"bad frame: {exc}", level=logging.WARNING)
            return False
        if decoder.buffered:
            if self.partial_since is None:
                self.partial_since = now
        else:
            self.partial_since = None
        for frame in frames:
            if not self._dispatch(frame):
                return False
        if not self.heard_hello and self.received > PRE_HELLO_BYTES:
            self.close(f"{self.received} bytes and no hello", level=logging.WARNING)
            return False
        return not self.closed

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
            receiver.receive_frame(self.peer, frame, self)
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
        if self.certified is not None and peer != self.certified:
            self.close(f"the hello says {peer!r} but the peer's certificate names "
                       f"{self.certified!r}", level=logging.WARNING)
            return False
        if self.peer is not None and peer != self.peer:
            self.close(f"dialed {self.peer!r} but {peer!r} answered", level=logging.WARNING)
            return False
        if self.peer is None:  # we accepted: may this peer connect, and on this link?
            refusal = transport._refusal(peer)
            if refusal is not None:
                self.close(refusal, level=logging.WARNING)
                return False
            self.peer = peer
            if not transport._register(self):
                return False
            self.heard_hello = True
            self.send(transport.hello)
        else:
            self.heard_hello = True
        if name:
            transport.names[peer] = name
        return True


class TcpTransport:
    """The live world's :class:`~raftsim.runtime.server.Transport`.

    ``peers`` (id -> ``host:port``) are dialed from the start; ``members`` (set with
    :meth:`follow`) names more servers to stay connected to, and ``resolve`` their
    addresses (both from the server's latest configuration). ``names`` maps server ids
    to node names, this server's own and those learned from hellos. With ``tls``, every
    connection is mutual TLS and a peer's id is the one its certificate names.
    """

    def __init__(self, server_id: str, node_name: str = "", *,
                 loop: asyncio.AbstractEventLoop, peers: Mapping[str, str] | None = None,
                 settings: LinkSettings | None = None, tls: TlsConfig | None = None) -> None:
        if not server_id or len(server_id) > MAX_NAME_LEN:
            raise ValueError(f"a server id must be 1 to {MAX_NAME_LEN} characters")
        self.id = server_id
        self.loop = loop
        self.settings = settings or LinkSettings()
        self.peers: dict[str, str] = dict(peers or {})
        for address in self.peers.values():
            split_address(address)
        self.tls = tls
        self._server_context: ssl.SSLContext | None = None
        self._client_context: ssl.SSLContext | None = None
        if tls is not None:
            self._server_context = tls.rpc_server_context()
            self._client_context = tls.rpc_client_context()
        self.names: dict[str, str] = {server_id: node_name} if node_name else {}
        self.hello = _hello_frame(server_id, node_name)
        self.receiver: Receiver | None = None
        self.members: Callable[[], Iterable[str]] = lambda: ()
        self.resolve: Callable[[str], str | None] = lambda peer: None
        #: messages dropped because a peer's send buffer was full
        self.dropped = 0
        self._numbers = itertools.count(1)
        self._links: dict[str, _Link] = {}
        self._unidentified: set[_Link] = set()
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: asyncio runs each accepted connection in a task of its own; close() lets these
        #: end by closing their connections (Python 3.11's streams log cancelled ones)
        self._accepting: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Server | None = None
        self._closing = False
        #: when the watch last ran, and how late it may run before the process counts as
        #: having been stopped (set by _watch)
        self._watched_at = loop.time()
        self._stalled_after = float("inf")
        self._held: list[tuple[_Link, bytes]] = []
        #: while True, sends are gathered per peer and written by release()
        self._gathering = False
        self._gathered_links: list[_Link] = []

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
        loop = self.loop
        self._listener = await loop.create_server(
            lambda: _stream_protocol(loop, self._accept), host, port,
            ssl=self._server_context,
            ssl_handshake_timeout=self.settings.connect_timeout if self.tls else None)
        self._spawn(self._watch())

    @property
    def port(self) -> int:
        assert self._listener is not None and self._listener.sockets
        return int(self._listener.sockets[0].getsockname()[1])

    def connected(self) -> list[str]:
        """Peers with an open connection whose hello was heard."""
        return sorted(p for p, link in self._links.items() if link.heard_hello)

    def connection_to(self, target: str) -> _Link | None:
        """The connection a request to ``target`` goes on now (None: there is none, or
        the peer has not said hello on it yet)."""
        link = self._links.get(target)
        return link if link is not None and link.heard_hello and not link.closed else None

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
        elif target not in self._dialers and not self._closing and target != self.id:
            self._dial(target)  # a server we were not yet connected to (just added)

    def gather(self) -> None:
        """Until :meth:`release`, gather what is sent to each peer instead of writing it
        at once. A server's flush sends many messages in one go (a leader proposing one
        entry per command sends an AppendEntries per 64 entries to each follower; a
        follower answers each): one write per peer instead of one per message saves a
        system call, and on loopback the kernel's delivery to the peer, per message."""
        self._gathering = True

    def release(self) -> None:
        """Write what was gathered since :meth:`gather`, one write per peer, in order."""
        self._gathering = False
        links, self._gathered_links = self._gathered_links, []
        for link in links:
            link.write_gathered()

    def _holding(self, link: _Link, data: bytes) -> bool:
        """Hold ``data`` back (True) if this process has just resumed from a stop.

        A resumed process runs its overdue timers (an election timeout, say) before the
        event loop has read what its peers sent meanwhile. A write to a peer that hung up
        meanwhile fails, and asyncio then drops the connection with what was still unread
        in the kernel (an answer to a forwarded write, say). Sends wait a moment on a
        timer, and the loop reads the sockets before it runs timers."""
        if not self._held and self.loop.time() - self._watched_at <= self._stalled_after:
            return False
        if not self._held:
            self.loop.call_later(_RESUME_HOLD, self._release)
        self._held.append((link, data))
        return True

    def _release(self) -> None:
        held, self._held = self._held, []
        self._watched_at = self.loop.time()
        for link, data in held:
            link.send(data)

    # ------------------------------------------------------------------ connections

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _certified_id(self, writer: asyncio.StreamWriter) -> str:
        """The server id the peer's (verified) certificate names; PeerIdentityError."""
        assert self.tls is not None
        ssl_object = writer.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        return peer_identity(certificate, self.tls.region)

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        peername = writer.get_extra_info("peername")
        if len(self._unidentified) >= MAX_UNIDENTIFIED:
            logger.warning("%s: refusing an RPC connection from %s: %d connections have not "
                           "said hello yet", self.id, peername, len(self._unidentified))
            writer.transport.abort()
            return
        certified = None
        if self.tls is not None:
            try:
                certified = self._certified_id(writer)
            except PeerIdentityError as exc:
                logger.warning("%s: refusing an RPC connection from %s: %s", self.id,
                               peername, exc)
                writer.transport.abort()
                return
            refusal = self._refusal(certified)
            if refusal is not None:
                logger.warning("%s: refusing an RPC connection from %s: %s", self.id,
                               peername, refusal)
                writer.transport.abort()
                return
        link = _Link(self, reader, writer, None, dialed=False, certified=certified)
        self._unidentified.add(link)
        task = asyncio.current_task()
        if task is not None:
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)
        await link.run()

    def _refusal(self, peer: str) -> str | None:
        """Why ``peer`` may not connect to this server (None: it may)."""
        if peer == self.id:
            return f"the peer says it is this server ({peer!r})"
        known = set(self.peers)
        known.update(self.members())
        known.discard(self.id)
        if known and peer not in known:
            return f"{peer!r} is not in this server's configuration"
        if peer not in self._links and len(self._links) >= MAX_PEERS:
            return f"{len(self._links)} peers are connected already"
        return None

    def _keeps(self, old: _Link, new: _Link) -> bool:
        """Whether ``old``, a live connection to ``new``'s peer, stays (see the module
        docstring); False: ``new`` replaces it."""
        if self.tls is None and old.heard_hello:
            return True
        old_dialer, new_dialer = old.dialer(), new.dialer()
        if old_dialer == new_dialer:
            return False
        assert new.peer is not None
        return old_dialer == min(self.id, new.peer)

    def _register(self, link: _Link) -> bool:
        """Make ``link`` the connection to its peer, unless the one there is kept (then
        ``link`` is closed and False returned)."""
        assert link.peer is not None
        if self._closing:  # a dial that finished as close() began
            link.close("shutting down")
            return False
        old = self._links.get(link.peer)
        if old is not None and old is not link and not old.closed and self._keeps(old, link):
            link.close(f"{link.peer} is connected already (connection {old.describe()})",
                       level=logging.WARNING if self.tls is None and not link.dialed
                       else logging.INFO)
            return False
        self._unidentified.discard(link)
        self._links[link.peer] = link
        if old is not None and old is not link:
            old.close("replaced by a newer connection")
        return True

    def _forget(self, link: _Link) -> None:
        self._unidentified.discard(link)
        if link.peer is not None and self._links.get(link.peer) is link:
            del self._links[link.peer]
        if self.receiver is not None:
            self.receiver.connection_closed(link)

    def _address_of(self, peer: str) -> str | None:
        return self.resolve(peer) or self.peers.get(peer)

    def _wanted(self) -> set[str]:
        wanted = set(self.peers)
        wanted.update(self.members())
        wanted.discard(self.id)
        return wanted

    def _dial(self, peer: str) -> None:
        self._dialers[peer] = self.loop.create_task(self._dial_loop(peer))

    async def _connect(self, peer: str, address: str) -> _Link:
        """Open a connection to ``peer`` at ``address``; with TLS, check that the
        certificate names ``peer``. OSError, TimeoutError or ValueError if it fails."""
        settings = self.settings
        host, port = split_address(address)
        if self.tls is None:
            reader, writer = await asyncio.wait_for(
                _open_connection(self.loop, host, port), settings.connect_timeout)
            return _Link(self, reader, writer, peer, dialed=True)
        reader, writer = await asyncio.wait_for(
            _open_connection(self.loop, host, port, ssl=self._client_context,
                             server_hostname=self.tls.rpc_server_hostname(),
                             ssl_handshake_timeout=settings.connect_timeout),
            settings.connect_timeout * 2)
        try:
            certified = self._certified_id(writer)
        except PeerIdentityError as exc:
            writer.transport.abort()
            raise ValueError(str(exc)) from None
        if certified != peer:
            writer.transport.abort()
            raise ValueError(f"the certificate there names {certified!r}")
        return _Link(self, reader, writer, peer, dialed=True, certified=certified)

    async def _dial_loop(self, peer: str) -> None:
        settings = self.settings
        delay = settings.backoff_min
        failing = False
        try:
            while not self._closing:
                address = self._address_of(peer)
                current = self._links.get(peer)
                if address is None or (current is not None and not current.closed):
                    await asyncio.sleep(settings.backoff_max)
                    continue
                if self.id > peer:
                    # let the smaller id's dial arrive first (one connection, not two)
                    await asyncio.sleep(settings.backoff_min)
                    if peer in self._links or self._closing:
                        continue
                try:
                    link = await self._connect(peer, address)
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
                if self._closing:  # Python 3.11's wait_for can swallow the cancellation
                    link.close("shutting down")
                    break
                if not self._register(link):
                    await asyncio.sleep(delay)
                    continue
                link.send(self.hello)
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
        #: a tick this late means the process was not running (below idle_timeout)
        stalled = 2 * tick + min(0.5, settings.idle_timeout / 4)
        self._stalled_after = stalled
        last_tick = self.loop.time()
        while True:
            now = self.loop.time()
            if now - last_tick > stalled:
                # The process was stopped (SIGSTOP, a debugger, a VM pause): what the
                # peers sent meanwhile waits in the sockets. Read it before judging, and
                # send nothing this round: a ping to a peer that hung up meanwhile would
                # draw a reset, and the kernel would discard what is still unread (an
                # answer to a forwarded write). _watched_at stays old, so other sends
                # are held too (_holding) until the loop has read the sockets.
                for link in [*self._links.values(), *self._unidentified]:
                    link.last_received = max(link.last_received, now)
                    link.last_sent = max(link.last_sent, now)
                    if link.partial_since is not None:
                        link.partial_since = now
                last_tick = now
                await asyncio.sleep(tick)
                continue
            self._watched_at = now
            last_tick = now
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
