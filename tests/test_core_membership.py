"""Cluster membership changes (dissertation chapter 4: single-server changes, removing
the leader, disruptive servers, non-voting members), checked on core nodes."""

from __future__ import annotations

import pytest

from raftsim.core.configuration import ChangeKind, ConfigChange, ConfigurationError
from raftsim.core.errors import ChangeNotAllowedYet, NotLeader
from raftsim.core.messages import AppendEntries, EntryKind
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet


def change(net: CoreNet, leader: str, kind: ChangeKind, server: str,
           address: str = "") -> tuple[int, int]:
    ready = net.handle(leader, net.nodes[leader].change_configuration(
        ConfigChange(kind, server, address), net.now))
    assert ready.proposed is not None
    return ready.proposed


def commits(net: CoreNet, leader: str, data: bytes, within: float = 0.5) -> bool:
    index, term = net.propose(leader, data)
    net.tick(within)
    node = net.nodes[leader]
    return node.commit_index >= index and node.log.term_at(index) == term


def events(net: CoreNet, node_id: str, kind: str) -> list[dict[str, object]]:
    return [e.fields for _, i, _, e in net.trace if i == node_id and e.kind == kind]


def test_removed_follower_stops_being_counted_once_the_change_is_in_the_log() -> None:
    """Dissertation §4.1: "a server always uses the latest configuration in its log,
    regardless of whether that entry is committed"; the removed server no longer counts
    toward majorities."""
    net = CoreNet(seed=21)
    net.campaign("a")
    net.crash("b")
    assert commits(net, "a", b"with-c")  # a + c are a majority of {a, b, c}
    net.start("b")
    net.tick(0.3)
    index, _ = change(net, "a", ChangeKind.REMOVE, "c")
    assert net.nodes["a"].configuration.voters == ("a", "b")
    net.tick(0.2)
    assert net.nodes["a"].committed_configuration == (index, net.nodes["a"].configuration)
    assert "c" not in net.nodes["a"].progress
    assert events(net, "a", "config-committed")[-1]["voters"] == ["a", "b"]
    # c learned of its own removal and so never campaigns again
    assert not net.nodes["c"].configuration.is_voter("c")
    net.crash("b")
    assert not commits(net, "a", b"c-is-gone")  # c's copy would not count anyway
    net.start("b")
    net.tick(0.5)
    assert net.nodes["a"].role is Role.LEADER
    assert b"c-is-gone" in [e.data for e in net.applied["b"]]


def test_removed_leader_keeps_leading_until_the_removal_commits_then_steps_down() -> None:
    """Paper §6: "the cluster leader may not be part of the new configuration. In this
    case, the leader steps down (returns to follower state) once it has committed the
    Cnew log entry" ... "it replicates log entries but does not count itself in
    majorities"."""
    net = CoreNet(seed=22)
    net.campaign("a")
    term = net.nodes["a"].term
    net.dropped = lambda m: isinstance(m, AppendEntries) and m.target == "c"
    index, _ = change(net, "a", ChangeKind.REMOVE, "a")
    net.deliver_all()
    # b stores the entry: a majority of the old configuration, but the new one is
    # {b, c} and a no longer counts itself, so the removal is not committed yet.
    assert net.nodes["b"].log.last_index == index
    assert net.nodes["a"].commit_index < index
    assert net.nodes["a"].role is Role.LEADER
    assert commits(net, "a", b"still-leading", within=0.05) is False
    net.heal()
    net.tick(0.06)
    assert net.nodes["a"].commit_index >= index
    assert net.nodes["a"].role is Role.FOLLOWER
    assert events(net, "a", "step-down")[-1]["reason"] == "removed from the configuration"
    net.tick(1.0)
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] in ("b", "c")
    assert net.nodes[leaders[0]].term > term
    assert net.nodes[leaders[0]].configuration.voters == ("b", "c")
    assert not net.nodes["a"].promotable
    assert [e.data for e in net.applied["b"] if e.data == b"still-leading"] == [b"still-leading"]


