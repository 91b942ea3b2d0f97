"""Why the core refused an input. The runtime turns these into API answers."""

from __future__ import annotations


class NotLeader(Exception):
    """Only the leader accepts proposals, changes, transfers and reads."""

    def __init__(self, leader_id: str | None) -> None:
        super().__init__(f"not the leader (leader is {leader_id or 'unknown'})")
        self.leader_id = leader_id


class ChangeNotAllowedYet(Exception):
    """A configuration change must wait: one is uncommitted, or the leader has not yet
    committed an entry of its term. Retrying later can succeed."""


class ProposalDropped(Exception):
    """The leader is handing over leadership and takes no new entries meanwhile."""


class UncommittedLimitReached(ProposalDropped):
    """The leader already holds ``max_uncommitted_bytes`` of uncommitted commands (a slow
    quorum): it refuses more rather than grow its memory. Retrying later can succeed."""

    def __init__(self, uncommitted: int, limit: int) -> None:
        super().__init__(f"too many uncommitted writes: {uncommitted} bytes are waiting to "
                         f"commit, the limit is {limit}; retry later")
        self.uncommitted = uncommitted
        self.limit = limit
