"""FileStorage: durable across reopen, torn tails dropped, damage refused, and the same
answers as MemoryStorage for any sequence of saves."""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import raftsim.storage.file as file_module
from raftsim.core.messages import Entry, EntryKind, HardState, Snapshot
from raftsim.storage.base import PersistentState, StorageError
from raftsim.storage.file import FileStorage, StorageCorruptionError, probe_writable
from raftsim.storage.memory import MemoryStorage

#: a hard state whose term is above every entry's in these tests
TERM = HardState(9)


def entries(first: int, last: int, term: int = 1, size: int = 8) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, EntryKind.COMMAND, bytes([i % 256]) * size)
                 for i in range(first, last + 1))


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("wal-*.log"))


def record_offsets(path: Path) -> list[int]:
    """Where each framed record starts (length, CRC, payload)."""
    data = path.read_bytes()
    offsets, pos = [], 0
    while pos + 8 <= len(data):
        offsets.append(pos)
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 8 + length
    return offsets


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@contextmanager
def opened(directory: Path, **options: Any) -> Iterator[FileStorage]:
    storage = FileStorage(directory, **options)
    try:
        yield storage
    finally:
        storage.close()


def reload(directory: Path, **options: Any) -> PersistentState:
    with opened(directory, **options) as storage:
        return storage.load()


class Disk:
    """A data directory and the MemoryStorage it must agree with."""

    def __init__(self, directory: Path, **options: Any) -> None:
        self.directory = directory
        self.options = options
        self.memory = MemoryStorage()
        self.fresh = True

    def save(self, *saves: tuple[Any, ...]) -> PersistentState:
        """Open, apply ``saves`` to both, compare, close; return the expected state.
        A fresh disk first gets the hard state of a term above every test entry's (a
        Raft server never writes an entry of a term it has not reached)."""
        if self.fresh:
            self.fresh = False
            saves = ((TERM, (), None), *saves)
        with opened(self.directory, **self.options) as storage:
            for hard_state, batch, snapshot in saves:
                storage.save(hard_state, batch, snapshot)
                self.memory.save(hard_state, batch, snapshot)
                assert storage.load() == self.memory.load()
        return self.memory.load()

    def reload(self) -> PersistentState:
        return reload(self.directory, **self.options)


# ---------------------------------------------------------------------- round trips


