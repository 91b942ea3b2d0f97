"""The inputs etcd-io/raft's API has besides step and tick (Campaign, MsgBeat,
ReportUnreachable, aborting a transfer), so tests and tools drive a node without
moving its clock."""

from __future__ import annotations

from raftsim.core.messages import AppendEntries, RequestVote
from raftsim.core.node import ReplicationState
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet


def test_campaign_starts_an_election_now_without_waiting_for_the_timer() -> None:
    net = CoreNet(seed=61)
    node = net.nodes["b"]
    assert node.deadline() > net.now
    net.handle("b", node.campaign(net.now))
    assert node.role is Role.PRE_CANDIDATE
    assert {m.target for m in net.queue if isinstance(m, RequestVote) and m.pre_vote} == {
        "a", "c"}
    net.deliver_all()
    assert net.leaders() == ["b"]


def test_campaign_without_prevote_raises_the_term_at_once() -> None:
    net = CoreNet(seed=62, settings=NodeSettings(pre_vote=False))
    term = net.nodes["c"].term
    net.handle("c", net.nodes["c"].campaign(net.now))
    assert net.nodes["c"].role is Role.CANDIDATE and net.nodes["c"].term == term + 1


def test_campaign_is_ignored_by_a_leader_and_by_a_nonvoter() -> None:
    net = CoreNet(seed=63, nonvoters=("c",))
    net.handle("a", net.nodes["a"].campaign(net.now))
    net.deliver_all()
    assert net.leaders() == ["a"]
    term = net.nodes["a"].term
    net.handle("a", net.nodes["a"].campaign(net.now))
    net.handle("c", net.nodes["c"].campaign(net.now))
    assert net.queue == [] and net.nodes["a"].term == term
    assert net.nodes["c"].role is Role.FOLLOWER


def test_heartbeat_sends_a_round_now_and_is_ignored_by_a_follower() -> None:
    net = CoreNet(seed=64)
    net.campaign("a")
    net.tick(0.01)
    net.handle("b", net.nodes["b"].heartbeat(net.now))
    assert net.queue == []
    net.handle("a", net.nodes["a"].heartbeat(net.now))
    beats = [m for m in net.queue if isinstance(m, AppendEntries) and not m.entries]
    assert sorted(m.target for m in beats) == ["b", "c"]


def test_report_unreachable_stops_pipelining_to_that_peer() -> None:
    """etcd ReportUnreachable: a replicating peer goes back to probing, so the leader
    stops streaming entries into a link that is down."""
    net = CoreNet(seed=65)
    net.campaign("a")
    net.tick(0.06)
    leader = net.nodes["a"]
    assert leader.progress["b"].state is ReplicationState.REPLICATE
    net.handle("a", leader.report_unreachable("b", net.now))
    assert leader.progress["b"].state is ReplicationState.PROBE
    net.sent.clear()
    for n in range(3):
        net.propose("a", f"x{n}".encode())
    to_b = [m for m in net.sent if isinstance(m, AppendEntries) and m.target == "b"]
    to_c = [m for m in net.sent if isinstance(m, AppendEntries) and m.target == "c"]
    assert len(to_b) == 1 and len(to_c) == 3
    net.deliver_all()
    assert leader.progress["b"].match == leader.log.last_index  # it was not down after all
    net.handle("a", leader.report_unreachable("nobody", net.now))  # unknown: ignored


def test_cancel_transfer_resumes_taking_writes_at_once() -> None:
    net = CoreNet(seed=66)
    net.campaign("a")
    net.crash("b")
    net.handle("a", net.nodes["a"].transfer_leadership("b", net.now))
    assert net.nodes["a"].transfer_target == "b"
    ready = net.handle("a", net.nodes["a"].cancel_transfer(net.now))
    assert net.nodes["a"].transfer_target is None
    assert [e.kind for e in ready.events] == ["transfer-aborted"]
    net.propose("a", b"accepted")
    net.handle("a", net.nodes["a"].cancel_transfer(net.now))  # nothing pending: no event
