"""A simulated disk with a write cache, so the fuzzer can exercise crash recovery.

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

Hard state is always synced at once (FileStorage replaces it with an fsync'd rename);
so is a snapshot, which syncs the cached entries first (FileStorage writes it with
fsyncs and removes the log files it covers). A durable commit index may therefore point
past the durable log after a crash; the core clamps it on restart. Every random choice
comes from the ``rng`` handed in, and none is drawn unless there is something to lose.
"""

from __future__ import annotations

import random

from raftsim.core.messages import Entry, HardState, Snapshot
from raftsim.storage.base import PersistentState
from raftsim.storage.memory import MemoryStorage


class CrashDiskStorage:
    def __init__(
        self, rng: random.Random, *, sync_every: int = 1, lose_unsynced: bool = True
    ) -> None:
        if sync_every < 1:
            raise ValueError(f"sync_every must be at least 1, not {sync_every}")
        self._rng = rng
        self.sync_every = sync_every
        #: False models a write cache that survives power loss (battery-backed).
        self.lose_unsynced = lose_unsynced
        self._durable = MemoryStorage()
        self._visible = MemoryStorage()
        # Entry batches written since the last sync, in write order. Replaying them onto
        # the durable state gives the visible one (a batch may truncate a conflict).
        self._unsynced: list[tuple[Entry, ...]] = []
        self._writes_since_sync = 0

    def load(self) -> PersistentState:
        return self._visible.load()

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Snapshot | None,
    ) -> None:
        if snapshot is not None:
            self.sync()
            self._durable.save(None, (), snapshot)
            self._visible.save(None, (), snapshot)
        if entries:
            self._visible.save(None, entries, None)
            self._unsynced.append(entries)
            self._writes_since_sync += 1
            if self._writes_since_sync >= self.sync_every:
                self.sync()
        if hard_state is not None:
            self._durable.save(hard_state, (), None)
            self._visible.save(hard_state, (), None)

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


def _copy(storage: MemoryStorage) -> MemoryStorage:
    state = storage.load()
    copy = MemoryStorage()
    copy.save(state.hard_state, tuple(state.entries), state.snapshot)
    return copy
