"""The bug switches (bugs.py), pinned at core level: for each switch, one short,
deterministic scenario in which the bugged node does the wrong thing bugs.py describes
and the correct node does not. The fuzzer relies on these switches doing exactly this."""

from __future__ import annotations

import dataclasses

import pytest

from raftsim.core.bugs import BUGS, validate_bugs
from raftsim.core.configuration import ChangeKind, ConfigChange
from raftsim.core.errors import ChangeNotAllowedYet
from raftsim.core.messages import AppendEntries, Entry, Message
from raftsim.core.ready import ReadState, Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

BUGGED = pytest.mark.parametrize("bugged", [False, True], ids=["correct", "bugged"])


def settings(bug: str, bugged: bool, *, pre_vote: bool = True,
             check_quorum: bool = True) -> NodeSettings:
    return NodeSettings(pre_vote=pre_vote, check_quorum=check_quorum,
                        bugs=frozenset({bug} if bugged else ()))


def log_of(net: CoreNet, node_id: str) -> list[Entry]:
    log = net.nodes[node_id].log
    return log.slice(log.first_index, log.last_index + 1)


def applied_at(net: CoreNet, node_id: str, index: int) -> Entry | None:
    return next((e for e in net.applied[node_id] if e.index == index), None)


def elect(net: CoreNet, node_id: str, attempts: int = 4) -> bool:
    for _ in range(attempts):
        net.campaign(node_id)
        if net.nodes[node_id].role is Role.LEADER:
            return True
    return False


def test_every_switch_is_off_by_default_and_names_are_checked() -> None:
    assert NodeSettings().bugs == frozenset()
    assert set(BUGS) == {"commit-prior-term", "forget-vote", "no-log-check",
                         "config-before-noop", "no-truncate", "stale-read",
                         "ack-after-failed-fsync"}
    with pytest.raises(ValueError, match="unknown bug switch 'nope'"):
        validate_bugs(["nope"])
    with pytest.raises(ValueError, match="must be a list"):
        validate_bugs("forget-vote")


@BUGGED
def test_commit_prior_term(bugged: bool) -> None:
    """"a leader commits an entry of an earlier term by counting replicas (paper Figure
    8), so a committed entry can later be overwritten"."""
    net = CoreNet(seed=61, settings=settings("commit-prior-term", bugged, pre_vote=False,
                                             check_quorum=False))
    net.set_log("a", [1, 2], term=3)
    net.set_log("b", [1], term=3)
    net.set_log("c", [1, 3], term=3)

    def lose_entries_after_2(m: Message) -> Message:
        if isinstance(m, AppendEntries) and m.source == "a":
            return dataclasses.replace(m, entries=tuple(e for e in m.entries if e.index <= 2))
        return m

    # a leads term 4 with b's vote; its term-2 entry reaches b (a majority: a, b) but
    # its term-4 no-op does not. b never hears the resulting commit index.
    net.rewrite = lose_entries_after_2
    net.dropped = lambda m: isinstance(m, AppendEntries) and m.source == "a" and (
        m.target == "c" or m.leader_commit >= 2)
    assert elect(net, "a")
    assert net.nodes["a"].progress["b"].match == 2
    if bugged:
        assert net.nodes["a"].commit_index == 2
        assert applied_at(net, "a", 2) == Entry(2, 2, data=b"2.2")
    else:
        assert net.nodes["a"].commit_index == 1
        assert applied_at(net, "a", 2) is None
    # a crashes; c (last term 3) wins term 5 with b's vote and overwrites index 2.
    net.crash("a")
    net.heal()
    net.rewrite = lambda m: m
    assert elect(net, "c")
    net.tick(0.1)
    assert applied_at(net, "c", 2) == applied_at(net, "b", 2) == Entry(3, 2, data=b"3.2")
    lost = applied_at(net, "a", 2)
    assert (lost is not None and lost != applied_at(net, "c", 2)) is bugged


@BUGGED
def test_forget_vote(bugged: bool) -> None:
    """"votedFor is not persisted, so a server that restarts can vote twice in one
    term"."""
    net = CoreNet(seed=62, settings=settings("forget-vote", bugged, pre_vote=False))
    for i in ("a", "c"):  # two candidates in term 2
        net.handle(i, net.nodes[i].campaign(net.now))
    from_c = [m for m in net.queue if m.source == "c" and m.target == "b"]
    net.deliver_where(lambda m: m.source == "a" and m.target == "b")  # b votes for a
    net.deliver_where(lambda m: m.source == "b" and m.target == "a")
    assert net.leaders() == ["a"]
    net.queue.clear()
    net.crash("b")
    net.start("b")
    assert net.nodes["b"].voted_for == (None if bugged else "a")
    net.queue.extend(from_c)
    net.deliver_where(lambda m: m.target == "b")
    net.deliver_where(lambda m: m.target == "c")
    # Election Safety: with the bug, two leaders in term 2.
    assert net.leader_terms()[2] == ({"a", "c"} if bugged else {"a"})


