"""CrashDiskStorage: a crash loses exactly what a disk with a write cache would."""

from __future__ import annotations

import errno
import random

import pytest

from raftsim.core.messages import Entry, HardState, Snapshot
from raftsim.storage.base import PersistentState, StorageError
from raftsim.storage.crashdisk import CrashDiskStorage
from raftsim.storage.file import StorageCorruptionError
from raftsim.storage.memory import MemoryStorage


def entries(first: int, last: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, data=bytes([i % 256])) for i in range(first, last + 1))


def five_saves(disk: CrashDiskStorage | MemoryStorage) -> None:
    """Saves 1..5 write two entries each, and a new hard state each (whose commit index
    lags, as a follower's does, so it covers only synced entries)."""
    for n in range(5):
        disk.save(HardState(n + 1, "a", max(0, 2 * n - 4)), entries(2 * n + 1, 2 * n + 2),
                  None)


def test_it_answers_like_memory_storage_until_a_crash() -> None:
    disk, memory = CrashDiskStorage(random.Random(1), sync_every=3), MemoryStorage()
    for storage in (disk, memory):
        five_saves(storage)
        storage.save(None, entries(7, 8, term=2), None)  # a conflict in the unsynced tail
        storage.save(None, (), Snapshot(4, 1, b"c", b"s"))
        storage.save(None, entries(9, 9, term=2), None)
    assert disk.load() == memory.load()
    assert disk.hard_state == memory.hard_state and disk.last_index == memory.last_index


@pytest.mark.parametrize("seed", range(20))
def test_with_sync_every_save_a_crash_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    disk = CrashDiskStorage(rng)
    five_saves(disk)
    disk.save(None, entries(9, 12, term=2), None)
    before = disk.load()
    state = rng.getstate()
    assert disk.unsynced == 0
    assert disk.crash() == 0
    assert disk.load() == before
    assert rng.getstate() == state  # nothing to lose, no randomness drawn


def crashed(seed: int, sync_every: int = 3) -> tuple[PersistentState, PersistentState, int]:
    disk = CrashDiskStorage(random.Random(seed), sync_every=sync_every)
    five_saves(disk)  # saves 1-3 synced (entries 1..6); 4-5 (entries 7..10) are not
    before = disk.load()
    lost = disk.crash()
    return before, disk.load(), lost


@pytest.mark.parametrize("seed", range(40))
def test_with_sync_every_3_a_crash_loses_only_unsynced_entries(seed: int) -> None:
    before, after, lost = crashed(seed)
    assert before.entries == list(entries(1, 10))
    assert after.hard_state == HardState(5, "a", 4)  # hard state is always synced
    assert len(after.entries) >= 6  # saves 1..3 were synced
    assert after.entries == before.entries[: len(after.entries)]
    assert lost == 10 - len(after.entries)


def test_crashes_are_deterministic_per_seed_and_vary_across_seeds() -> None:
    outcomes = [crashed(seed) for seed in range(40)]
    assert outcomes == [crashed(seed) for seed in range(40)]
    assert {len(after.entries) for _, after, _ in outcomes} == {6, 7, 8, 9, 10}


def test_a_write_cache_that_survives_power_loss_loses_nothing() -> None:
    disk = CrashDiskStorage(random.Random(7), sync_every=3, lose_unsynced=False)
    five_saves(disk)
    before = disk.load()
    assert disk.unsynced == 4
    assert disk.crash() == 0
    assert disk.load() == before


def test_a_snapshot_syncs_what_was_written_before_it() -> None:
    disk = CrashDiskStorage(random.Random(3), sync_every=10)
    five_saves(disk)
    disk.save(None, (), Snapshot(4, 1, b"c", b"s"))
    assert disk.unsynced == 0
    disk.save(None, entries(11, 12), None)
    disk.crash()
    assert [e.index for e in disk.load().entries][:6] == [5, 6, 7, 8, 9, 10]


@pytest.mark.parametrize("seed", range(30))
def test_an_unsynced_conflict_truncation_recovers_a_prefix_of_one_log(seed: int) -> None:
    disk = CrashDiskStorage(random.Random(seed), sync_every=5)
    disk.save(None, entries(1, 6), None)
    disk.sync()
    disk.save(None, entries(4, 8, term=2), None)  # replaces 4..6, unsynced
    old, new = list(entries(1, 6)), list(entries(1, 3)) + list(entries(4, 8, term=2))
    disk.crash()
    got = disk.load().entries
    assert got in (old, new[: len(got)]) and len(got) >= 3


def test_the_write_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="sync_every"):
        CrashDiskStorage(random.Random(0), sync_every=0)


# ---------------------------------------------------------------------- faults


def test_a_hard_state_whose_commit_covers_unsynced_entries_syncs_them_first() -> None:
    """So the durable commit index never points past the durable log (strict recovery
    would refuse such a state, and a crash must never produce one)."""
    disk = CrashDiskStorage(random.Random(2), sync_every=10)
    disk.save(HardState(1), entries(1, 4), None)
    assert disk.unsynced == 4
    disk.save(HardState(1, None, 3), (), None)
    assert disk.unsynced == 0
    disk.crash()
    assert disk.load().hard_state.commit <= disk.last_index == 4