def test_a_second_change_is_refused_while_one_is_uncommitted() -> None:
    """Dissertation §4.1 (paraphrased): a leader starts the next configuration change
    only once the previous one's entry is committed."""
    net = CoreNet(seed=23)
    net.campaign("a")
    net.dropped = lambda m: True
    change(net, "a", ChangeKind.REMOVE, "c")
    with pytest.raises(ChangeNotAllowedYet, match="still uncommitted"):
        change(net, "a", ChangeKind.REMOVE, "b")
    net.heal()
    net.tick(0.1)
    change(net, "a", ChangeKind.ADD_NONVOTER, "d", "10.0.0.9:4647")  # now allowed


def test_change_is_refused_until_the_new_leader_has_committed_an_entry_in_its_term() -> None:
    """Ongaro's raft-dev fix (2015) to the single-server change algorithm: a leader may
    not append a new configuration entry until it has committed an entry from its
    current term."""
    net = CoreNet(seed=24)
    net.dropped = lambda m: isinstance(m, AppendEntries)
    net.campaign("a")
    assert net.nodes["a"].role is Role.LEADER and not net.nodes["a"].committed_in_term
    with pytest.raises(ChangeNotAllowedYet, match="not yet committed an entry in its term"):
        change(net, "a", ChangeKind.REMOVE, "c")
    net.heal()
    net.tick(0.06)
    assert net.nodes["a"].committed_in_term
    change(net, "a", ChangeKind.REMOVE, "c")


def test_config_before_noop_bug_accepts_a_change_before_the_first_commit() -> None:
    net = CoreNet(seed=24, settings=NodeSettings(bugs=frozenset({"config-before-noop"})))
    net.dropped = lambda m: isinstance(m, AppendEntries)
    net.campaign("a")
    assert not net.nodes["a"].committed_in_term
    index, _ = change(net, "a", ChangeKind.REMOVE, "c")
    assert net.nodes["a"].log.entry(index).kind is EntryKind.CONFIGURATION


def test_only_the_leader_changes_the_configuration() -> None:
    net = CoreNet(seed=25)
    net.campaign("a")
    with pytest.raises(NotLeader) as raised:
        net.nodes["b"].change_configuration(ConfigChange(ChangeKind.REMOVE, "c"), net.now)
    assert raised.value.leader_id == "a"


def test_removing_the_last_voter_is_refused() -> None:
    """hashicorp/raft (and Nomad's operator API): "need at least one voter in
    configuration"."""
    net = CoreNet(("a", "b", "c"), seed=26)
    net.campaign("a")
    change(net, "a", ChangeKind.REMOVE, "c")
    net.tick(0.1)
    change(net, "a", ChangeKind.DEMOTE, "b")
    net.tick(0.1)
    assert net.nodes["a"].configuration.voters == ("a",)
    with pytest.raises(ConfigurationError, match="^need at least one voter in configuration$"):
        change(net, "a", ChangeKind.REMOVE, "a")
    with pytest.raises(ConfigurationError, match="need at least one voter"):
        change(net, "a", ChangeKind.DEMOTE, "a")
    assert net.nodes["a"].configuration.voters == ("a",)
    assert commits(net, "a", b"alone")  # a single voter commits by itself


@pytest.mark.parametrize("removed_knows", [True, False])
@pytest.mark.parametrize("pre_vote", [True, False])
def test_removed_server_does_not_disrupt_the_cluster(removed_knows: bool, pre_vote: bool) -> None:
    """Dissertation §4.2.3: "removed servers (those not in Cnew) can disrupt the
    cluster. These servers will not receive heartbeats, so they will time out and start
    new elections. They will then send RequestVote RPCs with new term numbers, and this
    will cause the current leader to revert to follower state" ... "Raft's solution uses
    heartbeats to determine when a valid leader exists"."""
    net = CoreNet(seed=27, settings=NodeSettings(pre_vote=pre_vote))
    net.campaign("a")
    if not removed_knows:
        net.partition(["c"])  # c never hears of its removal
    index, _ = change(net, "a", ChangeKind.REMOVE, "c")
    net.tick(0.2)
    assert net.nodes["a"].commit_index >= index
    assert net.nodes["c"].configuration.is_voter("c") is not removed_knows
    net.heal()
    term = net.nodes["a"].term
    removed_at = net.now
    net.tick(12 * net.settings.election_timeout_max)
    assert net.leaders() == ["a"]
    assert net.nodes["a"].term == net.nodes["b"].term == term
    if not removed_knows:
        assert len(events(net, "c", "election-timeout")) >= 10
        if not pre_vote:
            assert net.nodes["c"].term > term + 5  # c keeps trying, nobody listens
    assert not any(t > removed_at and e.kind == "role" for t, i, _, e in net.trace
                   if i in ("a", "b"))
    assert commits(net, "a", b"undisturbed")