def test_a_missing_directory_is_created_and_starts_empty(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    assert reload(directory) == PersistentState()
    assert directory.is_dir()


def test_hard_state_entries_and_snapshot_survive_reopen(tmp_path: Path) -> None:
    disk = Disk(tmp_path)
    snapshot = Snapshot(3, 1, b"config", b"state machine")
    expected = disk.save(
        (HardState(1, "a", 0), entries(1, 5), None),
        (HardState(2, "b", 4), (Entry(2, 6, EntryKind.NOOP),), snapshot),
        (None, (Entry(2, 7, EntryKind.CONFIGURATION, b"c"),), None),
    )
    assert expected.snapshot == snapshot
    assert [e.index for e in expected.entries] == [4, 5, 6, 7]
    assert disk.reload() == expected
    assert disk.reload() == expected  # recovery is idempotent


def test_unknown_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("notes")
    (tmp_path / "wal-1.log").write_bytes(b"not ours: wrong name")
    disk = Disk(tmp_path)
    expected = disk.save((HardState(1), entries(1, 3), None))
    assert disk.reload() == expected
    assert (tmp_path / "README").read_text() == "notes"


def test_an_unchanged_hard_state_is_not_rewritten(tmp_path: Path) -> None:
    disk = Disk(tmp_path)
    disk.save((HardState(1, "a", 0), entries(1, 2), None))
    before = (tmp_path / "hardstate.bin").stat().st_ino
    disk.save((HardState(1, "a", 0), (), None))
    assert (tmp_path / "hardstate.bin").stat().st_ino == before
    disk.save((HardState(1, "a", 1), (), None))
    assert (tmp_path / "hardstate.bin").stat().st_ino != before  # replaced by rename


# ---------------------------------------------------------------------- segments


def first_index(name: str) -> int:
    return int(name.removeprefix("wal-").removesuffix(".log"))


def test_the_log_rotates_into_segments_named_by_first_index(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60)
    expected = disk.save((None, entries(1, 10), None), (None, entries(11, 20), None))
    names = segments(tmp_path)
    assert len(names) > 3
    next_index = 1
    for name in names:
        assert first_index(name) == next_index
        records = len(record_offsets(tmp_path / name))
        size = (tmp_path / name).stat().st_size
        assert size - size // records < 60 <= size or name == names[-1]  # rotated past 60
        next_index += records
    assert next_index == 21
    assert disk.reload() == expected


def test_conflict_truncation_across_a_segment_boundary(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60)
    disk.save((None, entries(1, 20), None))
    before = segments(tmp_path)
    assert first_index(before[1]) < 5 < first_index(before[2])  # 5 is mid-segment
    # Replace 5..20 with a shorter, newer suffix: later segments go, one is cut.
    expected = disk.save((None, entries(5, 7, term=2), None))
    assert expected.entries == list(entries(1, 4)) + list(entries(5, 7, term=2))
    after = segments(tmp_path)
    assert after[:2] == before[:2] and len(after) < len(before)
    assert disk.reload() == expected


def test_conflict_truncation_at_the_first_entry_of_a_segment(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60)
    disk.save((None, entries(1, 20), None))
    second = segments(tmp_path)[1]
    expected = disk.save((None, entries(first_index(second), first_index(second), 3), None))
    assert segments(tmp_path)[-1] == second
    assert disk.reload() == expected


def test_compaction_deletes_covered_segments_and_older_snapshots(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60)
    disk.save((None, entries(1, 30), None))
    before = segments(tmp_path)
    expected = disk.save((None, (), Snapshot(12, 1, b"c", b"s12")))
    remaining = segments(tmp_path)
    assert remaining == before[len(before) - len(remaining) :]
    # The first kept segment is the one holding entry 13; every deleted one ended <= 12.
    assert first_index(remaining[0]) <= 13
    assert len(remaining) == 1 or first_index(remaining[1]) > 13
    assert [e.index for e in expected.entries] == list(range(13, 31))
    assert sorted(p.name for p in tmp_path.glob("snapshot-*")) == ["snapshot-12-1.bin"]

    expected = disk.save((None, (), Snapshot(25, 1, b"c", b"s25")))
    assert sorted(p.name for p in tmp_path.glob("snapshot-*")) == ["snapshot-25-1.bin"]
    assert first_index(segments(tmp_path)[0]) <= 26
    assert disk.reload() == expected


def test_a_snapshot_that_does_not_match_replaces_the_whole_log(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60)
    disk.save((None, entries(1, 30), None))
    expected = disk.save((None, (), Snapshot(10, 7, b"c", b"s")))
    assert expected.entries == [] and segments(tmp_path) == []
    expected = disk.save((None, entries(11, 12, term=7), None))
    assert segments(tmp_path) == [f"wal-{11:020d}.log"]
    assert disk.reload() == expected


def test_compacting_the_whole_log_leaves_no_segments(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60)
    disk.save((None, entries(1, 10), None))
    expected = disk.save((None, (), Snapshot(10, 1, b"c")))
    assert expected.entries == [] and segments(tmp_path) == []
    assert disk.reload() == expected


def test_saves_no_raft_node_makes_are_refused(tmp_path: Path) -> None:
    with opened(tmp_path) as storage:
        with pytest.raises(ValueError, match="an entry or snapshot of term 1 cannot be saved "
                                             "while the term is 0"):
            storage.save(None, entries(1, 5), None)  # an entry of a term not yet reached
        storage.save(TERM, entries(1, 5), None)
        storage.save(None, (), Snapshot(2, 1, b""))
        with pytest.raises(ValueError, match="do not attach"):
            storage.save(None, entries(9, 9), None)  # a gap
        with pytest.raises(ValueError, match="do not attach"):
            storage.save(None, entries(2, 3), None)  # below the snapshot
        with pytest.raises(ValueError, match="not contiguous"):
            storage.save(None, entries(6, 6) + entries(8, 8), None)
        with pytest.raises(ValueError, match="does not follow"):
            storage.save(None, (), Snapshot(2, 1, b""))
        assert [e.index for e in storage.load().entries] == [3, 4, 5]


def test_a_closed_storage_refuses_calls(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.close()
    with pytest.raises(RuntimeError, match="closed"):
        storage.load()
    with pytest.raises(RuntimeError, match="closed"):
        storage.save(HardState(1), (), None)


# ---------------------------------------------------------------------- fsync


@pytest.mark.parametrize("policy", ["always", "never"])
def test_fsync_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)

    def fsyncs(save: Callable[[], object]) -> int:
        calls.clear()
        save()
        return len(calls)

    with opened(tmp_path, fsync=policy) as storage:
        storage.save(HardState(1, "a", 0), (), None)
        first = fsyncs(lambda: storage.save(None, entries(1, 3), None))  # creates a segment
        group = fsyncs(lambda: storage.save(None, entries(4, 50), None))
        hard = fsyncs(lambda: storage.save(HardState(1, "a", 3), (), None))
        both = fsyncs(lambda: storage.save(HardState(2, "a", 50), entries(51, 60), None))
    if policy == "always":
        # +dir; ONE for 47 entries; tmp+dir; the new term first (tmp+dir), the entries,
        # then the commit index (tmp+dir)
        assert (first, group, hard, both) == (2, 1, 2, 5)
    else:
        assert (first, group, hard, both) == (0, 0, 0, 0)
        assert fsyncs(lambda: reload(tmp_path, fsync="never")) == 0


# ---------------------------------------------------------------------- torn tails


def torn_by_cutting(path: Path, last: int) -> int:
    os.truncate(path, last + 11)  # mid-payload of the last record
    return last


def torn_by_garbage(path: Path, last: int) -> int:
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\xde\xad\xbe\xef\x00\x01")  # a partial header
    return size


def torn_by_long_garbage(path: Path, last: int) -> int:
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\xff" * 40)  # a header claiming 4 GiB
    return size


def torn_by_bit_flip(path: Path, last: int) -> int:
    flip_bit(path, path.stat().st_size - 3)  # in the last record's payload
    return last


def torn_by_zeros(path: Path, last: int) -> int:
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(bytes(4096))  # a preallocated block the crash never filled
    return size


@pytest.mark.parametrize(
    "tear", [torn_by_cutting, torn_by_garbage, torn_by_long_garbage, torn_by_bit_flip,
             torn_by_zeros])
def test_a_torn_tail_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tear: Callable[[Path, int], int]
) -> None:
    disk = Disk(tmp_path)
    disk.save((None, entries(1, 5), None))
    (path,) = tmp_path.glob("wal-*.log")
    last = record_offsets(path)[-1]
    cut = tear(path, last)
    size = path.stat().st_size
    with caplog.at_level(logging.WARNING, logger="raftsim.storage.file"):
        state = reload(tmp_path)
    survivors = 4 if cut == last else 5
    assert state.entries == list(entries(1, survivors))
    assert path.stat().st_size == cut
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning.getMessage()
    assert f"offset {cut}" in warning.getMessage()
    assert f"{size - cut} bytes dropped" in warning.getMessage()

    # The log continues where the good records end, and the next start is clean.
    caplog.clear()
    disk.memory = MemoryStorage()
    disk.memory.save(TERM, entries(1, survivors), None)
    expected = disk.save((None, entries(survivors + 1, 8, term=2), None))
    assert disk.reload() == expected
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_segment_left_empty_by_a_crash_is_removed(tmp_path: Path) -> None:
    expected = Disk(tmp_path).save((None, entries(1, 5), None))
    (tmp_path / f"wal-{6:020d}.log").write_bytes(b"\x00\x00\x00")
    assert reload(tmp_path) == expected
    assert segments(tmp_path) == [f"wal-{1:020d}.log"]


