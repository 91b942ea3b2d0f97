"""Unit tests for the core's small modules: quorum.py, log.py and configuration.py."""

from __future__ import annotations

import pytest

from raftsim.core import quorum
from raftsim.core.configuration import (
    ChangeKind,
    ConfigChange,
    Configuration,
    ConfigurationError,
    ServerInfo,
    apply_change,
    decode_indexed,
    encode_indexed,
)
from raftsim.core.log import RaftLog
from raftsim.core.messages import Entry, EntryKind

# ---------------------------------------------------------------------- quorum.py


@pytest.mark.parametrize(("voters", "need"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_quorum_size_is_a_strict_majority(voters: int, need: int) -> None:
    """Paper §5.2: a candidate wins "if it receives votes from a majority of the servers
    in the full cluster"."""
    assert quorum.quorum_size(voters) == need


def test_committed_index_is_the_highest_index_stored_on_a_majority() -> None:
    """Paper Figure 2: "If there exists an N such that N > commitIndex, a majority of
    matchIndex[i] >= N ... set commitIndex = N"."""
    voters = ["a", "b", "c", "d", "e"]
    assert quorum.committed_index(voters, {"a": 9, "b": 7, "c": 5, "d": 2, "e": 1}) == 5
    assert quorum.committed_index(voters, {"a": 9, "b": 9}) == 0
    assert quorum.committed_index(["a", "b", "c", "d"], {"a": 4, "b": 3, "c": 2, "d": 1}) == 2


def test_committed_index_ignores_servers_that_are_not_voters() -> None:
    """Paper §6: non-voting members "are not considered for majorities"."""
    match = {"a": 5, "b": 5, "learner": 9, "other": 9}
    assert quorum.committed_index(["a", "b", "c"], match) == 5
    assert quorum.committed_index(["a", "c", "d"], match) == 0
    assert quorum.committed_index([], match) == 0


def test_has_quorum_counts_only_agreeing_voters() -> None:
    voters = ["a", "b", "c"]
    assert quorum.has_quorum(voters, ["a", "b"])
    assert not quorum.has_quorum(voters, ["a", "x", "y"])
    assert quorum.has_quorum(["a"], {"a"})
    assert not quorum.has_quorum(["a", "b"], {"a"})


def test_vote_outcome_is_open_until_a_majority_decides() -> None:
    """Paper §5.2: a candidate continues "until (a) it wins the election, (b) another
    server establishes itself as leader, or (c) a period of time goes by"."""
    voters = ["a", "b", "c", "d", "e"]
    assert quorum.vote_outcome(voters, {"a": True, "b": True}) is None
    assert quorum.vote_outcome(voters, {"a": True, "b": True, "c": True}) is True
    assert quorum.vote_outcome(voters, {"a": True, "b": False, "c": False}) is None
    assert quorum.vote_outcome(voters, {"a": True, "b": False, "c": False, "d": False}) is False
    # votes from non-voters do not count either way
    assert quorum.vote_outcome(["a", "b", "c"], {"a": True, "x": True, "y": True}) is None


# ---------------------------------------------------------------------- log.py


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, i) for i, t in enumerate(terms, start=start)]


def test_empty_log_has_index_zero_and_term_zero() -> None:
    log = RaftLog()
    assert (log.last_index, log.last_term, log.first_index) == (0, 0, 1)
    assert log.term_at(0) == 0
    assert log.term_at(1) is None


def test_log_requires_contiguous_entries() -> None:
    with pytest.raises(ValueError, match="not contiguous"):
        RaftLog([Entry(1, 1), Entry(1, 3)])
    with pytest.raises(ValueError, match="not contiguous"):
        RaftLog([Entry(1, 1)], snapshot_index=5, snapshot_term=1)
    log = RaftLog(entries(1, 1))
    with pytest.raises(ValueError, match="append at 4"):
        log.append(Entry(1, 4))


def test_log_addresses_entries_by_raft_index_after_a_snapshot() -> None:
    log = RaftLog(entries(3, 3, 4, start=11), snapshot_index=10, snapshot_term=2)
    assert (log.first_index, log.last_index, log.last_term) == (11, 13, 4)
    assert log.term_at(10) == 2
    assert log.term_at(9) is None
    assert log.term_at(12) == 3
    assert log.term_at(14) is None
    assert log.entry(13) == Entry(4, 13)
    assert [e.index for e in log.slice(0, 100)] == [11, 12, 13]
    assert [e.index for e in log.slice(12, 13)] == [12]
    assert log.slice(14, 20) == []


