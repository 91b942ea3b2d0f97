"""A simulated disk with a write cache and injectable faults, so the fuzzer and the
tests can exercise crash recovery and fail-stop.

:class:`~raftsim.storage.memory.MemoryStorage` never forgets anything, so a simulated
crash never tests what a real one does. This disk keeps two states: what has reached
stable storage (``durable``) and what the running server sees (``visible``: the durable
state plus the writes since the last sync). ``save()`` returns at once either way; the
``sync_every`` policy says how often it also syncs:

- ``sync_every=1`` (the default) syncs every ``save()`` before it returns. That is what
  Raft requires and what the runtime assumes, so :meth:`CrashDiskStorage.crash` loses
  nothing: the fuzzer checks that recovery is exact.
- ``sync_every=N`` syncs only every N-th ``save()`` that wrote entries, like a server
  that acknowledges before it fsyncs. :meth:`CrashDiskStorage.crash` then loses the
  unsynced tail: the disk had persisted some prefix of the writes since the last sync,
  in order, and the last record of that prefix may be torn (recovery drops it). The
  fuzzer uses this to show which guarantees break when acknowledged entries vanish.

Hard state is always synced at once (FileStorage replaces it with an fsync'd rename),
and a hard state whose commit index covers unsynced entries syncs them first (as
FileStorage writes entries before the hard state): the durable commit index never points
past the durable log, so strict recovery never meets a state a crash can produce. A
snapshot syncs the cached entries first (FileStorage writes it with fsyncs and removes
the log files it covers).

Faults (what a real disk does when it is full, read-only, out of file descriptors or
failing): :meth:`CrashDiskStorage.fail_next` arms one, ``fault_rate`` draws them from the
disk's own ``rng``. A faulted ``save()`` raises :class:`~raftsim.storage.base.StorageError`
naming a file, the operation and an errno, after doing what that fault leaves behind:

- ``open`` (EMFILE: a file could not be created or opened): nothing was written;
- ``write`` (ENOSPC: the disk filled up): a prefix of the entries reached the cache;
- ``fsync`` (EIO): the entries reached the cache but the flush failed, and like Linux
  after a failed writeback the cache may have dropped them: the unsynced writes keep a
  random prefix, as in a crash.

Two more faults are armed by name and leave damage that only recovery sees:

- ``torn`` (power lost in the middle of a log write): the next save that writes entries
  leaves a prefix of them on the platter, the last of that prefix torn (its checksum
  fails), and the server dies; what the save promised (its hard state) never arrives;
- :meth:`CrashDiskStorage.corrupt` (a latent bad sector): a record already on the disk
  later reads back with a checksum that fails. The running server does not notice (it
  has the entry in memory).

:meth:`CrashDiskStorage.load` recovers strictly, as :class:`~raftsim.storage.file.FileStorage`
does: a bad last record beyond the durable commit index is a torn tail and is dropped;
a bad record at or below it, or one followed by intact records, is damage a crash cannot
explain, and ``load`` raises :class:`~raftsim.storage.file.StorageCorruptionError` (the
server refuses to start).

A slow disk (``save_seconds``): every save takes that much virtual time. The write is on
the platter at once; the runtime holds back what follows the save (its sends and
answers) until the time has passed (``Server.disk_seconds``), so Raft's order, persist
before send, still holds.

Every random choice comes from the ``rng`` handed in, and none is drawn unless there is
something to lose or a fault rate to honour.
"""

from __future__ import annotations

import errno as errnos
import random
from pathlib import Path

from raftsim.core.messages import Entry, HardState, Snapshot
from raftsim.storage.base import PersistentState, PowerLoss, StorageError
from raftsim.storage.file import StorageCorruptionError
from raftsim.storage.memory import MemoryStorage

#: what a fault can break, and the errno it reports unless told otherwise
FAULT_ERRNOS: dict[str, int] = {
    "open": errnos.EMFILE,
    "write": errnos.ENOSPC,
    "fsync": errnos.EIO,
}
#: faults that are armed like the ones above but are no errno: the power fails mid-write
TORN = "torn"


