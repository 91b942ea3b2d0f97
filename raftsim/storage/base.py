"""The storage interface the runtime writes through.

The runtime calls :meth:`Storage.save` with what a core ``Ready`` says must be durable,
*before* it sends any message or acknowledges any client: Raft's safety rests on a vote
or an acknowledged entry never being forgotten across a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from raftsim.core.messages import Entry, HardState, Snapshot


@dataclass(slots=True)
class PersistentState:
    """Everything a restarting server reads back to rebuild its core node."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


class StorageError(Exception):
    """A write the storage could not make durable: which file, which operation, which
    errno. After one of these the caller must not trust its in-memory state to be on
    disk (the runtime stops the server: fail-stop, as etcd and hashicorp/raft panic)."""

    def __init__(self, operation: str, path: str, errno: int | None, strerror: str) -> None:
        self.operation = operation
        self.path = path
        self.errno = errno
        self.strerror = strerror
        code = f"[Errno {errno}] " if errno is not None else ""
        super().__init__(f"{operation} {path}: {code}{strerror}")

    @classmethod
    def from_os_error(cls, operation: str, path: object, exc: OSError) -> StorageError:
        return cls(operation, str(path), exc.errno, exc.strerror or str(exc))

    @classmethod
    def simulated(cls, operation: str, path: str, errno: int) -> StorageError:
        """The error a simulated disk raises where a real one would raise OSError."""
        return cls(operation, path, errno, os.strerror(errno))

    def fields(self) -> dict[str, object]:
        """For the trace: file, operation, errno and its message."""
        return {"file": self.path, "operation": self.operation, "errno": self.errno,
                "error": self.strerror}


class PowerLoss(StorageError):
    """The machine lost power in the middle of this save (a simulated torn write):
    unlike a failed save, there is no process left to carry on."""


class Storage(Protocol):
    def load(self) -> PersistentState:
        """Read back the durable state (a copy the caller may keep)."""
        ...

    def save(
        self,
        hard_state: HardState | None,
        entries: tuple[Entry, ...],
        snapshot: Snapshot | None,
    ) -> None:
        """Make durable, in this order: ``snapshot`` (discarding the log entries it covers,
        except the storage's ``trailing_logs`` newest of them),
        ``entries`` (the first one's index may be at or below the last stored index: the
        stored log is truncated there first), then ``hard_state``. Returns only once all
        of it is durable; raises :class:`StorageError` (or another exception) when it
        could not be, and then nothing of this call may be assumed durable."""
        ...

    def stage_snapshot(self, snapshot: Snapshot) -> None:
        """Do the slow part of a later ``save()`` of ``snapshot`` now (write and fsync
        its file), so that save only has to publish it. A live server calls this in a
        worker thread while its event loop goes on calling ``save()`` for other things,
        so it must touch nothing those calls use. Staging stores nothing: until the save,
        a crash forgets the staged copy. Storages with nothing slow to do ahead make it
        a no-op."""
        ...

    def close(self) -> None:
        """Release files; further calls are errors."""
        ...