def test_an_open_fault_writes_nothing_and_names_file_operation_and_errno() -> None:
    disk = CrashDiskStorage(random.Random(1), name="s3")
    disk.save(HardState(1), entries(1, 2), None)
    before = disk.load()
    disk.fail_next("open")
    with pytest.raises(StorageError) as caught:
        disk.save(HardState(2), entries(3, 5), None)
    assert (caught.value.operation, caught.value.path, caught.value.errno) == (
        "open", "s3/wal", errno.EMFILE)
    assert str(caught.value) == "open s3/wal: [Errno 24] Too many open files"
    assert disk.load() == before and disk.faults == 1
    disk.save(HardState(2), entries(3, 5), None)  # one fault fails one save
    assert disk.last_index == 5


@pytest.mark.parametrize("seed", range(10))
def test_a_write_fault_leaves_a_prefix_and_an_fsync_fault_what_a_crash_leaves(
        seed: int) -> None:
    for operation in ("write", "fsync"):
        disk = CrashDiskStorage(random.Random(seed))
        disk.save(HardState(1), entries(1, 2), None)
        disk.fail_next(operation)
        with pytest.raises(StorageError, match=f"^{operation} disk/wal: "):
            disk.save(HardState(2), entries(3, 8), None)
        got = disk.load()
        assert got.hard_state == HardState(1)  # written after the entries: never reached
        assert got.entries == list(entries(1, len(got.entries)))
        assert 2 <= len(got.entries) <= (7 if operation == "write" else 8)
        if operation == "fsync":
            assert disk.unsynced == 0


def test_seeded_faults_come_from_the_disk_rng() -> None:
    def failures(seed: int) -> list[int]:
        disk = CrashDiskStorage(random.Random(seed), fault_rate=0.2)
        failed = []
        for n in range(1, 60):
            try:
                disk.save(HardState(1), entries(disk.last_index + 1, disk.last_index + 1), None)
            except StorageError:
                failed.append(n)
        return failed

    assert failures(4) == failures(4) and failures(4) != failures(5)
    assert 3 <= len(failures(4)) <= 25
    with pytest.raises(ValueError, match="fault_rate must be between 0 and 1"):
        CrashDiskStorage(random.Random(0), fault_rate=1.5)


@pytest.mark.parametrize("seed", range(10))
def test_a_torn_write_waits_for_a_log_write_and_recovery_drops_the_torn_record(
        seed: int) -> None:
    disk = CrashDiskStorage(random.Random(seed))
    disk.save(HardState(1, "a", 2), entries(1, 2), None)
    disk.fail_next("torn")
    disk.save(HardState(2, "a", 2), (), None)  # a hard state cannot tear: it waits
    with pytest.raises(StorageError, match="^torn disk/wal: power lost"):
        disk.save(HardState(2, "a", 4), entries(3, 6), None)
    [torn] = disk.damaged
    assert 3 <= torn <= 6
    got = disk.load()  # the torn record is past the commit index: dropped as a torn tail
    assert got.hard_state == HardState(2, "a", 2)
    assert got.entries == list(entries(1, torn - 1))
    assert disk.damaged == []


def test_a_corrupt_committed_record_makes_recovery_refuse_until_it_is_rewritten() -> None:
    disk = CrashDiskStorage(random.Random(1), name="s2")
    disk.save(HardState(1, "a", 3), entries(1, 5), None)
    assert disk.corrupt() == 3  # the newest committed record
    with pytest.raises(StorageCorruptionError, match="record 3 fails its checksum and is "
                                                     "at or below the saved commit index 3"):
        disk.load()
    with pytest.raises(StorageCorruptionError):
        disk.load()  # still damaged: the server keeps refusing
    disk.save(None, entries(3, 5, term=2), None)  # rewritten
    assert disk.load().entries[2] == entries(3, 3, term=2)[0]


def test_a_corrupt_record_past_the_commit_index_is_a_torn_tail_only_if_it_is_last() -> None:
    disk = CrashDiskStorage(random.Random(1))
    disk.save(HardState(1, "a", 2), entries(1, 5), None)
    assert disk.corrupt(4) == 4
    with pytest.raises(StorageCorruptionError, match="intact records follow it"):
        disk.load()
    disk = CrashDiskStorage(random.Random(1))
    disk.save(HardState(1, "a", 2), entries(1, 5), None)
    assert disk.corrupt(5) == 5
    assert disk.load().entries == list(entries(1, 4))


def test_corrupting_what_the_disk_does_not_hold_does_nothing() -> None:
    disk = CrashDiskStorage(random.Random(1))
    assert disk.corrupt() is None  # nothing committed
    disk.save(HardState(1, "a", 4), entries(1, 6), None)
    disk.save(None, (), Snapshot(4, 1, b"c", b"s"))
    assert disk.corrupt(2) is None and disk.corrupt(9) is None
    assert disk.corrupt(5) == 5
    disk.save(None, (), Snapshot(5, 1, b"c", b"s"))  # the snapshot covers it now
    assert disk.damaged == []


def test_a_slow_disk_reports_how_long_each_save_took() -> None:
    disk = CrashDiskStorage(random.Random(1))
    disk.save(HardState(1), entries(1, 1), None)
    assert disk.last_save_seconds == 0.0
    disk.save_seconds = 0.05
    disk.save(HardState(1), entries(2, 2), None)
    assert disk.last_save_seconds == 0.05 and disk.last_index == 2  # on the platter
