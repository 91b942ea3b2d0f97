"""A simulated cluster: N servers, one virtual-time loop, one faulty network, one seed.

Everything random derives from the seed by name (``random.Random(f"{seed}:...")`` seeds
through SHA-512, not ``hash()``), so the same seed and the same calls give the same trace.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.node import bootstrap_state
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from raftsim.runtime.server import Server
from raftsim.sim.clock import ClockSkew, ServerClock, draw_skew
from raftsim.sim.loop import VirtualTimeLoop, process_context, run_as_process
from raftsim.sim.network import SimNetwork
from raftsim.sim.trace import TraceRecorder
from raftsim.storage.base import Storage, StorageError
from raftsim.storage.crashdisk import CrashDiskStorage
from raftsim.storage.file import StorageCorruptionError
from raftsim.storage.memory import MemoryStorage

T = TypeVar("T")


def default_ids(count: int) -> list[str]:
    return [f"s{k}" for k in range(1, count + 1)]


def rpc_address(position: int) -> str:
    """Server k's RPC address, as in a live cluster on loopback (127.0.0.k:4647)."""
    return f"127.0.0.{position}:4647"


class _SimTransport:
    """A server's way onto the simulated network: ``send(target, data, meta=None)``."""

    def __init__(self, network: SimNetwork, source: str) -> None:
        # the network's own send with the source filled in: one call per message, the
        # most frequent call of a simulation, without a method of ours around it
        self.send: Callable[..., None] = functools.partial(network.send, source)