# ---------------------------------------------------------------------- damage


def assert_refused(directory: Path, path: Path, offset: int, **options: Any) -> None:
    with pytest.raises(StorageCorruptionError) as caught:
        FileStorage(directory, **options)
    message = str(caught.value)
    assert str(path) in message
    assert f"byte offset {offset}" in message
    assert "must be repaired or removed" in message
    assert isinstance(caught.value, RuntimeError)


def test_a_bad_record_followed_by_valid_ones_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((None, entries(1, 5), None))
    (path,) = tmp_path.glob("wal-*.log")
    second = record_offsets(path)[1]
    flip_bit(path, second + 10)
    assert_refused(tmp_path, path, second)


def test_a_damaged_length_in_the_middle_is_not_taken_for_a_torn_tail(tmp_path: Path) -> None:
    Disk(tmp_path).save((None, entries(1, 5), None))
    (path,) = tmp_path.glob("wal-*.log")
    second = record_offsets(path)[1]
    flip_bit(path, second + 1)  # the length now runs past the end of the file
    assert_refused(tmp_path, path, second)


def test_damage_in_a_segment_before_the_last_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path, segment_bytes=60).save((None, entries(1, 20), None))
    path = tmp_path / segments(tmp_path)[0]
    last = record_offsets(path)[-1]
    flip_bit(path, path.stat().st_size - 2)  # its last record: not a torn tail here
    assert_refused(tmp_path, path, last, segment_bytes=60)


