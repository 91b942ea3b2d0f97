"""Messages a correct server never sends, stepped into core nodes: the core survives them
and keeps its state consistent (issue 11). The wire refuses what cannot be decoded; these
are the ones that decode: a follower reporting more than the leader holds, a leader's hint
past its log, TimeoutNow from a server that is not the leader."""

from __future__ import annotations

from raftsim.core.messages import AppendEntriesResponse, InstallSnapshotResponse, TimeoutNow
from raftsim.core.ready import Role
from tests.corenet import CoreNet


def elected() -> tuple[CoreNet, str]:
    net = CoreNet(("a", "b", "c"))
    net.campaign("a")
    net.tick(0.2)
    assert net.leaders() == ["a"]
    return net, "a"


def step(net: CoreNet, node_id: str, message: object) -> None:
    net.handle(node_id, net.nodes[node_id].step(message, net.now))  # type: ignore[arg-type]


def test_an_inflated_match_index_is_capped_at_the_leaders_last_index() -> None:
    net, leader = elected()
    node = net.nodes[leader]
    last = node.log.last_index
    step(net, leader, AppendEntriesResponse(node.term, "b", leader, True, 2**62))
    step(net, leader, AppendEntriesResponse(node.term, "c", leader, True, 2**62))
    assert node.progress["b"].match == last
    assert node.commit_index <= last
    # Before the cap: the commit index passed the log and this raised AssertionError.
    index, _ = net.propose(leader, b"x")
    assert index == last + 1
    net.tick(0.2)
    assert {net.nodes[i].commit_index for i in "abc"} == {index}


def test_an_inflated_snapshot_match_index_is_capped_too() -> None:
    net, leader = elected()
    node = net.nodes[leader]
    last = node.log.last_index
    step(net, leader, InstallSnapshotResponse(node.term, "b", leader, 2**62))
    assert node.progress["b"].match == last
    assert node.progress["b"].next == last + 1
    net.propose(leader, b"x")
    net.tick(0.2)
    assert net.nodes["b"].log.last_index == node.log.last_index


def test_a_rejection_hinting_past_the_log_keeps_next_within_it() -> None:
    net, leader = elected()
    node = net.nodes[leader]
    net.propose(leader, b"x")
    net.tick(0.2)
    pr = node.progress["b"]
    # While replicating, a rejection above the match index is not stale: this one
    # rejects an index far past the log and hints further still.
    step(net, leader, AppendEntriesResponse(node.term, "b", leader, False, 2**62, 0, 2**62))
    assert pr.next <= node.log.last_index + 1
    net.propose(leader, b"y")  # before the cap: "a compacted log always has a snapshot"
    net.tick(0.2)
    assert net.nodes["b"].log.last_index == node.log.last_index


def test_timeout_now_from_a_server_that_is_not_the_leader_is_ignored() -> None:
    net, leader = elected()
    term = net.nodes[leader].term
    for _ in range(20):  # a storm
        step(net, "b", TimeoutNow(term, "c", "b"))
        net.deliver_all()
    assert net.nodes["b"].role is Role.FOLLOWER
    assert net.leaders() == [leader]
    assert {net.nodes[i].term for i in "abc"} == {term}
    # The leader's own TimeoutNow still hands leadership over.
    step(net, "b", TimeoutNow(term, leader, "b"))
    net.deliver_all()
    assert net.leaders() == ["b"]