def test_server_not_in_its_latest_configuration_still_starts_elections_until_committed(
) -> None:
    """Dissertation §4.2.2: "a server that is not part of its own latest configuration
    should still start new elections, as it might still be needed until the Cnew entry
    is committed ... It does not count its own vote in elections unless it is part of
    its latest configuration". Here only d, which is being removed, holds the removal:
    b and c (still on the old configuration of four) cannot win without d's vote, and d
    refuses it because its log is newer, so d itself must stand."""
    net = CoreNet(("a", "b", "c", "d"), seed=29)
    net.campaign("a")
    net.tick(0.1)
    net.dropped = lambda m: isinstance(m, AppendEntries) and m.target != "d"
    index, _ = change(net, "a", ChangeKind.REMOVE, "d")
    net.deliver_all()
    d = net.nodes["d"]
    assert d.log.last_index == index and d.commit_index < index
    assert d.configuration.voters == ("a", "b", "c")
    net.crash("a")
    net.heal()
    net.tick(3.0)
    assert "d" in {i for leaders in net.leader_terms().values() for i in leaders}
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] in ("b", "c")
    leader = net.nodes[leaders[0]]
    assert leader.committed_configuration[1].voters == ("a", "b", "c")
    assert d.role is Role.FOLLOWER and not d.promotable  # removal committed: d is done
    assert commits(net, leader.id, b"alive")


def test_nonvoter_catches_up_then_is_promoted_and_counts_toward_quorum() -> None:
    """Paper §6: "the new servers join the cluster as non-voting members (the leader
    replicates log entries to them, but they are not considered for majorities)" ...
    until they have caught up."""
    net = CoreNet(seed=28)
    net.campaign("a")
    for n in range(25):
        net.propose("a", f"x{n}".encode())
    net.tick(0.1)
    d = net.add_node("d")
    assert not d.promotable
    change(net, "a", ChangeKind.ADD_NONVOTER, "d", "10.0.0.4:4647")
    net.tick(0.3)
    a = net.nodes["a"]
    assert d.log.last_index == a.log.last_index and d.commit_index == a.commit_index
    assert d.configuration.get("d") is not None and not d.configuration.is_voter("d")
    net.tick(2.0)
    assert not [f for f in events(net, "d", "role") if f["role"] != "follower"]
    # As a non-voter, d does not count: a and d alone are not a majority of {a, b, c}.
    net.crash("b")
    net.crash("c")
    assert not commits(net, "a", b"not-yet", within=0.1)
    net.start("b")
    net.start("c")
    net.tick(0.3)
    assert net.leaders() == ["a"]
    index, _ = change(net, "a", ChangeKind.PROMOTE, "d")
    net.tick(0.1)
    assert a.commit_index >= index
    assert a.configuration.voters == ("a", "b", "c", "d")
    # Now four voters: a, c and d are a majority only because d counts.
    net.crash("b")
    assert commits(net, "a", b"d-counts")
    assert b"d-counts" in [e.data for e in net.applied["d"]]


def test_check_quorum_does_not_count_a_just_added_voter_as_silent() -> None:
    """etcd TestAddNodeCheckQuorum: a voter added just before a quorum check has had no
    chance to answer yet; the leader counts it as active for that one check, and steps
    down only if it stays silent for a whole election timeout after."""
    net = CoreNet(("a",), seed=29)
    net.campaign("a")
    leader = net.nodes["a"]
    check_at = net.now + net.settings.election_timeout_min  # the first quorum check
    net.add_node("b")
    net.crash("b")
    net.tick(check_at - net.now - 0.01)
    change(net, "a", ChangeKind.ADD_VOTER, "b", "10.0.0.9:4647")
    net.tick(0.02)  # the quorum check falls due
    assert leader.role is Role.LEADER
    net.tick(net.settings.election_timeout_min)
    assert leader.role is Role.FOLLOWER
    assert events(net, "a", "step-down")