def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path, segment_bytes=60).save((None, entries(1, 20), None))
    names = segments(tmp_path)
    (tmp_path / names[1]).unlink()
    assert_refused(tmp_path, tmp_path / names[2], 0)


def test_a_log_that_does_not_reach_back_to_the_snapshot_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path, segment_bytes=60).save((None, entries(1, 20), None))
    names = segments(tmp_path)
    (tmp_path / names[0]).unlink()
    assert_refused(tmp_path, tmp_path / names[1], 0)


def test_an_entry_out_of_sequence_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((None, entries(1, 3), None))
    (path,) = tmp_path.glob("wal-*.log")
    with path.open("ab") as f:  # a whole, checksummed record with the wrong index
        f.write(file_module._frame(file_module._pack_entry(Entry(1, 7))))
    assert_refused(tmp_path, path, record_offsets(path)[-1])


@pytest.mark.parametrize("name", ["hardstate.bin", "snapshot-3-1.bin"])
def test_a_damaged_hard_state_or_snapshot_is_refused(tmp_path: Path, name: str) -> None:
    Disk(tmp_path).save((HardState(1, "a", 3), entries(1, 5), None),
                        (None, (), Snapshot(3, 1, b"c", b"data")))
    flip_bit(tmp_path / name, (tmp_path / name).stat().st_size - 1)
    assert_refused(tmp_path, tmp_path / name, 0)


def test_a_truncated_hard_state_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(1, "a", 0), (), None))
    os.truncate(tmp_path / "hardstate.bin", 5)
    assert_refused(tmp_path, tmp_path / "hardstate.bin", 0)


# ---------------------------------------------------------------------- crashes


class Crash(Exception):
    pass


class CrashingOs:
    """``os`` for file.py, dying (like a killed process) before its n-th write-side call."""

    CALLS = frozenset({"open", "write", "fsync", "replace", "remove", "ftruncate", "truncate"})

    def __init__(self, crash_at: int) -> None:
        self.crash_at = crash_at
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.CALLS:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.calls == self.crash_at:
                raise Crash(name)
            self.calls += 1
            return real(*args, **kwargs)

        return call


