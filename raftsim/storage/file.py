"""Durable storage on a real disk: what lets a ``kill -9``-ed live server come back with
nothing lost.

One data directory per server::

    wal-<first index, 20 digits>.log   log entries in index order (the write-ahead log)
    hardstate.bin                      term, vote, commit: replaced atomically
    snapshot-<index>-<term>.bin        the latest snapshot: replaced atomically
    *.tmp                              being written (or staged): removed at start

Every file is a sequence of records framed the same way: 4-byte big-endian payload
length, 4-byte CRC32 of the payload, the msgpack payload (an entry is
``[term, index, kind, data]``). A checksum is what tells a write torn by a crash from
data the disk later damaged: the first may be dropped, the second must stop the server.

Crash safety rests on the order of writes inside :meth:`FileStorage.save`. Each step is
durable before the next one starts (under ``fsync="always"``), and recovery finishes
whatever step a crash interrupted, so a restart finds either the state before the save,
the state after it, or one on the way between (a longer prefix of the old or the new
log) - never a state that forgets an entry acknowledged by an earlier save:

1. snapshot: write it, then delete the log it covers or replaces, then older snapshots.
   A live server writes and fsyncs the snapshot file ahead of the save, in a worker
   thread (:meth:`FileStorage.stage_snapshot`), under a temporary name; the save then
   only renames it into place. A crash before that rename leaves a temporary file that
   recovery removes: the snapshot was never part of the stored state;
2. entries: a conflicting suffix is removed durably first, then the new entries are
   appended and the segment is fsynced once for the whole batch (group commit);
3. hard state: written last, so a durable commit index never points past durable entries.
   A new term or vote is written *first* as well (with the old commit index): a log
   entry never reaches the disk before the term it belongs to, and a log never exists
   without a hard state beside it.

Recovery is strict about what the hard state proves (etcd and hashicorp/raft refuse to
start on the same): a saved commit index past the last durable entry, a log whose last
term is above the saved term, log or snapshot files without a hard state, or a damaged
record at or below the saved commit index raise :class:`StorageCorruptionError`. Only a
bad record past the commit index can be a torn write, and only that is dropped.

Every failed system call during a save raises :class:`~raftsim.storage.base.StorageError`
naming the operation (open, write, fsync, rename, remove, truncate), the file and the
errno; after one, the object refuses further saves (only a reopen can tell what is on
disk).
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack

from raftsim.core.messages import Entry, EntryKind, HardState, Snapshot
from raftsim.storage.base import PersistentState, StorageError

logger = logging.getLogger(__name__)

MiB = 1 << 20

_HEADER = struct.Struct(">II")  # payload length, CRC32 of the payload
_TERM = operator.attrgetter("term")
_INDEX = operator.attrgetter("index")
_HARD_STATE = "hardstate.bin"
_TEMP_SUFFIX = ".tmp"
#: a snapshot file stage_snapshot() wrote and fsynced, waiting for save() to rename it
_STAGED_SUFFIX = ".staged" + _TEMP_SUFFIX
_STAGED_NAME = re.compile(r"snapshot-(\d+)-(\d+)\.bin\.staged\.tmp")
#: numbers the files stage_snapshot() is writing, so that two never share one
_STAGE_IDS = itertools.count()
_SEGMENT_NAME = re.compile(r"wal-(\d{20})\.log")
_SNAPSHOT_NAME = re.compile(r"snapshot-(\d+)-(\d+)\.bin")


class StorageCorruptionError(RuntimeError):
    """The data directory holds damage that a crash cannot explain. Starting anyway could
    silently forget committed entries or a vote, so the server refuses to start."""

    def __init__(self, path: Path, offset: int | None, problem: str) -> None:
        where = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(
            f"{path}: {problem}{where}; the data directory must be "
            "repaired or removed before this server can start"
        )
        self.path = path
        self.offset = offset


@dataclass(eq=False, slots=True)
class _Segment:
    """One WAL file. ``size`` counts only bytes of valid, written records."""

    path: Path
    first_index: int
    size: int = 0


class FileStorage:
    """The :class:`~raftsim.storage.base.Storage` protocol on a directory.

    Recovery runs at construction: torn tails are dropped (with a warning), interrupted
    saves are finished, and damage a crash cannot explain raises
    :class:`StorageCorruptionError`. ``fsync="never"`` keeps the layout but skips every
    fsync: for benchmarks only, since a power failure may then lose anything.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync: Literal["always", "never"] = "always",
        segment_bytes: int = 8 * MiB,
        trailing_logs: int = 0,
    ) -> None:
        if fsync not in ("always", "never"):
            raise ValueError(f"fsync must be 'always' or 'never', not {fsync!r}")
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, not {segment_bytes}")
        if trailing_logs < 0:
            raise ValueError(f"trailing_logs must be >= 0, not {trailing_logs}")
        #: entries at and before a compaction's snapshot index that stay in the log
        self.trailing_logs = trailing_logs
        self.directory = Path(directory)
        self._sync = fsync == "always"
        self._segment_bytes = segment_bytes
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        # the log: contiguous, from the snapshot index + 1 or earlier (trailing entries)
        self._entries: list[Entry] = []
        self._hard_state_exists = False
        # where each of _entries is: its segment and its record's offset in it (two
        # lists of what exists already, not a tuple per entry for the collector to scan)
        self._entry_segments: list[_Segment] = []
        self._entry_offsets: list[int] = []
        self._segments: list[_Segment] = []  # in index order; the last one is appended to
        self._tail_fd: int | None = None  # open on _segments[-1] once we write to it
        self._closed = False
        self._failure: BaseException | None = None
        if not self.directory.is_dir():
            with _doing("mkdir", self.directory):
                self.directory.mkdir(parents=True)
            self._fsync_dir(self.directory.parent)
        self._recover()

    # ------------------------------------------------------------------ protocol

    def load(self) -> PersistentState:
        self._check_usable()
        return PersistentState(self._hard_state, self._snapshot, list(self._entries))

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Snapshot | None,
    ) -> None:
        self._check_usable()
        self._check_arguments(hard_state, entries, snapshot)
        try:
            stored = self._hard_state
            new = hard_state if hard_state is not None else stored
            if (new.term, new.voted_for) != (stored.term, stored.voted_for) or (
                    not self._hard_state_exists and (entries or snapshot is not None)):
                # The term (and vote) first: no entry of a term may be durable before
                # the term is, nor any log before a hard state.
                self._write_hard_state(HardState(new.term, new.voted_for, stored.commit))
            if snapshot is not None:
                self._save_snapshot(snapshot)
            if entries:
                self._append(entries)
            if new != self._hard_state:
                self._write_hard_state(new)
        except BaseException as exc:
            # Memory and disk may now disagree; only a reopen (recovery) can tell.
            self._failure = exc
            raise

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Write ``snapshot``'s file and fsync it under a temporary name, for a later
        save() of the same snapshot to rename into place instead of writing it then.

        Made to run in a worker thread while the owner goes on calling save() on the
        event loop: it touches no state of this object, only a file of its own, which it
        renames to the staged name once whole and durable (so a staged file is always
        complete). Staging stores nothing: load() and a restart do not see it, and
        recovery removes the file if no save() published it before a crash. Raises
        StorageError like save()."""
        self._check_usable()
        name = _snapshot_name(snapshot)
        partial = self.directory / f"{name}.{next(_STAGE_IDS)}.partial{_TEMP_SUFFIX}"
        try:
            _write_snapshot_file(partial, snapshot, sync=self._sync)
        except BaseException:
            with suppress(OSError):
                os.remove(partial)
            raise
        with _doing("rename", partial):
            os.replace(partial, self.directory / (name + _STAGED_SUFFIX))

    def close(self) -> None:
        try:
            self._close_tail()
        except StorageError:
            logger.warning("%s: closing the log segment failed", self.directory)
        self._closed = True

    # ------------------------------------------------------------------ inspection

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def last_index(self) -> int:
        return max(self._entries[-1].index, self._offset()) if self._entries else self._offset()

    # ------------------------------------------------------------------ save steps

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError(f"FileStorage({self.directory}) is closed")
        if self._failure is not None:
            raise RuntimeError(
                f"FileStorage({self.directory}) failed during save(); reopen the directory "
                "to recover"
            ) from self._failure

    def _check_arguments(self, hard_state: HardState | None, entries: tuple[Entry, ...],
                         snapshot: Snapshot | None) -> None:
        """Refuse, before writing anything, calls no Raft node makes and whose result
        recovery could not tell apart from damage (a gap, a snapshot moving backwards)."""
        term = hard_state.term if hard_state is not None else self._hard_state.term
        newest = max(max(map(_TERM, entries), default=0), snapshot.term if snapshot else 0)
        if newest > term:
            raise ValueError(f"an entry or snapshot of term {newest} cannot be saved while "
                             f"the term is {term}")
        offset, last = self._offset(), self.last_index
        if snapshot is not None:
            if snapshot.index <= offset:
                raise ValueError(
                    f"snapshot at index {snapshot.index} does not follow the stored snapshot "
                    f"at {offset}"
                )
            if self._term_at(snapshot.index) != snapshot.term:
                last = snapshot.index
            offset, last = snapshot.index, max(last, snapshot.index)
        if entries:
            first = entries[0].index
            if not offset < first <= last + 1:
                raise ValueError(
                    f"entries from index {first} do not attach to a log holding "
                    f"{offset + 1}..{last}"
                )
            if list(map(_INDEX, entries)) != list(range(first, first + len(entries))):
                for before, after in itertools.pairwise(entries):
                    if after.index != before.index + 1:
                        raise ValueError(
                            f"entries are not contiguous: {before.index}, {after.index}")

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        # Memory semantics: a snapshot matching our log keeps the suffix after it; one
        # that does not (installed from a leader) replaces the log entirely.
        matches = self._term_at(snapshot.index) == snapshot.term
        old = self._snapshot
        path = self.directory / _snapshot_name(snapshot)
        staged = path.with_name(path.name + _STAGED_SUFFIX)
        if not staged.exists():
            staged = path.with_name(path.name + _TEMP_SUFFIX)
            _write_snapshot_file(staged, snapshot, sync=self._sync)
        with _doing("rename", path):
            os.replace(staged, path)
        self._fsync_dir()
        self._remove_overtaken_staged(snapshot.index)
        if matches:
            keep_from = snapshot.index - self.trailing_logs + 1
            covered = max(0, keep_from - self._entries[0].index)
            del self._entries[:covered]
            del self._entry_segments[:covered]
            del self._entry_offsets[:covered]
            # Oldest first: a crash in between leaves a shorter log that still attaches.
            doomed = self._segments_before(
                self._entry_segments[0] if self._entry_segments else None)
        else:
            self._entries.clear()
            self._entry_segments.clear()
            self._entry_offsets.clear()
            # Newest first: a crash in between leaves a prefix of the old log, which
            # recovery recognises (by its term at the snapshot index) as replaced.
            doomed = self._segments[::-1]
        if self._segments and self._segments[-1] in doomed:
            self._close_tail()
        for segment in doomed:
            _remove(segment.path)
            self._segments.remove(segment)
        if old is not None:
            _remove(self.directory / _snapshot_name(old))
        if doomed or old is not None:
            self._fsync_dir()
        self._snapshot = snapshot

    def _append(self, entries: tuple[Entry, ...]) -> None:
        if entries[0].index <= self.last_index:
            self._truncate_from(entries[0].index)
        # One record per entry (a follower saves one entry per client command), built
        # with one Packer for all of them; the EntryKind packs as the int it is.
        pack, header, crc32 = _ENTRY_PACKER.pack, _HEADER.pack, zlib.crc32
        payloads = [pack([e.term, e.index, e.kind, e.data]) for e in entries]
        records = [header(len(p), crc32(p)) + p for p in payloads]
        sizes = list(map(len, records))
        tail = self._segments[-1] if self._segments else None
        if tail is not None and tail.size + sum(sizes) - sizes[-1] < self._segment_bytes:
            # All of them go to the tail segment (the loop below would start no new one).
            self._entry_segments.extend(itertools.repeat(tail, len(records)))
            self._entry_offsets.extend(itertools.accumulate(sizes[:-1], initial=tail.size))
            self._entries.extend(entries)
            self._write_tail(b"".join(records))
            self._fsync_tail()
            return
        created = False
        pending = bytearray()  # records for the tail segment, written in one go
        in_segment, at_offset = self._entry_segments.append, self._entry_offsets.append
        limit = self._segment_bytes
        for entry, record in zip(entries, records, strict=True):
            if tail is None or tail.size + len(pending) >= limit:
                if pending:
                    self._write_tail(pending)
                    pending.clear()
                    self._fsync_tail()  # durable before the next segment exists
                tail = self._create_segment(entry.index)
                created = True
            in_segment(tail)
            at_offset(tail.size + len(pending))
            pending += record
        self._entries.extend(entries)
        self._write_tail(pending)
        self._fsync_tail()
        if created:
            self._fsync_dir()

    def _truncate_from(self, index: int) -> None:
        """Remove entries ``index..`` durably before anything replaces them: otherwise a
        crash could leave new entries spliced onto a stale remainder of the old log."""
        position = index - self._entries[0].index
        segment, offset = self._entry_segments[position], self._entry_offsets[position]
        later = self._segments[self._segments.index(segment) + 1 :]
        if later:
            self._close_tail()
            for doomed in reversed(later):
                _remove(doomed.path)
            del self._segments[-len(later) :]
            self._fsync_dir()
        fd = self._open_tail()
        with _doing("truncate", segment.path):
            os.ftruncate(fd, offset)
        segment.size = offset
        self._fsync_tail()
        del self._entries[position:]
        del self._entry_segments[position:]
        del self._entry_offsets[position:]

    # ------------------------------------------------------------------ files

    def _create_segment(self, first_index: int) -> _Segment:
        self._close_tail()
        segment = _Segment(self.directory / f"wal-{first_index:020d}.log", first_index)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        with _doing("open", segment.path):
            self._tail_fd = os.open(segment.path, flags, 0o644)
        self._segments.append(segment)
        return segment

    def _open_tail(self) -> int:
        if self._tail_fd is None:
            path = self._segments[-1].path
            with _doing("open", path):
                self._tail_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return self._tail_fd

    def _close_tail(self) -> None:
        if self._tail_fd is not None:
            fd, self._tail_fd = self._tail_fd, None
            with _doing("close", self._segments[-1].path if self._segments else self.directory):
                os.close(fd)

    def _write_tail(self, data: bytes | bytearray) -> None:
        if data:
            fd = self._open_tail()
            with _doing("write", self._segments[-1].path):
                _write_all(fd, data)
            self._segments[-1].size += len(data)

    def _fsync_tail(self) -> None:
        if self._sync:
            fd = self._open_tail()
            with _doing("fsync", self._segments[-1].path):
                os.fsync(fd)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        """Temp file, fsync, rename over, fsync the directory: readers see the old file
        or the new one, whole."""
        temp = path.with_name(path.name + _TEMP_SUFFIX)
        with _doing("open", temp):
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with _doing("write", temp):
                _write_all(fd, data)
            if self._sync:
                with _doing("fsync", temp):
                    os.fsync(fd)
        finally:
            os.close(fd)
        with _doing("rename", path):
            os.replace(temp, path)
        self._fsync_dir()

    def _write_hard_state(self, hard_state: HardState) -> None:
        self._write_atomically(self.directory / _HARD_STATE,
                               _frame(_pack_hard_state(hard_state)))
        self._hard_state = hard_state
        self._hard_state_exists = True

    def _remove_overtaken_staged(self, index: int) -> None:
        """Staged snapshots older than the one just stored can never be saved (a save
        refuses a snapshot moving backwards): a compaction overtaken by an installed
        snapshot, or a write a crashed server started."""
        with _doing("list", self.directory):
            names = [path.name for path in self.directory.iterdir()]
        for name in names:
            match = _STAGED_NAME.fullmatch(name)
            if match is not None and int(match.group(1)) < index:
                _remove(self.directory / name)

    def _fsync_dir(self, directory: Path | None = None) -> None:
        """Make creations, renames and removals of directory entries durable."""
        if self._sync:
            path = directory or self.directory
            with _doing("open", path):
                fd = os.open(path, os.O_RDONLY)
            try:
                with _doing("fsync", path):
                    os.fsync(fd)
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ recovery

    def _recover(self) -> None:
        with _doing("list", self.directory):
            names = sorted(path.name for path in self.directory.iterdir())
        for name in names:
            if name.endswith(_TEMP_SUFFIX) and name.startswith((_HARD_STATE, "snapshot-")):
                # an atomic write a crash interrupted, or a staged snapshot no save()
                # published: neither was ever part of the stored state
                _remove(self.directory / name)
        snapshots = sorted(
            (int(m.group(1)), int(m.group(2)), self.directory / name)
            for name in names
            if (m := _SNAPSHOT_NAME.fullmatch(name))
        )
        if snapshots:
            # Snapshots only move forward (save() refuses others), so the highest is the
            # newest; any other is left over from a save that a crash interrupted.
            self._snapshot = _read_snapshot(*snapshots[-1])
        hard_state_path = self.directory / _HARD_STATE
        segments = [(int(m.group(1)), n) for n in names if (m := _SEGMENT_NAME.fullmatch(n))]
        if hard_state_path.exists():
            self._hard_state = _read_hard_state(hard_state_path)
            self._hard_state_exists = True
        elif segments or snapshots:
            found = [n for n in names if _SEGMENT_NAME.fullmatch(n) or _SNAPSHOT_NAME.fullmatch(n)]
            raise StorageCorruptionError(
                hard_state_path, None,
                f"missing, but the directory holds {', '.join(found)} (the term and vote "
                "this server had are lost: it could vote twice in a term)",
            )
        wal = self._read_wal(sorted(segments))
        kept = self._attach_to_snapshot(wal)
        self._check_against_hard_state(hard_state_path, kept)
        self._entries = [entry for entry, _, _ in kept]
        self._entry_segments = [segment for _, segment, _ in kept]
        self._entry_offsets = [offset for _, _, offset in kept]
        doomed = self._segments_before(kept[0][1] if kept else None)
        for segment in doomed:
            _remove(segment.path)
            self._segments.remove(segment)
        for _, _, path in snapshots[:-1]:
            _remove(path)
        if doomed or len(snapshots) > 1:
            self._fsync_dir()

    def _read_wal(self, found: list[tuple[int, str]]) -> list[tuple[Entry, _Segment, int]]:
        """Every WAL entry, checked to be contiguous; a torn tail is cut off."""
        wal: list[tuple[Entry, _Segment, int]] = []
        for position, (first_index, name) in enumerate(found):
            segment = _Segment(self.directory / name, first_index)
            is_last = position == len(found) - 1
            if wal and first_index != wal[-1][0].index + 1:
                raise StorageCorruptionError(
                    segment.path, 0,
                    f"log gap: segment starts at index {first_index} but the previous one "
                    f"ends at {wal[-1][0].index}",
                )
            records = self._read_segment(segment, is_last)
            if not records:
                if not is_last:
                    raise StorageCorruptionError(segment.path, 0, "segment holds no records")
                _remove(segment.path)  # created just before a crash: nothing in it
                self._fsync_dir()
                break
            self._segments.append(segment)
            wal.extend((entry, segment, offset) for entry, offset in records)
        return wal

    def _read_segment(self, segment: _Segment, is_last: bool) -> list[tuple[Entry, int]]:
        with _doing("read", segment.path):
            data = memoryview(segment.path.read_bytes())
        commit = self._hard_state.commit
        records: list[tuple[Entry, int]] = []
        expected = segment.first_index
        offset = 0
        while offset < len(data):
            problem = _record_problem(data, offset)
            if problem is not None:
                if expected <= commit:
                    # A torn write can only hit an entry no durable commit covers yet
                    # (the hard state is written after its entries are fsynced).
                    raise StorageCorruptionError(
                        segment.path, offset,
                        f"{problem} in the record of entry {expected}, at or below the "
                        f"saved commit index {commit}",
                    )
                if is_last and not _valid_record_after(data, offset + 1, expected):
                    dropped = len(data) - offset
                    logger.warning(
                        "%s: dropping torn record at byte offset %d (%s): %d bytes dropped",
                        segment.path, offset, problem, dropped,
                    )
                    with _doing("truncate", segment.path):
                        os.truncate(segment.path, offset)
                    if self._sync:
                        with _doing("fsync", segment.path):
                            fd = os.open(segment.path, os.O_WRONLY)
                            try:
                                os.fsync(fd)
                            finally:
                                os.close(fd)
                    break
                where = "followed by valid records" if is_last else "in a segment before the last"
                raise StorageCorruptionError(segment.path, offset, f"{problem} {where}")
            length, _ = _HEADER.unpack_from(data, offset)
            try:
                entry = _unpack_entry(data[offset + 8 : offset + 8 + length])
            except ValueError as exc:
                raise StorageCorruptionError(segment.path, offset, f"bad entry ({exc})") from None
            if entry.index != expected:
                raise StorageCorruptionError(
                    segment.path, offset, f"entry index {entry.index} where {expected} belongs"
                )
            records.append((entry, offset))
            expected += 1
            offset += 8 + length
        segment.size = offset
        return records

    def _attach_to_snapshot(
        self, wal: list[tuple[Entry, _Segment, int]]
    ) -> list[tuple[Entry, _Segment, int]]:
        """The part of the WAL that is the log after the snapshot.

        WAL entries at or below the snapshot index are ones a compaction covered (a segment
        straddling the snapshot, or a removal a crash interrupted); if the WAL's entry *at*
        the snapshot index has another term, the WAL is what an installed snapshot
        replaced, before a crash stopped its removal. A WAL starting past the snapshot's
        next index is missing entries: that is damage, not a crash.
        """
        if not wal:
            return []
        snapshot_index = self._snapshot.index if self._snapshot else 0
        first = wal[0][0].index
        if first > snapshot_index + 1:
            raise StorageCorruptionError(
                wal[0][1].path, 0,
                f"log gap: the log starts at index {first} but the snapshot ends at "
                f"{snapshot_index}",
            )
        if wal[-1][0].index < snapshot_index:
            return []  # all covered by the snapshot (a removal a crash interrupted)
        if first <= snapshot_index:
            assert self._snapshot is not None
            if wal[snapshot_index - first][0].term != self._snapshot.term:
                logger.info(
                    "%s: removing log entries %d..%d replaced by snapshot %d (term %d)",
                    self.directory, first, wal[-1][0].index, snapshot_index,
                    self._snapshot.term,
                )
                return []
        # keep the trailing entries at and before the snapshot index
        return wal[max(0, snapshot_index - self.trailing_logs + 1 - first) :]

    def _check_against_hard_state(
        self, path: Path, kept: list[tuple[Entry, _Segment, int]]
    ) -> None:
        """Refuse a log the saved hard state proves damaged: shorter than the commit
        index (a segment deleted, or cut at a record boundary), or holding a term the
        server never reached (writes of a term follow the term's own write)."""
        state = self._hard_state
        snapshot = self._snapshot
        last_index = max(kept[-1][0].index if kept else 0, snapshot.index if snapshot else 0)
        if state.commit > last_index:
            raise StorageCorruptionError(
                path, None,
                f"the saved commit index {state.commit} is past the last durable log "
                f"entry {last_index} (log entries are missing)",
            )
        if kept and kept[-1][0].index >= last_index:
            entry, segment, _ = kept[-1]
            where: Path = segment.path
            last_term, what = entry.term, f"entry {entry.index}"
        elif snapshot is not None:
            where = self.directory / _snapshot_name(snapshot)
            last_term, what = snapshot.term, f"snapshot {snapshot.index}"
        else:
            return
        if last_term > state.term:
            raise StorageCorruptionError(
                where, None,
                f"the log's last {what} has term {last_term}, above the saved term "
                f"{state.term} in {path.name}",
            )

    # ------------------------------------------------------------------ log helpers

    def _segments_before(self, keep_from: _Segment | None) -> list[_Segment]:
        """The segments holding only entries before ``keep_from`` (all if None)."""
        before = []
        for segment in self._segments:
            if segment is keep_from:
                break
            before.append(segment)
        return before

    def _offset(self) -> int:
        return self._snapshot.index if self._snapshot else 0

    def _term_at(self, index: int) -> int | None:
        if not self._entries:
            return None
        position = index - self._entries[0].index
        if 0 <= position < len(self._entries):
            return self._entries[position].term
        return None


# ---------------------------------------------------------------------- records


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _record_problem(data: memoryview, offset: int) -> str | None:
    """Why the record at ``offset`` is unreadable, or None if it is whole and intact."""
    remaining = len(data) - offset
    if remaining < _HEADER.size:
        return "partial record header"
    length, crc = _HEADER.unpack_from(data, offset)
    if length == 0:
        return "empty record"
    if length > remaining - _HEADER.size:
        return "partial record payload"
    if zlib.crc32(data[offset + 8 : offset + 8 + length]) != crc:
        return "checksum mismatch"
    return None


def _valid_record_after(data: memoryview, start: int, expected: int) -> bool:
    """Whether an intact entry record (of index ``expected`` or later) begins anywhere
    at or after ``start``: if one does, the bad record before it is not a torn tail but
    damage in the middle of the log."""
    for offset in range(start, len(data) - _HEADER.size + 1):
        if _record_problem(data, offset) is None:
            length, _ = _HEADER.unpack_from(data, offset)
            try:
                entry = _unpack_entry(data[offset + 8 : offset + 8 + length])
            except ValueError:
                continue
            if entry.index >= expected:
                return True
    return False


def _unpack(payload: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ValueError(f"not msgpack: {exc}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: packs entry records on the event loop's thread (``msgpack.packb`` builds a Packer per
#: call); the same bytes as ``msgpack.packb``. Snapshot files, written by worker
#: threads, use a Packer of their own.
_ENTRY_PACKER = msgpack.Packer(use_bin_type=True)


def _pack_entry(entry: Entry) -> bytes:
    """An entry record's payload (``FileStorage._append`` builds the same inline)."""
    return _ENTRY_PACKER.pack([entry.term, entry.index, int(entry.kind), entry.data])


def _unpack_entry(payload: bytes | memoryview) -> Entry:
    fields = _unpack(payload)
    if not (isinstance(fields, list) and len(fields) == 4):
        raise ValueError("not [term, index, kind, data]")
    term, index, kind, data = fields
    if not (_is_int(term) and _is_int(index) and _is_int(kind) and isinstance(data, bytes)):
        raise ValueError("not [term, index, kind, data]")
    return Entry(term, index, EntryKind(kind), data)  # EntryKind raises ValueError


def _pack_hard_state(state: HardState) -> bytes:
    return msgpack.packb([state.term, state.voted_for, state.commit])


def _read_hard_state(path: Path) -> HardState:
    fields = _unpack_file(path)
    if (
        isinstance(fields, list)
        and len(fields) == 3
        and _is_int(fields[0])
        and (fields[1] is None or isinstance(fields[1], str))
        and _is_int(fields[2])
    ):
        return HardState(fields[0], fields[1], fields[2])
    raise StorageCorruptionError(path, _HEADER.size, "not a hard state [term, vote, commit]")


def _snapshot_name(snapshot: Snapshot) -> str:
    return f"snapshot-{snapshot.index}-{snapshot.term}.bin"


def _write_snapshot_file(path: Path, snapshot: Snapshot, *, sync: bool) -> None:
    """Create ``path`` holding the snapshot as one record (``[index, term, configuration,
    data]``, exactly what ``msgpack.packb`` makes of that list) and fsync it if ``sync``.

    The data is written as it is, without building the record in memory: packing or
    framing a 200 MiB snapshot is a copy that holds the GIL, while ``zlib.crc32``,
    ``os.write`` and ``os.fsync`` release it, so a worker thread writing a snapshot
    leaves the event loop free."""
    data = snapshot.data
    packer = msgpack.Packer(use_bin_type=True)  # one per call: threads write snapshots
    prefix = b"".join([packer.pack_array_header(4), packer.pack(snapshot.index),
                       packer.pack(snapshot.term), packer.pack(snapshot.configuration),
                       _bin_header(len(data))])
    header = _HEADER.pack(len(prefix) + len(data), zlib.crc32(data, zlib.crc32(prefix)))
    with _doing("open", path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with _doing("write", path):
            _write_all(fd, header + prefix)
            _write_all(fd, data)
        if sync:
            with _doing("fsync", path):
                os.fsync(fd)
    finally:
        os.close(fd)


def _bin_header(length: int) -> bytes:
    """The msgpack bin header for ``length`` bytes (the smallest, as packb chooses)."""
    if length < 1 << 8:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 1 << 16:
        return b"\xc5" + length.to_bytes(2, "big")
    if length < 1 << 32:
        return b"\xc6" + length.to_bytes(4, "big")
    raise ValueError(f"a snapshot of {length} bytes is over msgpack's 4 GiB bin limit")


def _read_snapshot(index: int, term: int, path: Path) -> Snapshot:
    fields = _unpack_file(path)
    if (
        isinstance(fields, list)
        and len(fields) == 4
        and fields[:2] == [index, term]
        and isinstance(fields[2], bytes)
        and isinstance(fields[3], bytes)
    ):
        return Snapshot(index, term, fields[2], fields[3])
    raise StorageCorruptionError(
        path, _HEADER.size, f"not a snapshot [index={index}, term={term}, configuration, data]"
    )


def _unpack_file(path: Path) -> Any:
    """The payload of a file that holds exactly one record (written atomically, so any
    damage is corruption, never a torn write)."""
    with _doing("read", path):
        data = memoryview(path.read_bytes())
    problem = _record_problem(data, 0)
    if problem is None and _HEADER.unpack_from(data, 0)[0] + _HEADER.size != len(data):
        problem = "trailing bytes after the record"
    if problem is not None:
        raise StorageCorruptionError(path, 0, problem)
    try:
        return _unpack(data[_HEADER.size :])
    except ValueError as exc:
        raise StorageCorruptionError(path, _HEADER.size, str(exc)) from None


_PROBE = ".raftsim-write-probe"


def probe_writable(directory: Path) -> None:
    """Create, write, fsync and remove a file in ``directory`` (made if missing): a
    server checks this before it starts, so that a read-only or full data directory
    stops it at once instead of at its first vote. Raises StorageError."""
    directory = Path(directory)
    with _doing("mkdir", directory):
        directory.mkdir(parents=True, exist_ok=True)
    probe = directory / _PROBE
    with _doing("open", probe):
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with _doing("write", probe):
            _write_all(fd, b"raftsim")
        with _doing("fsync", probe):
            os.fsync(fd)
    finally:
        os.close(fd)
        with _doing("remove", probe):
            os.remove(probe)


@contextmanager
def _doing(operation: str, path: Path) -> Iterator[None]:
    """Turn an OSError of ``operation`` on ``path`` into a StorageError naming both."""
    try:
        yield
    except OSError as exc:
        raise StorageError.from_os_error(operation, path, exc) from exc


def _remove(path: Path) -> None:
    with _doing("remove", path):
        os.remove(path)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


__all__ = ["FileStorage", "MiB", "StorageCorruptionError", "StorageError", "probe_writable"]
