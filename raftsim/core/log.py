"""The in-memory Raft log: entries after the last snapshot, addressed by Raft index, and
the trailing entries a compaction kept before it."""

from __future__ import annotations

from raftsim.core.messages import Entry


class RaftLog:
    """Entries ``snapshot_index+1 .. last_index``; index 0/term 0 is the empty log.

    A compaction may keep some entries at and before the snapshot index (hashicorp/raft's
    TrailingLogs): :meth:`term_at`, :meth:`entry` and :meth:`slice` answer for them too,
    so a leader can send a follower that is a little behind those entries instead of a
    whole snapshot. ``first_index`` stays the first index *after* the snapshot;
    ``oldest_index`` is the first one held as an entry.
    """

    __slots__ = ("snapshot_index", "snapshot_term", "_entries", "_before")

    def __init__(
        self, entries: list[Entry] | None = None, snapshot_index: int = 0, snapshot_term: int = 0
    ) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self._entries: list[Entry] = list(entries or [])
        #: the index just before the first entry held
        self._before = self._entries[0].index - 1 if self._entries else snapshot_index
        if self._before > snapshot_index:
            raise ValueError(f"log entries start at index {self._before + 1}, after the "
                             f"snapshot at {snapshot_index} ends")
        for offset, entry in enumerate(self._entries):
            if entry.index != self._before + 1 + offset:
                raise ValueError(f"log entries are not contiguous at index {entry.index}")
        if self._entries and (self._entries[-1].index < snapshot_index or (
                snapshot_index > self._before
                and self._entries[snapshot_index - self._before - 1].term != snapshot_term)):
            raise ValueError(f"log entries {self._before + 1}..{self._entries[-1].index} are "
                             f"not contiguous with the snapshot at {snapshot_index} (term "
                             f"{snapshot_term})")

    @property
    def last_index(self) -> int:
        return self._before + len(self._entries) if self._entries else self.snapshot_index

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snapshot_term

    @property
    def first_index(self) -> int:
        """The first index after the snapshot (may exceed last_index when empty)."""
        return self.snapshot_index + 1

    @property
    def oldest_index(self) -> int:
        """The first index still held as an entry (trailing entries included)."""
        return self._before + 1

    def term_at(self, index: int) -> int | None:
        """The entry's term, or None when it was compacted away or does not exist."""
        if index == self.snapshot_index:
            return self.snapshot_term
        pos = index - self._before - 1
        if 0 <= pos < len(self._entries):
            return self._entries[pos].term
        return None

    def entry(self, index: int) -> Entry:
        return self._entries[index - self._before - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (clamped to what is held)."""
        base = self._before + 1
        return self._entries[max(lo - base, 0) : max(hi - base, 0)]

    def append(self, entry: Entry) -> None:
        if entry.index != self.last_index + 1:
            raise ValueError(f"append at {entry.index} to a log ending at {self.last_index}")
        if not self._entries:
            self._before = entry.index - 1
        self._entries.append(entry)

    def extend(self, entries: list[Entry]) -> None:
        """Append ``entries``, which follow each other from ``last_index + 1`` on (the
        caller built them so; only the first is checked)."""
        if entries:
            self.append(entries[0])
            self._entries.extend(entries[1:])

    def truncate_from(self, index: int) -> None:
        """Drop entries at ``index`` and after (a conflicting suffix; never the snapshot's
        own trailing entries)."""
        index = max(index, self.snapshot_index + 1)
        del self._entries[max(index - self._before - 1, 0) :]

    def replace(self, index: int, entry: Entry) -> None:
        self._entries[index - self._before - 1] = entry

    def compact(self, index: int, term: int, keep: int = 0) -> None:
        """Forget entries up to ``index`` (now covered by a snapshot), except the ``keep``
        newest of them; a snapshot that does not match the log replaces all of it."""
        if index != self.snapshot_index and self.term_at(index) == term:
            drop = max(0, index - keep - self._before)
            del self._entries[:drop]
            self._before += drop
        else:
            self._entries.clear()
            self._before = index
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
                return self._before + 1 + pos
            if t < term:
                return None
        return None