SCENARIOS: dict[str, tuple[list[tuple[Any, ...]], tuple[Any, ...]]] = {
    "append across a rotation": (
        [(HardState(1, "a", 0), entries(1, 4), None)],
        (HardState(1, "a", 4), entries(5, 12), None),
    ),
    "truncate across a segment boundary": (
        [(HardState(1, "a", 2), entries(1, 20), None)],
        (HardState(2, "b", 2), entries(4, 6, term=2), None),
    ),
    "compaction": (
        [(HardState(1, "a", 0), entries(1, 20), None), (None, (), Snapshot(3, 1, b"c", b"old"))],
        (HardState(1, "a", 18), entries(21, 22), Snapshot(15, 1, b"c", b"new")),
    ),
    "snapshot install conflicting inside the log": (
        [(HardState(1, "a", 0), entries(1, 20), None), (None, (), Snapshot(3, 1, b"c", b"old"))],
        (HardState(2, "b", 15), entries(16, 17, term=2), Snapshot(15, 2, b"c", b"new")),
    ),
    "snapshot install past the log": (
        [(HardState(1, "a", 0), entries(1, 20), None), (None, (), Snapshot(3, 1, b"c", b"old"))],
        (HardState(3, "b", 25), entries(26, 27, term=3), Snapshot(25, 2, b"c", b"new")),
    ),
}


@pytest.mark.parametrize("staged", [False, True], ids=["written-by-save", "staged-first"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_crash_anywhere_in_save_recovers_a_state_in_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, staged: bool
) -> None:
    """``staged``: the snapshot is first written by stage_snapshot (as a live server does
    in a worker thread), and a crash may also hit that write or the gap before save."""
    setup, (hard_state, batch, snapshot) = SCENARIOS[scenario]
    memory = MemoryStorage()
    for save in setup:
        memory.save(*save)
    pre = memory.load()
    memory.save(None, (), snapshot)
    mid = memory.load()
    memory.save(hard_state, batch, None)
    post = memory.load()
    base = batch[0].index - 1 - (mid.snapshot.index if mid.snapshot else 0)

    crash_at = 0
    while True:
        directory = tmp_path / str(crash_at)
        Disk(directory, segment_bytes=60).save(*setup)
        storage = FileStorage(directory, segment_bytes=60)
        crashing = CrashingOs(crash_at)
        with monkeypatch.context() as patch:
            patch.setattr(file_module, "os", crashing)
            try:
                if staged and snapshot is not None:
                    storage.stage_snapshot(snapshot)
                storage.save(hard_state, batch, snapshot)
                finished = True
            except Crash:
                finished = False
            storage.close()
        got = reload(directory, segment_bytes=60)
        if finished:
            assert got == post
            break
        # a new term is written before anything else, with the old commit index
        new_term = HardState(post.hard_state.term, post.hard_state.voted_for,
                             pre.hard_state.commit)
        assert got.hard_state in (pre.hard_state, new_term, post.hard_state)
        if got.hard_state == post.hard_state and post.hard_state != new_term:
            assert got == post  # the commit index is written last
        if got != post:
            if got.snapshot != mid.snapshot:
                assert (got.snapshot, got.entries) == (pre.snapshot, pre.entries)
            else:
                n = len(got.entries)
                assert n >= base, "entries the save did not replace were lost"
                assert got.entries in (mid.entries[:n], post.entries[:n])
        assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
        crash_at += 1
    assert crash_at > 5


# ---------------------------------------------------------------------- staged snapshots


def test_a_crash_between_staging_a_snapshot_and_saving_it_recovers_the_state_before(
        tmp_path: Path) -> None:
    before = Disk(tmp_path).save((HardState(9, "a", 10), entries(1, 20), None))
    with opened(tmp_path) as storage:
        storage.stage_snapshot(Snapshot(15, 1, b"c", b"state" * 1000))
        assert storage.load() == before  # staged is not stored
    # the process dies here, before the save() that would have published it
    assert reload(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hardstate.bin", *segments(tmp_path)]


def test_a_staged_snapshot_is_published_without_writing_its_bytes_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = Snapshot(15, 1, b"c", bytes(range(256)) * 4000)
    (tmp_path / "unstaged").mkdir()
    Disk(tmp_path / "unstaged").save((HardState(9, "a", 10), entries(1, 20), None),
                                     (None, (), snapshot))
    expected = (tmp_path / "unstaged" / "snapshot-15-1.bin").read_bytes()
    directory = tmp_path / "staged"
    disk = Disk(directory)
    disk.save((HardState(9, "a", 10), entries(1, 20), None))
    written: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: Any) -> int:
        written.append(len(data))
        return real_write(fd, data)

    with opened(directory) as storage:
        storage.stage_snapshot(snapshot)
        monkeypatch.setattr(os, "write", counting_write)
        storage.save(HardState(9, "a", 18), entries(21, 22), snapshot)
        monkeypatch.undo()
    assert sum(written) < 1000  # the new entries and hard state, not the snapshot
    assert (directory / "snapshot-15-1.bin").read_bytes() == expected
    got = reload(directory)
    assert got.snapshot == snapshot
    assert [e.index for e in got.entries] == list(range(16, 23))
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_a_staged_snapshot_a_newer_one_overtook_is_removed(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(9, "a", 10), entries(1, 20), None))
    with opened(tmp_path) as storage:
        storage.stage_snapshot(Snapshot(12, 1, b"c", b"older"))
        storage.stage_snapshot(Snapshot(15, 1, b"c", b"newer"))
        storage.save(None, (), Snapshot(15, 1, b"c", b"newer"))
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "hardstate.bin", "snapshot-15-1.bin", *segments(tmp_path)]