class Cluster:
    """Build, drive and fault a simulated cluster. Close it when done."""

    def __init__(
        self,
        servers: int | Sequence[str] = 5,
        *,
        seed: int = 0,
        settings: NodeSettings | None = None,
        nonvoters: Sequence[str] = (),
        node_names: dict[str, str] | None = None,
        latency: tuple[float, float] = (0.001, 0.005),
        loss: float = 0.0,
        duplication: float = 0.0,
        reorder: float = 0.0,
        trace: bool = True,
        trace_messages: bool = True,
        snapshot_threshold: int = 0,
        loop: asyncio.AbstractEventLoop | None = None,
        disk: str = "memory",
        sync_every: int = 1,
        disk_fault_rate: float = 0.0,
        ack_after_failed_save: bool = False,
        group_commit: bool = False,
        clock_drift: float = 0.0,
        clock_skews: dict[str, ClockSkew] | None = None,
    ) -> None:
        """``loop``: run on this event loop instead of a new virtual-time one, e.g. an
        ordinary real-time loop (a stand-in cluster that a real HTTP client talks to).
        Such a loop is driven by its owner (``run_for`` and ``run_until`` need virtual
        time); it must not be running when the cluster is closed, and ``close`` closes
        it.

        ``disk``: ``"memory"`` (a crash loses nothing) or ``"crashdisk"``: a disk with a
        write cache (``CrashDiskStorage``) that syncs every ``sync_every``-th write, and
        a crash loses (or tears) what was written but not yet synced.

        ``disk_fault_rate`` (crash disk only): the probability that a save fails (an
        open, write or fsync error drawn from each disk's seeded rng); :meth:`fail_disk`
        fails one on command. A server whose save fails stops (fail-stop) until
        :meth:`restart`. ``ack_after_failed_save`` is a bug switch for the checker's
        tests: servers swallow the error and carry on.

        ``group_commit``: the servers batch as a live server does (one storage write per
        event-loop turn, committed entries applied in slices).

        ``clock_drift``: each server's clock runs at a rate drawn from ``1 ± clock_drift``
        and reads with an offset, both from the seed (``raftsim.sim.clock``); 0 gives
        every server the loop's own clock. ``clock_skews`` sets chosen servers' skews
        outright (the others keep the loop's clock, or draw theirs)."""
        if disk not in ("memory", "crashdisk"):
            raise ValueError(f"disk must be 'memory' or 'crashdisk', got {disk!r}")
        if sync_every < 1:
            raise ValueError(f"sync_every must be at least 1, got {sync_every}")
        if not 0.0 <= disk_fault_rate <= 1.0:
            raise ValueError(f"disk_fault_rate must be between 0 and 1, got {disk_fault_rate}")
        if disk_fault_rate and disk != "crashdisk":
            raise ValueError("disk_fault_rate needs disk='crashdisk' (a memory disk never "
                             "fails)")
        if not 0.0 <= clock_drift < 1.0:
            raise ValueError(f"clock_drift must be at least 0 and below 1, got {clock_drift}")
        self.disk = disk
        self.sync_every = sync_every
        self.disk_fault_rate = disk_fault_rate
        self.ack_after_failed_save = ack_after_failed_save
        self.group_commit = group_commit
        ids = self._validate(servers, nonvoters, latency, loss, duplication, reorder,
                             snapshot_threshold)
        self.seed = seed
        self.settings = settings or NodeSettings()
        self.ids = ids
        self.addresses = {sid: rpc_address(k) for k, sid in enumerate(ids, start=1)}
        self.node_names = {sid: f"{sid}.global" for sid in ids}
        self.node_names.update(node_names or {})
        self.snapshot_threshold = snapshot_threshold
        self.clock_drift = clock_drift
        self.clock_skews: dict[str, ClockSkew] = {}
        if clock_drift:
            self.clock_skews = {sid: draw_skew(seed, sid, clock_drift) for sid in ids}
        self.clock_skews.update(clock_skews or {})
        self.loop: asyncio.AbstractEventLoop = loop if loop is not None else VirtualTimeLoop()
        self.recorder: TraceRecorder | None = None
        if trace:
            self.recorder = TraceRecorder(self.loop.time, messages=trace_messages)
        try:
            self.network = SimNetwork(self.loop, random.Random(f"{seed}:network"),
                                      latency=latency, loss=loss, duplication=duplication,
                                      reorder=reorder, observer=self.recorder)
        except ValueError:
            self.loop.close()
            raise
        configuration = Configuration(tuple(
            ServerInfo(sid, self.addresses[sid], sid not in set(nonvoters)) for sid in ids))
        self.servers: dict[str, Server] = {}
        for sid in ids:
            storage = self._new_storage(sid)
            hard_state, entries = bootstrap_state(configuration)
            storage.save(hard_state, tuple(entries), None)
            if isinstance(storage, CrashDiskStorage):
                storage.fault_rate = disk_fault_rate  # the bootstrap write never fails
            self._make_server(sid, storage)
        for sid in ids:
            run_as_process(sid, self.servers[sid].start)

    @staticmethod
    def _validate(servers: int | Sequence[str], nonvoters: Sequence[str],
                  latency: tuple[float, float], loss: float, duplication: float,
                  reorder: float, snapshot_threshold: int) -> list[str]:
        if isinstance(servers, int):
            if isinstance(servers, bool) or servers < 1:
                raise ValueError(f"servers must be at least 1, got {servers}")
            ids = default_ids(servers)
        else:
            ids = [str(s) for s in servers]
            if not ids:
                raise ValueError("servers must name at least one server")
            dupes = sorted({s for s in ids if ids.count(s) > 1})
            if dupes:
                raise ValueError(f"servers has duplicate ids: {', '.join(dupes)}")
            if any(not s for s in ids):
                raise ValueError("servers has an empty id")
        unknown = [n for n in nonvoters if n not in ids]
        if unknown:
            raise ValueError(f"nonvoters names unknown servers: {', '.join(unknown)}")
        if len(set(nonvoters)) >= len(ids):
            raise ValueError("nonvoters must leave at least one voter")
        lo, hi = latency
        if lo < 0 or hi < 0:
            raise ValueError(f"latency must not be negative, got {latency}")
        if hi < lo:
            raise ValueError(f"latency must be (min, max) with min <= max, got {latency}")
        for name, value in (("loss", loss), ("duplication", duplication),
                            ("reorder", reorder)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if snapshot_threshold < 0:
            raise ValueError(f"snapshot_threshold must be >= 0, got {snapshot_threshold}")
        return ids

    def _new_storage(self, sid: str) -> Storage:
        trailing = self.settings.trailing_logs
        if self.disk == "crashdisk":
            return CrashDiskStorage(random.Random(f"{self.seed}:disk:{sid}"),
                                    sync_every=self.sync_every, trailing_logs=trailing,
                                    name=sid)
        return MemoryStorage(trailing_logs=trailing)

    def _make_server(self, sid: str, storage: Storage) -> Server:
        recorder = self.recorder
        server = Server(
            sid,
            settings=self.settings,
            rng=random.Random(f"{self.seed}:server:{sid}"),
            storage=storage,
            transport=_SimTransport(self.network, sid),
            loop=self._clock_of(sid),
            observer=recorder.record if recorder is not None else None,
            snapshot_threshold=self.snapshot_threshold,
            ack_after_failed_save=self.ack_after_failed_save,
            group_commit=self.group_commit,
        )
        # a server stopped by a failed save is a process that exited: its mail is lost
        server.on_storage_failure = lambda exc: self.network.detach(sid)
        if isinstance(storage, CrashDiskStorage):
            disk = storage
            server.disk_seconds = lambda: disk.last_save_seconds
        self.servers[sid] = server
        self.network.attach(sid, self._receiver(sid, server))
        return server

    def _clock_of(self, sid: str) -> asyncio.AbstractEventLoop:
        """The loop as ``sid`` sees it: with its own clock when clocks drift."""
        skew = self.clock_skews.get(sid)
        if skew is None and self.clock_drift:
            skew = self.clock_skews[sid] = draw_skew(self.seed, sid, self.clock_drift)
        if skew is None:
            return self.loop
        return ServerClock(self.loop, skew)  # type: ignore[return-value]

    def _receiver(self, sid: str, server: Server) -> Callable[[str, bytes], None]:
        """What the network hands ``sid``'s frames to: ``server.receive``, run as
        ``sid``'s process (one context for all of them, entered per frame)."""
        run: Callable[..., None] = process_context(sid).run
        return functools.partial(run, server.receive)

    def in_process(self, sid: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a task of ``sid``'s process: it is frozen while ``sid`` is
        paused, as the handling of a request by a SIGSTOPped server would be."""
        return run_as_process(sid, self.loop.create_task, coro)

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> float:
        return self.loop.time()

    @property
    def virtual_loop(self) -> VirtualTimeLoop:
        """The virtual-time loop (an error for a cluster built on a real-time loop)."""
        if not isinstance(self.loop, VirtualTimeLoop):
            raise RuntimeError("this cluster runs on a real-time loop; run_for and "
                               "run_until need virtual time")
        return self.loop

    def run_for(self, seconds: float) -> None:
        self.virtual_loop.run_for(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to completion in virtual time (the servers keep running)."""
        return self.loop.run_until_complete(coro)

    def run_until(self, predicate: Callable[[], bool], timeout: float,
                  step: float = 0.01) -> bool:
        """Advance time in small steps until ``predicate()`` holds; False on timeout."""
        deadline = self.now + timeout
        while not predicate():
            if self.now >= deadline:
                return False
            self.run_for(min(step, deadline - self.now))
        return True

    # ------------------------------------------------------------------ inspection

    def leader(self) -> str | None:
        """The running leader with the highest term, if any."""
        best: tuple[int, str] | None = None
        for sid in self.ids:
            server = self.servers[sid]
            node = server.node
            if node is not None and node.role is Role.LEADER and not server.paused:
                if best is None or node.term > best[0]:
                    best = (node.term, sid)
        return best[1] if best else None

    def wait_for_leader(self, timeout: float = 10.0) -> str:
        if not self.run_until(lambda: self.leader() is not None, timeout):
            raise TimeoutError(f"no leader elected within {timeout} virtual seconds")
        leader = self.leader()
        assert leader is not None
        return leader

    def running(self) -> list[str]:
        return [sid for sid in self.ids if self.servers[sid].running]

    # ------------------------------------------------------------------ faults

    def _fault(self, kind: str, **fields: Any) -> None:
        if self.recorder is not None:
            self.recorder.record(None, 0, "fault", {"fault": kind, **fields})

    def _server(self, sid: str) -> Server:
        if sid not in self.servers:
            raise ValueError(f"unknown server {sid!r}; servers are {', '.join(self.ids)}")
        return self.servers[sid]

    def crash(self, sid: str) -> None:
        server = self._server(sid)
        self._fault("crash", target=sid)
        self._thaw(sid)  # a killed process's held work runs into a server that is gone
        server.crash()
        self.network.detach(sid)
        if isinstance(server.storage, CrashDiskStorage):
            lost = server.storage.crash()
            if lost:
                self._fault("disk-lost", target=sid, entries=lost)

    def fail_disk(self, sid: str, operation: str = "write", *, error: int | None = None) -> None:
        """Make ``sid``'s next save fail at ``operation`` (open, write or fsync; errno
        EMFILE, ENOSPC, EIO unless ``error`` says otherwise): the server stops at once
        (a ``storage-failure`` record) and stays down until :meth:`restart`."""
        storage = self._disk(sid, "fail_disk")
        storage.fail_next(operation, error=error)
        self._fault("disk-fault", target=sid, operation=operation)

    def torn_write(self, sid: str) -> None:
        """The power fails while ``sid`` writes its next log records: a prefix of them
        reaches the disk, the last torn, and the server dies (recovery drops the torn
        record, which no durable commit index covers)."""
        self.fail_disk(sid, "torn")

    def corrupt_disk(self, sid: str) -> int | None:
        """A latent bad sector: ``sid``'s newest committed log record on disk will
        fail its checksum when read back. The running server does not notice; when it
        restarts it refuses to (the record is committed) and stays down. Returns the
        index damaged (None: ``sid`` has no committed record on its disk)."""
        index = self._disk(sid, "corrupt_disk").corrupt()
        self._fault("disk-corrupt", target=sid, index=index)
        return index

    def slow_disk(self, sid: str, seconds: float) -> None:
        """Every save of ``sid`` takes ``seconds`` of virtual time from now on (0: back
        to an instant disk): what the server does after a save waits for it."""
        if not 0.0 <= seconds <= 60.0:
            raise ValueError(f"a save takes from 0 to 60 seconds, got {seconds:g}")
        self._disk(sid, "slow_disk").save_seconds = seconds
        self._fault("slow-disk", target=sid, seconds=seconds)

    def _disk(self, sid: str, what: str) -> CrashDiskStorage:
        storage = self._server(sid).storage
        if not isinstance(storage, CrashDiskStorage):
            raise ValueError(f"{what} needs a cluster built with disk='crashdisk'")
        return storage

    def restart(self, sid: str) -> None:
        """Start ``sid`` again from its disk. A disk that recovery finds damaged (a
        committed record failing its checksum) makes the server refuse to start: a
        ``refused-start`` record, and it stays down."""
        server = self._server(sid)
        if server.running:
            return
        self._fault("restart", target=sid)
        self.network.attach(sid, self._receiver(sid, server))
        try:
            run_as_process(sid, server.start)
        except (StorageCorruptionError, StorageError) as exc:
            self.network.detach(sid)
            if self.recorder is not None:
                self.recorder.record(sid, 0, "refused-start", {"error": str(exc)})

    def pause(self, sid: str) -> None:
        """SIGSTOP: ``sid`` handles nothing (no messages, no HTTP requests, no timers,
        so no sends) until resumed; what arrives for it waits, in order."""
        server = self._server(sid)
        self._fault("pause", target=sid)
        server.pause()
        if server.paused and isinstance(self.loop, VirtualTimeLoop):
            self.loop.freeze(sid)

    def resume(self, sid: str) -> None:
        """SIGCONT: the frames that waited in ``sid``'s sockets are handled first, then
        its timers that fell due and the work it was stopped in the middle of."""
        server = self._server(sid)
        self._fault("resume", target=sid)
        run_as_process(sid, server.resume)
        self._thaw(sid)

    def _thaw(self, sid: str) -> None:
        if isinstance(self.loop, VirtualTimeLoop):
            self.loop.thaw(sid)

    def partition(self, groups: Sequence[Sequence[str]]) -> None:
        self._fault("partition", groups=[list(g) for g in groups])
        self.network.partition(groups)

    def cut(self, source: str, target: str) -> None:
        self._fault("cut", source=source, target=target)
        self.network.cut(source, target)

    def isolate(self, sid: str) -> None:
        self._fault("isolate", target=sid)
        self.network.isolate(sid)

    def heal(self) -> None:
        self._fault("heal")
        self.network.heal()

    def add_server(self, sid: str, address: str | None = None) -> Server:
        """Start a new, empty server that is not yet a member (add it through a
        configuration change, e.g. the operator API)."""
        if sid in self.servers:
            raise ValueError(f"server {sid!r} already exists")
        self.ids.append(sid)
        self.addresses[sid] = address or rpc_address(len(self.ids))
        self.node_names.setdefault(sid, f"{sid}.global")
        server = self._make_server(sid, self._new_storage(sid))
        run_as_process(sid, server.start)
        return server

    # ------------------------------------------------------------------ clients

    async def propose(self, command: bytes, *, timeout: float = 5.0) -> bool:
        """Propose through the current leader (waiting for one)."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no leader")
        return await self.in_process(
            leader, self.servers[leader].propose(command, timeout=timeout))

    def close(self) -> None:
        for sid, server in self.servers.items():
            self._thaw(sid)
            server.crash()
        if not self.loop.is_closed():
            # let cancelled tasks finish so nothing warns at garbage collection
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(
                    asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
