"""Where a server keeps what it must not forget: hard state, log entries, snapshots."""

from raftsim.storage.base import PersistentState, Storage, StorageError
from raftsim.storage.crashdisk import CrashDiskStorage
from raftsim.storage.file import FileStorage, StorageCorruptionError
from raftsim.storage.memory import MemoryStorage

__all__ = [
    "CrashDiskStorage",
    "FileStorage",
    "MemoryStorage",
    "PersistentState",
    "Storage",
    "StorageCorruptionError",
    "StorageError",
]