# ---------------------------------------------------------------------- model check


@st.composite
def save_calls(draw: st.DrawFn, memory: MemoryStorage) -> tuple[Any, ...]:
    """One save() a Raft node could make, given what ``memory`` holds: the term never
    falls and covers every entry's, committed entries are never truncated, a snapshot
    from a leader lies at or past the commit index, the commit index stays within the
    log."""
    state = memory.load()
    stored = state.hard_state
    offset = state.snapshot.index if state.snapshot else 0
    last = memory.last_index
    commit = stored.commit
    term = max(stored.term, 1)
    if draw(st.booleans()):
        term = draw(st.integers(term, 9))
    snapshot = None
    if draw(st.integers(0, 4)) == 0:
        index = draw(st.integers(max(offset + 1, commit), last + 3))
        term_at = {e.index: e.term for e in state.entries}.get(index)
        if term_at is not None and draw(st.booleans()):
            snapshot_term = term_at  # compaction
        else:
            snapshot_term = draw(st.integers(1, term))  # install (a compaction if equal)
        snapshot = Snapshot(index, snapshot_term, draw(st.binary(max_size=4)),
                            draw(st.binary(max_size=40)))
        offset = index
        if snapshot_term != term_at:
            last = index
    batch: tuple[Entry, ...] = ()
    if draw(st.integers(0, 3)) != 0 and max(offset, commit) <= last:
        first = draw(st.integers(max(offset, commit) + 1, last + 1))
        count = draw(st.integers(1, 6))
        entry_term = draw(st.integers(1, term))
        batch = tuple(
            Entry(entry_term, first + i, draw(st.sampled_from(EntryKind)),
                  draw(st.binary(max_size=30)))
            for i in range(count)
        )
        last = batch[-1].index
    hard_state = None
    if term != stored.term or draw(st.booleans()):
        vote = (draw(st.sampled_from([None, "a", "b"])) if term != stored.term
                else stored.voted_for)
        hard_state = HardState(term, vote, draw(st.integers(commit, max(commit, last))))
    return hard_state, batch, snapshot


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from([40, 100, 8 * 1024 * 1024]), st.sampled_from([0, 3]))
def test_file_storage_answers_like_memory_storage(data: st.DataObject, segment_bytes: int,
                                                  trailing_logs: int) -> None:
    memory = MemoryStorage(trailing_logs=trailing_logs)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        options = {"segment_bytes": segment_bytes, "trailing_logs": trailing_logs}
        storage = FileStorage(directory, **options)
        try:
            for _ in range(data.draw(st.integers(1, 25))):
                call = data.draw(save_calls(memory))
                storage.save(*call)
                memory.save(*call)
                assert storage.load() == memory.load()
                if data.draw(st.integers(0, 3)) == 0:
                    storage.close()
                    storage = FileStorage(directory, **options)
                    assert storage.load() == memory.load()
        finally:
            storage.close()
        assert reload(directory, **options) == memory.load()