@BUGGED
def test_no_log_check(bugged: bool) -> None:
    """"votes are granted without the up-to-date log check, so a stale server can win
    and erase committed entries"."""
    net = CoreNet(seed=63, settings=settings("no-log-check", bugged))
    net.set_log("a", [1, 2], term=2, commit=2)
    net.set_log("b", [1, 2], term=2, commit=2)
    net.set_log("c", [1], term=2, commit=1)
    net.campaign("c")
    assert (net.nodes["c"].role is Role.LEADER) is bugged
    if bugged:
        # Leader Completeness is broken: the leader lacks the committed entry at 2.
        assert net.nodes["c"].log.term_at(2) != 2
        assert net.nodes["a"].commit_index == 2 and net.nodes["a"].log.term_at(2) == 2
    else:
        assert elect(net, "a")
        assert net.nodes["a"].log.term_at(2) == 2


@BUGGED
def test_config_before_noop(bugged: bool) -> None:
    """"a new leader accepts a membership change before committing an entry of its term
    (the 2015 single-server change bug), allowing two disjoint majorities". The raft-dev
    scenario: s1 adds s5 but only s1 stores it; s2 leads the next term and at once
    removes s4; then s1 wins again with s4 and s5 under its own configuration."""
    net = CoreNet(("s1", "s2", "s3", "s4"), seed=64,
                  settings=settings("config-before-noop", bugged, pre_vote=False,
                                    check_quorum=False))
    net.add_node("s5")
    assert elect(net, "s1")
    net.dropped = lambda m: isinstance(m, AppendEntries) and m.source == "s1"
    net.handle("s1", net.nodes["s1"].change_configuration(
        ConfigChange(ChangeKind.ADD_VOTER, "s5", "10.0.0.5:4647"), net.now))
    net.crash("s1")
    net.dropped = lambda m: isinstance(m, AppendEntries) and m.target == "s4"
    assert elect(net, "s2")  # votes from s2, s3, s4; its no-op reaches s3 only
    s2 = net.nodes["s2"]
    remove_s4 = ConfigChange(ChangeKind.REMOVE, "s4")
    if not bugged:
        with pytest.raises(ChangeNotAllowedYet):
            s2.change_configuration(remove_s4, net.now)
        return
    net.handle("s2", s2.change_configuration(remove_s4, net.now))
    net.deliver_all()
    committed_by_s2 = s2.commit_index
    assert committed_by_s2 == 4 and s2.configuration.voters == ("s1", "s2", "s3")
    net.crash("s2")
    net.heal()
    net.start("s1")
    assert elect(net, "s1")  # s1, s4 and s5: a majority of s1's five-server configuration
    net.tick(0.1)
    # Both s2 (with s3) and s1 (with s4, s5) committed index 4, differently.
    assert applied_at(net, "s2", 4) is not None and applied_at(net, "s1", 4) is not None
    assert applied_at(net, "s2", 4) != applied_at(net, "s1", 4)


@BUGGED
def test_no_truncate(bugged: bool) -> None:
    """"a follower keeps its conflicting entries instead of removing them, so logs
    diverge and servers apply different commands at one index"."""
    net = CoreNet(seed=65, settings=settings("no-truncate", bugged))
    net.set_log("a", [1, 3, 3], term=3)
    net.set_log("c", [1, 3, 3], term=3)
    net.set_log("b", [1, 2, 2], term=3)
    assert elect(net, "a")
    net.tick(0.1)
    assert net.nodes["a"].commit_index == net.nodes["b"].commit_index == 4
    if bugged:
        assert [e.term for e in log_of(net, "b")] == [1, 2, 2, 4]
        assert applied_at(net, "b", 2) != applied_at(net, "a", 2)
    else:
        assert log_of(net, "b") == log_of(net, "a")
        assert net.applied["b"] == net.applied["a"]


@BUGGED
def test_stale_read(bugged: bool) -> None:
    """"ReadIndex answers at once without confirming leadership with a quorum, so a
    deposed leader serves stale reads"."""
    net = CoreNet(seed=66, settings=settings("stale-read", bugged, check_quorum=False))
    net.campaign("a")
    net.tick(0.06)
    net.partition(["a"])
    net.tick(1.0)
    new_leader = next(i for i in net.leaders() if i != "a")
    index, _ = net.propose(new_leader, b"newer")
    net.tick(0.1)
    assert net.nodes[new_leader].commit_index >= index
    net.handle("a", net.nodes["a"].read_index(1, net.now))
    net.tick(0.5)
    if bugged:
        assert net.read_states["a"] == [ReadState(1, net.nodes["a"].commit_index)]
        assert net.nodes["a"].commit_index < index  # the read misses "newer"
    else:
        assert net.read_states["a"] == []
