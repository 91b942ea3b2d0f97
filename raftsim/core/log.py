"""The in-memory Raft log: entries after the last snapshot, addressed by Raft index."""

from __future__ import annotations

from raftsim.core.messages import Entry


class RaftLog:
    """Entries ``snapshot_index+1 .. last_index``; index 0/term 0 is the empty log."""

    __slots__ = ("snapshot_index", "snapshot_term", "_entries")

    def __init__(
        self, entries: list[Entry] | None = None, snapshot_index: int = 0, snapshot_term: int = 0
    ) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self._entries: list[Entry] = list(entries or [])
        for offset, entry in enumerate(self._entries):
            if entry.index != snapshot_index + 1 + offset:
                raise ValueError(f"log entries are not contiguous at index {entry.index}")

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    @property
    def first_index(self) -> int:
        """The first index still held as an entry (may exceed last_index when empty)."""
        return self.snapshot_index + 1

    def term_at(self, index: int) -> int | None:
        """The entry's term, or None when it was compacted away or does not exist."""
        if index == self.snapshot_index:
            return self.snapshot_term
        pos = index - self.snapshot_index - 1
        if 0 <= pos < len(self._entries):
            return self._entries[pos].term
        return None

    def entry(self, index: int) -> Entry:
        return self._entries[index - self.snapshot_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (clamped to what is held)."""
        base = self.snapshot_index + 1
        return self._entries[max(lo - base, 0) : max(hi - base, 0)]

    def append(self, entry: Entry) -> None:
        if entry.index != self.last_index + 1:
            raise ValueError(f"append at {entry.index} to a log ending at {self.last_index}")
        self._entries.append(entry)

    def truncate_from(self, index: int) -> None:
        """Drop entries at ``index`` and after (a conflicting suffix)."""
        del self._entries[max(index - self.snapshot_index - 1, 0) :]

    def replace(self, index: int, entry: Entry) -> None:
        self._entries[index - self.snapshot_index - 1] = entry

    def compact(self, index: int, term: int) -> None:
        """Forget entries up to ``index`` (now covered by a snapshot)."""
        if self.term_at(index) == term:
            del self._entries[: index - self.snapshot_index]
        else:
            self._entries.clear()
        self.snapshot_index = index
        self.snapshot_term = term

    def first_index_of_term(self, term: int, at_or_before: int) -> int:
        """The first index of the run of ``term`` that contains ``at_or_before``."""
        index = at_or_before
        while index - 1 > self.snapshot_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int) -> int | None:
        for pos in range(len(self._entries) - 1, -1, -1):
            t = self._entries[pos].term
            if t == term:
                return self.snapshot_index + 1 + pos
            if t < term:
                return None
        return None