# ---------------------------------------------------------------------- strict recovery

REPAIR = "; the data directory must be repaired or removed before this server can start"


def refusal(directory: Path, **options: Any) -> str:
    with pytest.raises(StorageCorruptionError) as caught:
        FileStorage(directory, **options)
    return str(caught.value)


def test_a_commit_index_past_a_log_cut_at_a_record_boundary_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(9, "a", 5), entries(1, 5), None))
    (path,) = tmp_path.glob("wal-*.log")
    os.truncate(path, record_offsets(path)[3])  # entries 1..3 survive, whole
    assert refusal(tmp_path) == (
        f"{tmp_path / 'hardstate.bin'}: the saved commit index 5 is past the last durable "
        f"log entry 3 (log entries are missing){REPAIR}")


def test_a_commit_index_past_a_deleted_last_segment_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path, segment_bytes=60).save((HardState(9, "a", 20), entries(1, 20), None))
    doomed = segments(tmp_path)[-1]
    first_lost = int(doomed[4:24])
    os.remove(tmp_path / doomed)
    assert refusal(tmp_path, segment_bytes=60) == (
        f"{tmp_path / 'hardstate.bin'}: the saved commit index 20 is past the last durable "
        f"log entry {first_lost - 1} (log entries are missing){REPAIR}")


def test_a_log_term_above_the_saved_term_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(3, "a", 2), entries(1, 5, term=3), None))
    # the hard state of an older term, as if hardstate.bin were restored from a backup
    (tmp_path / "hardstate.bin").write_bytes(
        file_module._frame(file_module._pack_hard_state(HardState(2, "a", 2))))
    (path,) = tmp_path.glob("wal-*.log")
    assert refusal(tmp_path) == (
        f"{path}: the log's last entry 5 has term 3, above the saved term 2 in "
        f"hardstate.bin{REPAIR}")


def test_a_snapshot_term_above_the_saved_term_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(4, "a", 5), entries(1, 5, term=4), None),
                        (None, (), Snapshot(5, 4, b"c", b"s")))
    (tmp_path / "hardstate.bin").write_bytes(
        file_module._frame(file_module._pack_hard_state(HardState(2, "a", 5))))
    assert refusal(tmp_path) == (
        f"{tmp_path / 'snapshot-5-4.bin'}: the log's last snapshot 5 has term 4, above the "
        f"saved term 2 in hardstate.bin{REPAIR}")


def test_a_missing_hard_state_beside_log_files_is_refused(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(9, "a", 3), entries(1, 5), None))
    os.remove(tmp_path / "hardstate.bin")
    assert refusal(tmp_path) == (
        f"{tmp_path / 'hardstate.bin'}: missing, but the directory holds "
        f"wal-{1:020d}.log (the term and vote this server had are lost: it could vote twice "
        f"in a term){REPAIR}")


