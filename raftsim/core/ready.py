"""What the core hands back after every input: plain data for the caller to act on.

The caller must act in this order (etcd-io/raft's ``Ready`` contract): persist
``snapshot``, ``entries`` and ``hard_state``; then send ``messages``; then restore
``restore`` and apply ``committed`` to the state machine; then resolve ``read_states``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftsim.core.messages import Entry, HardState, Message, Snapshot


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: the read ``request_id`` may be served once the state machine
    has applied ``index`` (or failed, when ``index`` is None: leadership was lost)."""

    request_id: int
    index: int | None


@dataclass(frozen=True, slots=True)
class Event:
    """A state change worth a trace record (role, vote, timeout, config...)."""

    kind: str
    fields: dict[str, Any]


@dataclass(slots=True)
class Ready:
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    messages: Sequence[Message] = ()
    restore: Snapshot | None = None
    committed: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    events: Sequence[Event] = ()
    #: (index, term) of the entry an accepted proposal or configuration change created
    proposed: tuple[int, int] | None = None
    #: when the node next needs ``on_timeout`` (absolute, in the caller's time base)
    deadline: float = float("inf")
