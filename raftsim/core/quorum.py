"""Majority arithmetic, kept apart so the node reads as Raft and not as counting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def quorum_size(voters: int) -> int:
    return voters // 2 + 1


def committed_index(voters: Iterable[str], match: Mapping[str, int]) -> int:
    """The highest index stored on a majority of ``voters`` (0 with no voters)."""
    return majority_index([match.get(v, 0) for v in voters])


def majority_index(stored: Iterable[int]) -> int:
    """The highest index stored on a majority, given what each voter has stored (0 with
    no voters)."""
    indexes = sorted(stored, reverse=True)
    if not indexes:
        return 0
    return indexes[quorum_size(len(indexes)) - 1]


def has_quorum(voters: Iterable[str], agreeing: Iterable[str]) -> bool:
    voter_list = list(voters)
    yes = set(agreeing)
    return sum(1 for v in voter_list if v in yes) >= quorum_size(len(voter_list))


def vote_outcome(voters: Iterable[str], votes: Mapping[str, bool]) -> bool | None:
    """True when a majority granted, False when a majority refused, None while open."""
    voter_list = list(voters)
    need = quorum_size(len(voter_list))
    granted = sum(1 for v in voter_list if votes.get(v) is True)
    refused = sum(1 for v in voter_list if votes.get(v) is False)
    if granted >= need:
        return True
    if refused >= need:
        return False
    return None