def test_a_bad_committed_last_record_is_refused_not_dropped_as_a_torn_tail(
        tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(9, "a", 5), entries(1, 5), None))
    (path,) = tmp_path.glob("wal-*.log")
    last = record_offsets(path)[-1]
    flip_bit(path, path.stat().st_size - 1)
    size = path.stat().st_size
    assert refusal(tmp_path) == (
        f"{path}: checksum mismatch in the record of entry 5, at or below the saved commit "
        f"index 5 at byte offset {last}{REPAIR}")
    assert path.stat().st_size == size  # nothing was cut


def test_a_bad_record_past_the_commit_index_is_still_a_torn_tail(tmp_path: Path) -> None:
    Disk(tmp_path).save((HardState(9, "a", 4), entries(1, 5), None))
    (path,) = tmp_path.glob("wal-*.log")
    flip_bit(path, path.stat().st_size - 1)
    state = reload(tmp_path)
    assert state.entries == list(entries(1, 4)) and state.hard_state == HardState(9, "a", 4)


def test_a_new_term_reaches_the_disk_before_entries_of_that_term(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the entries and the hard state must not leave entries of a term
    the hard state does not know (recovery would refuse them)."""
    Disk(tmp_path).save((HardState(1, "a", 2), entries(1, 3), None))
    with opened(tmp_path) as storage, monkeypatch.context() as patch:
        patch.setattr(file_module, "os", CrashingOs(crash_at=6))  # after the term's write
        with pytest.raises(Crash):
            storage.save(HardState(10, "b", 4), entries(4, 5, term=10), None)
    state = reload(tmp_path)
    assert state.hard_state == HardState(10, "b", 2)


# ---------------------------------------------------------------------- storage errors


def test_a_failed_write_raises_a_storage_error_naming_file_operation_and_errno(
        tmp_path: Path) -> None:
    """A real failure: the file size limit (RLIMIT_FSIZE) makes write() fail with EFBIG."""
    import errno
    import resource
    import signal

    storage = FileStorage(tmp_path)
    storage.save(HardState(9), entries(1, 2), None)
    (path,) = tmp_path.glob("wal-*.log")
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, limits[1]))
    try:
        with pytest.raises(StorageError) as caught:
            storage.save(None, entries(3, 30, size=200), None)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    error = caught.value
    assert (error.operation, error.path, error.errno) == ("write", str(path), errno.EFBIG)
    assert str(error) == f"write {path}: [Errno {errno.EFBIG}] File too large"
    with pytest.raises(RuntimeError, match="failed during save"):
        storage.save(None, entries(3, 3), None)
    storage.close()
    assert reload(tmp_path).entries[:2] == list(entries(1, 2))


def test_the_writability_probe_names_what_failed(tmp_path: Path) -> None:
    import errno

    probe_writable(tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError) as caught:
        probe_writable(tmp_path / "file" / "data")
    assert caught.value.operation == "mkdir" and caught.value.errno in (errno.ENOTDIR,
                                                                         errno.EEXIST)


# ---------------------------------------------------------------------- trailing logs


def test_compaction_keeps_trailing_entries_on_disk_across_a_restart(tmp_path: Path) -> None:
    disk = Disk(tmp_path, segment_bytes=60, trailing_logs=5)
    disk.memory = MemoryStorage(trailing_logs=5)
    disk.save((None, entries(1, 30), None))
    expected = disk.save((None, (), Snapshot(20, 1, b"c", b"s20")))
    assert [e.index for e in expected.entries] == list(range(16, 31))
    assert int(segments(tmp_path)[0][4:24]) <= 16  # segments only before 16 were removed
    assert disk.reload() == expected
    # a restart with fewer trailing entries keeps fewer (and removes whole segments)
    state = reload(tmp_path, segment_bytes=60, trailing_logs=2)
    assert [e.index for e in state.entries] == list(range(19, 31))
