"""In-memory storage: survives a simulated crash (the object outlives the node), not a
real one. The simulator's disk."""

from __future__ import annotations

from raftsim.core.messages import Entry, HardState, Snapshot
from raftsim.storage.base import PersistentState


class MemoryStorage:
    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        self._entries: list[Entry] = []  # contiguous, first index = snapshot index + 1

    def load(self) -> PersistentState:
        return PersistentState(self._hard_state, self._snapshot, list(self._entries))

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Snapshot | None,
    ) -> None:
        if snapshot is not None:
            # Compaction keeps the suffix after the snapshot; an installed snapshot that
            # does not match our log replaces the log entirely.
            matches = self._term_at(snapshot.index) == snapshot.term
            kept = [e for e in self._entries if e.index > snapshot.index]
            self._entries = kept if matches else []
            self._snapshot = snapshot
        if entries:
            first = entries[0].index
            offset = self._offset()
            keep = max(0, first - offset - 1)
            del self._entries[keep:]
            self._entries.extend(entries)
        if hard_state is not None:
            self._hard_state = hard_state

    def close(self) -> None:
        pass

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def last_index(self) -> int:
        return self._entries[-1].index if self._entries else self._offset()

    def _offset(self) -> int:
        return self._snapshot.index if self._snapshot else 0

    def _term_at(self, index: int) -> int | None:
        pos = index - self._offset() - 1
        if 0 <= pos < len(self._entries):
            return self._entries[pos].term
        return None