class CrashDiskStorage:
    def __init__(
        self,
        rng: random.Random,
        *,
        sync_every: int = 1,
        lose_unsynced: bool = True,
        trailing_logs: int = 0,
        fault_rate: float = 0.0,
        name: str = "disk",
    ) -> None:
        if sync_every < 1:
            raise ValueError(f"sync_every must be at least 1, not {sync_every}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, not {fault_rate}")
        self._rng = rng
        self.sync_every = sync_every
        #: False models a write cache that survives power loss (battery-backed).
        self.lose_unsynced = lose_unsynced
        #: the probability that a save() fails (operation drawn from the rng)
        self.fault_rate = fault_rate
        #: the directory the fault messages name (the server id in a simulated cluster)
        self.name = name
        self.trailing_logs = trailing_logs
        self._durable = MemoryStorage(trailing_logs=trailing_logs)
        self._visible = MemoryStorage(trailing_logs=trailing_logs)
        # Entry batches written since the last sync, in write order. Replaying them onto
        # the durable state gives the visible one (a batch may truncate a conflict).
        self._unsynced: list[tuple[Entry, ...]] = []
        self._writes_since_sync = 0
        self._armed: list[tuple[str, int]] = []
        #: how many save() calls failed so far
        self.faults = 0
        #: virtual seconds every save takes (a slow disk); 0 is instant
        self.save_seconds = 0.0
        #: how long the last save that succeeded took
        self.last_save_seconds = 0.0
        #: indexes of durable log records whose checksum fails when read back
        self._bad: set[int] = set()

    def load(self) -> PersistentState:
        """What the server reads back, after strict recovery of the damaged records."""
        if self._bad:
            self._recover()
        return self._visible.load()

    def corrupt(self, index: int | None = None) -> int | None:
        """Make the durable log record at ``index`` (default: the newest committed one,
        the durable commit index) read back with a bad checksum. Returns the index
        damaged, or None when there is no such record on the disk (nothing committed
        yet, or the record is covered by a snapshot)."""
        durable = self._durable
        if index is None:
            index = durable.hard_state.commit
        entries = durable.load().entries
        if not entries or not entries[0].index <= index <= entries[-1].index:
            return None
        self._bad.add(index)
        return index

    @property
    def damaged(self) -> list[int]:
        """The log records on the disk that fail their checksum, in index order."""
        return sorted(self._bad)

    def fail_next(self, operation: str = "write", *, error: int | None = None) -> None:
        """Make the next ``save()`` fail at ``operation`` (``open``, ``write`` or
        ``fsync``) with errno ``error`` (by default EMFILE, ENOSPC, EIO), or tear the
        next log write (``torn``: a :class:`~raftsim.storage.base.PowerLoss`). Armed
        faults queue up: each fails one save."""
        if operation == TORN:
            self._armed.append((TORN, 0))
            return
        if operation not in FAULT_ERRNOS:
            raise ValueError(f"unknown disk fault {operation!r}; faults are "
                             f"{', '.join([*FAULT_ERRNOS, TORN])}")
        self._armed.append((operation, FAULT_ERRNOS[operation] if error is None else error))

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Snapshot | None,
    ) -> None:
        fault = self._next_fault(bool(entries) and snapshot is None)
        if fault is not None:
            self._fail(fault[0], fault[1], hard_state, entries, snapshot)
        self.last_save_seconds = self.save_seconds
        if snapshot is not None:
            self.sync()
            self._durable.save(None, (), snapshot)
            self._visible.save(None, (), snapshot)
            # the log files the snapshot covers are removed, bad records with them
            self._bad = {i for i in self._bad if i > snapshot.index}
        if entries:
            # rewritten records are read back as written now
            self._bad = {i for i in self._bad if i < entries[0].index}
            self._visible.save(None, entries, None)
            self._unsynced.append(entries)
            self._writes_since_sync += 1
            if self._writes_since_sync >= self.sync_every:
                self.sync()
        if hard_state is not None:
            if self._unsynced and hard_state.commit > self._durable.last_index:
                self.sync()  # the commit index it makes durable must find its entries
            self._durable.save(hard_state, (), None)
            self._visible.save(hard_state, (), None)

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Nothing to write ahead: save() stores the snapshot (the simulator saves at
        once, in no virtual time)."""

    def close(self) -> None:
        """Nothing to release: like MemoryStorage, the disk outlives the server process
        (and a clean exit loses nothing: the OS still has the cached writes)."""

    def sync(self) -> None:
        """Flush the write cache: everything saved so far becomes durable."""
        for batch in self._unsynced:
            self._durable.save(None, batch, None)
        self._unsynced.clear()
        self._writes_since_sync = 0

    @property
    def unsynced(self) -> int:
        """How many entry records are written but not yet durable."""
        return sum(len(batch) for batch in self._unsynced)

    def crash(self) -> int:
        """Power failure: keep a random prefix of the unsynced writes, the last one
        possibly torn, and drop the rest. Returns how many entry records were lost.

        Call it while the server is down (before it reloads): afterwards :meth:`load`
        returns only what survived."""
        written = self.unsynced
        survivors = written
        if written and self.lose_unsynced:
            survivors = self._rng.randint(0, written)  # records that reached the platter
            if survivors and self._rng.random() < 0.5:
                survivors -= 1  # the last of them was torn; recovery drops it
        remaining = survivors
        for batch in self._unsynced:
            if remaining <= 0:
                break
            self._durable.save(None, batch[:remaining], None)
            remaining -= len(batch)
        self._unsynced.clear()
        self._writes_since_sync = 0
        self._visible = _copy(self._durable)
        return written - survivors

    @property
    def hard_state(self) -> HardState:
        return self._visible.hard_state

    @property
    def last_index(self) -> int:
        return self._visible.last_index

    # ------------------------------------------------------------------ faults

    def _next_fault(self, writes_log: bool) -> tuple[str, int] | None:
        """The fault this save meets. An armed torn write waits for a save that writes
        log records (a hard state is replaced atomically: it cannot tear)."""
        if self._armed and (self._armed[0][0] != TORN or writes_log):
            return self._armed.pop(0)
        if self.fault_rate and self._rng.random() < self.fault_rate:
            operation = self._rng.choice(sorted(FAULT_ERRNOS))
            return operation, FAULT_ERRNOS[operation]
        return None

    def _fail(self, operation: str, error: int, hard_state: HardState | None,
              entries: tuple[Entry, ...], snapshot: Snapshot | None) -> None:
        """Leave behind what ``operation`` failing leaves, then raise."""
        self.faults += 1
        if snapshot is not None:
            target = f"{self.name}/snapshot-{snapshot.index}-{snapshot.term}.bin"
        elif entries:
            target = f"{self.name}/wal"
        else:
            target = f"{self.name}/hardstate.bin"
        if operation == TORN:
            self._tear(entries)
            raise PowerLoss(TORN, target, None, "power lost in the middle of the write")
        if snapshot is None and entries and operation == "write":
            written = self._rng.randint(0, len(entries) - 1)
            if written:
                self._visible.save(None, entries[:written], None)
                self._unsynced.append(entries[:written])
        elif snapshot is None and entries and operation == "fsync":
            self._visible.save(None, entries, None)
            self._unsynced.append(entries)
            self.crash()
        raise StorageError.simulated(operation, target, error)


    def _tear(self, entries: tuple[Entry, ...]) -> None:
        """Power fails while ``entries`` are written: earlier unsynced writes are lost
        or kept as in a crash, then a prefix of ``entries`` reaches the platter, the
        last record of it torn."""
        self.crash()
        if entries[0].index > self._durable.last_index + 1:
            return  # the records before them were lost: the log ends there
        reached = self._rng.randint(1, len(entries))
        self._durable.save(None, entries[:reached], None)
        self._bad = {i for i in self._bad if i < entries[0].index}
        self._bad.add(entries[reached - 1].index)
        self._visible = _copy(self._durable)

    def _recover(self) -> None:
        """Strict recovery (FileStorage's rule): drop a bad last record beyond the
        durable commit index (a torn tail); refuse anything else."""
        commit = self._durable.hard_state.commit
        last = self._durable.last_index
        wal = Path(self.name) / "wal"
        for index in sorted(self._bad):
            if index <= commit:
                raise StorageCorruptionError(
                    wal, None, f"log record {index} fails its checksum and is at or below "
                               f"the saved commit index {commit}")
            if index != last:
                raise StorageCorruptionError(
                    wal, None, f"log record {index} fails its checksum but intact records "
                               f"follow it (up to {last}): not a torn tail")
        state = self._durable.load()
        self._durable = MemoryStorage(trailing_logs=self.trailing_logs)
        self._durable.save(state.hard_state, tuple(e for e in state.entries
                                                   if e.index not in self._bad),
                           state.snapshot)
        self._bad.clear()
        self._visible = _copy(self._durable)


def _copy(storage: MemoryStorage) -> MemoryStorage:
    state = storage.load()
    copy = MemoryStorage(trailing_logs=storage.trailing_logs)
    copy.save(state.hard_state, tuple(state.entries), state.snapshot)
    return copy