def test_truncate_removes_the_conflicting_entry_and_all_that_follow_it() -> None:
    """Paper Figure 2, AppendEntries rule 3: "If an existing entry conflicts with a new
    one (same index but different terms), delete the existing entry and all that follow
    it"."""
    log = RaftLog(entries(1, 1, 2, 2, 2))
    log.truncate_from(3)
    assert log.last_index == 2
    assert log.last_term == 1
    log.append(Entry(3, 3))
    assert [e.term for e in log.slice(1, 10)] == [1, 1, 3]


def test_compact_keeps_the_suffix_after_a_matching_snapshot_point() -> None:
    """Dissertation §5.1: "the entire system state is written to a snapshot on stable
    storage, then the entire log up to that point is discarded"."""
    log = RaftLog(entries(1, 1, 2, 2, 3))
    log.compact(3, 2)
    assert (log.snapshot_index, log.snapshot_term, log.first_index) == (3, 2, 4)
    assert [e.index for e in log.slice(0, 10)] == [4, 5]
    assert log.term_at(3) == 2
    assert log.term_at(2) is None


def test_compact_keeps_trailing_entries_before_the_snapshot_point() -> None:
    """hashicorp/raft's TrailingLogs: entries before the snapshot stay, so a follower a
    little behind is sent them instead of the snapshot."""
    log = RaftLog(entries(1, 1, 2, 2, 3, 3))
    log.compact(4, 2, keep=2)
    assert (log.snapshot_index, log.first_index, log.oldest_index) == (4, 5, 3)
    assert [log.term_at(i) for i in range(1, 7)] == [None, None, 2, 2, 3, 3]
    assert [e.index for e in log.slice(0, 10)] == [3, 4, 5, 6]
    log.compact(6, 3, keep=2)  # the window moves on
    assert log.oldest_index == 5 and (log.last_index, log.last_term) == (6, 3)
    log.truncate_from(3)  # a conflict never reaches below the snapshot
    assert [e.index for e in log.slice(0, 10)] == [5, 6]
    restarted = RaftLog(log.slice(0, 10), 6, 3)  # as storage hands them back
    assert restarted.oldest_index == 5 and restarted.first_index == 7
    with pytest.raises(ValueError, match="not contiguous with the snapshot at 6"):
        RaftLog(entries(1, 1, 9, start=5), 6, 3)  # the term at the snapshot differs


def test_compact_discards_the_whole_log_when_the_snapshot_does_not_match() -> None:
    """Paper §7: "Usually the snapshot will contain new information not already in the
    recipient's log. In this case, the follower discards its entire log; it is all
    superseded by the snapshot"."""
    log = RaftLog(entries(1, 1, 2))
    log.compact(5, 4)
    assert (log.last_index, log.last_term) == (5, 4)
    assert log.slice(0, 10) == []
    log = RaftLog(entries(1, 1, 2, 2))
    log.compact(3, 3)  # same index, different term: the suffix is not ours to keep
    assert log.last_index == 3
    assert log.slice(0, 10) == []


def test_first_index_of_term_finds_the_start_of_the_conflicting_run() -> None:
    """Paper §5.3: "the follower can include the term of the conflicting entry and the
    first index it stores for that term"."""
    log = RaftLog(entries(1, 1, 2, 2, 2, 3))
    assert log.first_index_of_term(2, 5) == 3
    assert log.first_index_of_term(2, 3) == 3
    assert log.first_index_of_term(1, 2) == 1
    assert log.first_index_of_term(3, 6) == 6
    compacted = RaftLog(entries(2, 2, start=5), snapshot_index=4, snapshot_term=2)
    assert compacted.first_index_of_term(2, 6) == 5  # never reaches into the snapshot


def test_last_index_of_term_lets_the_leader_skip_a_whole_term() -> None:
    log = RaftLog(entries(1, 1, 4, 4, 5, 5, 6, 6, 6))
    assert log.last_index_of_term(4) == 4
    assert log.last_index_of_term(6) == 9
    assert log.last_index_of_term(1) == 2
    assert log.last_index_of_term(2) is None
    assert log.last_index_of_term(7) is None


def test_replace_swaps_one_entry_in_place() -> None:
    log = RaftLog(entries(1, 1, 1))
    log.replace(2, Entry(1, 2, EntryKind.NOOP))
    assert log.entry(2).kind is EntryKind.NOOP
    assert log.last_index == 3


# ---------------------------------------------------------------------- configuration.py

ABC = Configuration((ServerInfo("a", "10.0.0.1:4647"), ServerInfo("b", "10.0.0.2:4647"),
                     ServerInfo("c", "10.0.0.3:4647", voter=False)))


