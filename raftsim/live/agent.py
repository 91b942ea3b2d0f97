"""One live server in one process: its data directory, its TCP transport, its HTTP API.

Built the way the simulated cluster builds a server (``raftsim/sim/cluster.py``), with
the live world's parts: :class:`~raftsim.storage.file.FileStorage` instead of memory,
:class:`~raftsim.live.transport.TcpTransport` instead of the simulated network, the
event loop's monotonic clock instead of virtual time, and group commit on (the Readies of
one event-loop turn share one write and one fsync, and the commands submitted in it one
log entry).

The agent logs one line per change of (term, role, leader) to stderr. SIGTERM or SIGINT
stops it cleanly: the HTTP port closes, what group commit holds is written, sockets and
files close. With ``fsync="always"`` a SIGKILL loses nothing that was acknowledged: an
entry is acknowledged only after it is fsynced on a majority.

A server that cannot persist stops at once and the process exits with status 1 after one
log line naming the file, the operation and the errno (``fatal: cannot persist: fsync
/data/s1/wal-….log: [Errno 28] No space left on device``), as etcd and hashicorp/raft
panic: its memory is then ahead of its disk, and answering from it could lose
acknowledged writes. It also refuses to start on a data directory it cannot write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiohttp import web

from raftsim.api import MemberDirectory, build_app, serve_http
from raftsim.api.acl import Acl
from raftsim.api.exchange import close_local_http_server
from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.node import bootstrap_state
from raftsim.core.settings import DEFAULT_TRAILING_LOGS, NodeSettings
from raftsim.live.tls import TlsConfig, check_server_id
from raftsim.live.transport import LinkSettings, TcpTransport, split_address
from raftsim.runtime.collector import tune_for_live_server
from raftsim.runtime.server import Server
from raftsim.storage.base import StorageError
from raftsim.storage.file import FileStorage, StorageCorruptionError, probe_writable

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Live timing: real processes share CPUs and fsync, so leaders are given more slack than
#: in the simulator (hashicorp/raft's defaults are slower still).
LIVE_SETTINGS = NodeSettings(heartbeat_interval=0.1, election_timeout_min=1.0,
                             election_timeout_max=2.0)
#: Compact the log after this many applied entries (hashicorp/raft's SnapshotThreshold).
DEFAULT_SNAPSHOT_THRESHOLD = 8192


class PersistFailed(Exception):
    """The agent stopped because a save failed (already logged as one fatal line)."""


@dataclass(frozen=True)
class AgentConfig:
    server_id: str
    node_name: str
    #: ``host:port`` this server's RPC listens on; also its address in the configuration
    rpc: str
    #: ``host:port`` of the HTTP API
    http: str
    data_dir: Path
    #: the other founding servers: id -> RPC ``host:port``
    peers: dict[str, str] = field(default_factory=dict)
    #: with an empty data directory, start from the configuration {self} + peers
    bootstrap: bool = False
    acl_token: str | None = None
    fsync: Literal["always", "never"] = "always"
    snapshot_threshold: int = DEFAULT_SNAPSHOT_THRESHOLD
    #: entries a compaction keeps before its snapshot (hashicorp/raft's TrailingLogs)
    trailing_logs: int = DEFAULT_TRAILING_LOGS
    settings: NodeSettings = LIVE_SETTINGS
    links: LinkSettings = field(default_factory=LinkSettings)
    #: mutual TLS on RPC and TLS on HTTP (Nomad's ``tls { rpc = true, http = true }``)
    tls: TlsConfig | None = None
    #: allow RPC without TLS on an address other hosts can reach (see docs/live.md)
    insecure_rpc: bool = False

    def __post_init__(self) -> None:
        if not self.server_id:
            raise ValueError("the server id must not be empty")
        rpc_host, _ = split_address(self.rpc)
        split_address(self.http)
        if self.tls is not None:
            check_server_id(self.server_id)
        elif not self.insecure_rpc and not is_loopback(rpc_host):
            raise ValueError(
                f"refusing to listen for RPC on {self.rpc} without TLS: anyone who can reach "
                f"it could pose as a server and change or erase the cluster's data. Give "
                f"--ca-cert, --cert and --key (mutual TLS), listen on a loopback address, "
                f"or pass --insecure-rpc if the network is trusted")
        if self.server_id in self.peers:
            raise ValueError(f"--peer names this server's own id {self.server_id!r}")
        if self.snapshot_threshold < 0:
            raise ValueError("the snapshot threshold must be >= 0 (0: never compact)")
        if self.trailing_logs < 0:
            raise ValueError("the trailing logs must be >= 0")
        if self.fsync not in ("always", "never"):
            raise ValueError(f"fsync must be 'always' or 'never', not {self.fsync!r}")

    def bootstrap_configuration(self) -> Configuration:
        """Every founding server must write the same entry 1: servers sorted by id."""
        servers = {self.server_id: self.rpc, **self.peers}
        return Configuration(tuple(ServerInfo(sid, servers[sid]) for sid in sorted(servers)))


class StateLog:
    """The server's observer: one log line whenever (term, role, leader) changes, and
    one when a snapshot from the leader replaces the log."""

    def __init__(self) -> None:
        self.server: Server | None = None
        self._last: tuple[int, str, str | None] | None = None

    def __call__(self, server_id: str, term: int, kind: str, fields: dict[str, Any]) -> None:
        server = self.server
        node = server.node if server is not None else None
        if node is None:
            return
        if kind == "snapshot-installed":
            logger.info("%s: installed a snapshot at index %s from %s", server_id,
                        fields.get("index"), fields.get("source"))
        elif kind == "snapshot-refused":
            logger.warning("%s: refused a snapshot at index %s from %s: %s", server_id,
                           fields.get("index"), fields.get("source"), fields.get("problem"))
        state = (node.term, node.role.value, node.leader_id)
        if state != self._last:
            self._last = state
            logger.info("%s: term=%d role=%s leader=%s", server_id, state[0], state[1],
                        state[2] or "none")


class Agent:
    """Start with ``await agent.start()``, stop with ``await agent.stop()``."""

    def __init__(self, config: AgentConfig, *, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.storage: FileStorage | None = None
        self.transport: TcpTransport | None = None
        self.server: Server | None = None
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        #: the save error that stopped the server, if one did
        self.failure: Exception | None = None
        #: called once when a save failed (``serve`` stops the process on it)
        self.on_fatal: Callable[[], None] | None = None

    def _fatal(self, exc: Exception) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        logger.critical("%s: fatal: cannot persist: %s", self.config.server_id, exc)
        if self.on_fatal is not None:
            self.on_fatal()

    async def start(self) -> None:
        config = self.config
        try:
            probe_writable(config.data_dir)
        except StorageError as exc:
            raise StorageError(exc.operation, exc.path, exc.errno,
                               f"{exc.strerror} (the data directory {config.data_dir} "
                               "must be writable)") from exc
        storage = FileStorage(config.data_dir, fsync=config.fsync,
                              trailing_logs=config.trailing_logs)
        self.storage = storage
        state = storage.load()
        empty = (state.hard_state.term == 0 and not state.entries and state.snapshot is None)
        if empty and config.bootstrap:
            hard_state, entries = bootstrap_state(config.bootstrap_configuration())
            storage.save(hard_state, tuple(entries), None)
            logger.info("%s: bootstrapped %s with %s", config.server_id, config.data_dir,
                        ", ".join(sorted([config.server_id, *config.peers])))
        elif empty:
            logger.info("%s: empty data directory and no --bootstrap: waiting to be added",
                        config.server_id)
        transport = TcpTransport(config.server_id, config.node_name, loop=self.loop,
                                 peers=config.peers, settings=config.links, tls=config.tls)
        self.transport = transport
        state_log = StateLog()
        settings = dataclasses.replace(config.settings, trailing_logs=config.trailing_logs)
        server = Server(config.server_id, settings=settings, rng=random.Random(),
                        storage=storage, transport=transport, loop=self.loop,
                        observer=state_log, snapshot_threshold=config.snapshot_threshold,
                        group_commit=True, background_snapshots=True)
        state_log.server = server
        server.on_storage_failure = self._fatal
        self.server = server
        transport.follow(server, lambda: _member_ids(server), lambda peer: _address(server, peer))
        self.app = build_app(server, directory=MemberDirectory(transport.names),
                             acl=Acl(config.acl_token),
                             wall_offset=time.time() - self.loop.time())
        server.start()
        node = server.node
        if node is None:  # its first save failed
            raise PersistFailed(str(self.failure))
        logger.info("%s: started: last index %d, commit %d, snapshot %d; rpc %s, http %s",
                    config.server_id, node.log.last_index, node.commit_index,
                    node.log.snapshot_index, config.rpc, config.http)
        rpc_host, rpc_port = split_address(config.rpc)
        await transport.start(rpc_host, rpc_port)
        http_host, http_port = split_address(config.http)
        self._runner = await serve_http(
            self.app, http_host, http_port,
            ssl_context=config.tls.http_server_context() if config.tls is not None else None)

    async def stop(self) -> None:
        """Close the HTTP port, write what group commit holds, close sockets and files."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.app is not None:
            await close_local_http_server(self.app)
        if self.server is not None:
            self.server.finish()  # what group commit holds; a failure calls _fatal
        if self.transport is not None:
            await self.transport.close()
        if self.server is not None:
            self.server.crash()
        if self.storage is not None:
            self.storage.close()
        logger.info("%s: stopped", self.config.server_id)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (an address or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _member_ids(server: Server) -> list[str]:
    node = server.node
    return list(node.configuration.ids) if node is not None else []


def _address(server: Server, peer: str) -> str | None:
    node = server.node
    if node is None:
        return None
    info = node.configuration.get(peer) or node.committed_configuration[1].get(peer)
    return info.address if info is not None else None


def configure_logging(level: int = logging.INFO) -> None:
    """One line per record on stderr (every message starts with the server id)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


async def serve(config: AgentConfig) -> None:
    """Run an agent until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    agent = Agent(config, loop=loop)
    agent.on_fatal = stop.set
    logger.info("%s: event loop %s", config.server_id,
                "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio")
    try:
        await agent.start()
        await stop.wait()
        if agent.failure is None:
            logger.info("%s: stopping", config.server_id)
    finally:
        await agent.stop()
    if agent.failure is not None:
        raise PersistFailed(str(agent.failure))


#: set to ``asyncio`` to run live servers on asyncio's own event loop even where uvloop is
#: installed (to compare the two)
EVENT_LOOP_VARIABLE = "RAFTSIM_EVENT_LOOP"


def event_loop_name() -> str:
    """``uvloop`` where it is installed (a pyproject dependency on the platforms that
    have it) and not turned off with RAFTSIM_EVENT_LOOP=asyncio; else ``asyncio``."""
    if os.environ.get(EVENT_LOOP_VARIABLE, "uvloop") == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_live(main: Coroutine[Any, Any, T]) -> T:
    """Run a live process's main coroutine on the event loop ``event_loop_name`` says:
    uvloop runs the same asyncio code (transports, servers, timers, signal handlers)
    with its loop, sockets and callbacks in C (libuv), so each message and request
    costs less; without it asyncio's own loop runs it the same way. The process's
    garbage collector is tuned for a server first (``raftsim.runtime.collector``)."""
    tune_for_live_server()
    if event_loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def run_agent(config: AgentConfig) -> int:
    """The ``raftsim agent`` process: returns its exit code."""
    configure_logging()
    try:
        run_live(serve(config))
    except PersistFailed:
        return 1  # logged when it happened
    except StorageError as exc:
        logger.error("%s: cannot start: %s", config.server_id, exc)
        return 1
    except StorageCorruptionError as exc:
        logger.error("%s: cannot start: %s", config.server_id, exc)
        return 1
    except OSError as exc:
        logger.error("%s: cannot start: %s", config.server_id, exc)
        return 1
    return 0
