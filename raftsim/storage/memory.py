"""In-memory storage: survives a simulated crash (the object outlives the node), not a
real one. The simulator's disk."""

from __future__ import annotations

from raftsim.core.messages import Entry, HardState, Snapshot
from raftsim.storage.base import PersistentState


class MemoryStorage:
    """``trailing_logs``: how many entries at and before a compaction's snapshot index
    stay in the log (hashicorp/raft's TrailingLogs), so that a follower a little behind
    catches up from the log instead of a whole snapshot."""

    def __init__(self, *, trailing_logs: int = 0) -> None:
        if trailing_logs < 0:
            raise ValueError(f"trailing_logs must be >= 0, not {trailing_logs}")
        self.trailing_logs = trailing_logs
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        #: contiguous; starts at the snapshot index + 1, or earlier (trailing entries)
        self._entries: list[Entry] = []

    def load(self) -> PersistentState:
        return PersistentState(self._hard_state, self._snapshot, list(self._entries))

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Snapshot | None,
    ) -> None:
        if snapshot is not None:
            # Compaction keeps the suffix after the snapshot and the trailing entries
            # before it; an installed snapshot that does not match our log replaces the
            # log entirely.
            if self._term_at(snapshot.index) == snapshot.term:
                keep_from = snapshot.index - self.trailing_logs + 1
                self._entries = [e for e in self._entries if e.index >= keep_from]
            else:
                self._entries = []
            self._snapshot = snapshot
        if entries:
            del self._entries[max(0, entries[0].index - self._first()) :]
            self._entries.extend(entries)
        if hard_state is not None:
            self._hard_state = hard_state

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Nothing to write ahead: save() keeps the snapshot in memory at once."""

    def close(self) -> None:
        pass

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def last_index(self) -> int:
        return max(self._entries[-1].index, self._offset()) if self._entries else self._offset()

    def _offset(self) -> int:
        return self._snapshot.index if self._snapshot else 0

    def _first(self) -> int:
        """The index of the first entry held (the next one when none is)."""
        return self._entries[0].index if self._entries else self._offset() + 1

    def _term_at(self, index: int) -> int | None:
        pos = index - self._first()
        if 0 <= pos < len(self._entries):
            return self._entries[pos].term
        return None
