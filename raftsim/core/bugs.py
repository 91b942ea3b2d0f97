"""Bug switches: classic Raft bugs re-created on purpose, to prove the checkers work.

Each switch is a few lines in node.py at the exact place the real bug would be (search
for ``_bug(``), except ``ack-after-failed-fsync``, a runtime bug (the Raft rules are
fine; the server around them ignores its disk): raftsim/runtime/server.py. All are off
by default; a run with none switched on must stay clean.
"""

from __future__ import annotations

BUGS: dict[str, str] = {
    "commit-prior-term": (
        "a leader commits an entry of an earlier term by counting replicas "
        "(paper Figure 8), so a committed entry can later be overwritten"
    ),
    "forget-vote": (
        "votedFor is not persisted, so a server that restarts can vote twice in one term"
    ),
    "no-log-check": (
        "votes are granted without the up-to-date log check, so a stale server can win "
        "and erase committed entries"
    ),
    "config-before-noop": (
        "a new leader accepts a membership change before committing an entry of its term "
        "(the 2015 single-server change bug), allowing two disjoint majorities"
    ),
    "no-truncate": (
        "a follower keeps its conflicting entries instead of removing them, so logs diverge "
        "and servers apply different commands at one index"
    ),
    "stale-read": (
        "ReadIndex answers at once without confirming leadership with a quorum, so a "
        "deposed leader serves stale reads"
    ),
    "ack-after-failed-fsync": (
        "a server whose save fails (fsync EIO, ENOSPC...) carries on instead of stopping, "
        "acknowledging entries its disk may not hold (PostgreSQL's fsyncgate)"
    ),
}


def validate_bugs(names: object) -> frozenset[str]:
    """The switch names as a frozenset; ValueError naming the unknown one otherwise."""
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise ValueError("bugs must be a list of bug switch names")
    result = set()
    for name in names:  # type: ignore[attr-defined]
        if name not in BUGS:
            allowed = ", ".join(sorted(BUGS))
            raise ValueError(f"unknown bug switch {name!r}; known switches: {allowed}")
        result.add(name)
    return frozenset(result)