def test_configuration_lists_voters_and_all_servers_in_stored_order() -> None:
    assert ABC.voters == ("a", "b")
    assert ABC.ids == ("a", "b", "c")
    assert ABC.is_voter("a") and not ABC.is_voter("c") and not ABC.is_voter("zz")
    assert ABC.get("c") == ServerInfo("c", "10.0.0.3:4647", False)
    assert ABC.get("zz") is None
    assert ABC.by_address("10.0.0.2:4647") == ABC.get("b")
    assert ABC.by_address("nowhere") is None


def test_configuration_round_trips_through_its_encoding() -> None:
    assert Configuration.decode(ABC.encode()) == ABC
    assert Configuration.decode(b"") == Configuration()
    assert decode_indexed(encode_indexed(7, ABC)) == (7, ABC)
    assert decode_indexed(b"") == (0, Configuration())


def test_add_voter_and_add_nonvoter_append_a_server() -> None:
    """Dissertation §4.1: "only one server can be added or removed from the cluster at a
    time"."""
    added = apply_change(ABC, ConfigChange(ChangeKind.ADD_VOTER, "d", "10.0.0.4:4647"))
    assert added.ids == ("a", "b", "c", "d") and added.is_voter("d")
    learner = apply_change(ABC, ConfigChange(ChangeKind.ADD_NONVOTER, "d", "10.0.0.4:4647"))
    assert learner.ids == ("a", "b", "c", "d") and not learner.is_voter("d")


def test_adding_needs_an_unused_address() -> None:
    with pytest.raises(ConfigurationError, match="an address is required"):
        apply_change(ABC, ConfigChange(ChangeKind.ADD_VOTER, "d"))
    with pytest.raises(ConfigurationError, match='address "10.0.0.1:4647" is already'):
        apply_change(ABC, ConfigChange(ChangeKind.ADD_VOTER, "d", "10.0.0.1:4647"))


def test_readding_a_server_is_idempotent_and_adding_as_voter_promotes() -> None:
    same = apply_change(ABC, ConfigChange(ChangeKind.ADD_VOTER, "a", "10.0.0.1:4647"))
    assert same == ABC
    promoted = apply_change(ABC, ConfigChange(ChangeKind.ADD_VOTER, "c"))
    assert promoted.voters == ("a", "b", "c")
    assert promoted.get("c") == ServerInfo("c", "10.0.0.3:4647", True)
    with pytest.raises(ConfigurationError, match='id "a" is already a voter'):
        apply_change(ABC, ConfigChange(ChangeKind.ADD_NONVOTER, "a", "10.0.0.1:4647"))


def test_promote_demote_and_remove_keep_the_order_of_the_others() -> None:
    promoted = apply_change(ABC, ConfigChange(ChangeKind.PROMOTE, "c"))
    assert promoted.voters == ("a", "b", "c")
    demoted = apply_change(ABC, ConfigChange(ChangeKind.DEMOTE, "a"))
    assert demoted.ids == ("a", "b", "c") and demoted.voters == ("b",)
    removed = apply_change(ABC, ConfigChange(ChangeKind.REMOVE, "a"))
    assert removed.ids == ("b", "c")


def test_changing_an_unknown_server_is_refused() -> None:
    for kind in (ChangeKind.PROMOTE, ChangeKind.DEMOTE, ChangeKind.REMOVE):
        with pytest.raises(ConfigurationError, match='id "zz" was not found'):
            apply_change(ABC, ConfigChange(kind, "zz"))


def test_removing_or_demoting_the_last_voter_is_refused() -> None:
    """A configuration with no voters could never elect a leader again; Nomad/hashicorp
    raft refuses it with "need at least one voter in configuration"."""
    one = apply_change(ABC, ConfigChange(ChangeKind.REMOVE, "b"))
    with pytest.raises(ConfigurationError, match="^need at least one voter in configuration$"):
        apply_change(one, ConfigChange(ChangeKind.REMOVE, "a"))
    with pytest.raises(ConfigurationError, match="need at least one voter in configuration"):
        apply_change(one, ConfigChange(ChangeKind.DEMOTE, "a"))


def test_majority_index_is_the_highest_index_a_majority_stored() -> None:
    assert quorum.majority_index([9, 7, 5, 2, 1]) == 5
    assert quorum.majority_index([1, 9, 2]) == 2
    assert quorum.majority_index([4, 3, 2, 1]) == 2
    assert quorum.majority_index([]) == 0
