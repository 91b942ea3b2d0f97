"""The storage interface the runtime writes through.

The runtime calls :meth:`Storage.save` with what a core ``Ready`` says must be durable,
*before* it sends any message or acknowledges any client: Raft's safety rests on a vote
or an acknowledged entry never being forgotten across a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from raftsim.core.messages import Entry, HardState, Snapshot


@dataclass(slots=True)
class PersistentState:
    """Everything a restarting server reads back to rebuild its core node."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


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
        """Make durable, in this order: ``snapshot`` (discarding log entries it covers),
        ``entries`` (the first one's index may be at or below the last stored index: the
        stored log is truncated there first), then ``hard_state``. Returns only once all
        of it is durable."""
        ...

    def close(self) -> None:
        """Release files; further calls are errors."""
        ...
