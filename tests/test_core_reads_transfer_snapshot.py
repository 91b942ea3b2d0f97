"""Leadership transfer (dissertation §3.10), linearizable reads with ReadIndex (§6.4) and
log compaction with InstallSnapshot (paper §7, dissertation chapter 5), on core nodes."""

from __future__ import annotations

import pytest

from raftsim.core.configuration import ChangeKind, ConfigChange, ConfigurationError
from raftsim.core.errors import ChangeNotAllowedYet, NotLeader, ProposalDropped
from raftsim.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    TimeoutNow,
)
from raftsim.core.ready import ReadState, Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

FIVE = ("s1", "s2", "s3", "s4", "s5")


def transfer(net: CoreNet, leader: str, target: str | None) -> None:
    net.handle(leader, net.nodes[leader].transfer_leadership(target, net.now))


def read(net: CoreNet, leader: str, request_id: int) -> None:
    net.handle(leader, net.nodes[leader].read_index(request_id, net.now))


def events(net: CoreNet, node_id: str, kind: str) -> list[dict[str, object]]:
    return [e.fields for _, i, _, e in net.trace if i == node_id and e.kind == kind]


def log_of(net: CoreNet, node_id: str) -> list[object]:
    log = net.nodes[node_id].log
    return list(log.slice(log.first_index, log.last_index + 1))


# ---------------------------------------------------------------------- leadership transfer


def test_transfer_to_a_caught_up_target_sends_timeout_now_and_it_wins_at_once() -> None:
    """Dissertation §3.10: "The prior leader sends a TimeoutNow request to the target
    server. This request has the same effect as the target server's election timer
    firing: the target server starts a new election (incrementing its term)"."""
    net = CoreNet(seed=31)
    net.campaign("a")
    net.tick(0.1)
    term = net.nodes["a"].term
    transfer(net, "a", "b")
    assert [type(m) for m in net.queue] == [TimeoutNow]
    net.deliver_all()
    assert net.leaders() == ["b"]
    assert net.nodes["b"].term == term + 1
    assert net.nodes["a"].role is Role.FOLLOWER and net.nodes["a"].leader_id == "b"
    # the election it starts overrides the servers' leases (§3.10, §4.2.3)
    assert any(isinstance(m, RequestVote) and m.transfer for m in net.sent)
    assert not events(net, "c", "vote-ignored")


def test_transfer_to_a_lagging_target_first_catches_it_up() -> None:
    """Dissertation §3.10: "The prior leader fully updates the target server's log to
    match its own, using the normal log replication mechanism", then sends TimeoutNow."""
    net = CoreNet(seed=32)
    net.campaign("a")
    net.crash("c")
    for n in range(10):
        net.propose("a", f"x{n}".encode())
    net.deliver_all()
    net.start("c")
    last = net.nodes["a"].log.last_index
    net.sent.clear()
    transfer(net, "a", "c")
    assert not any(isinstance(m, TimeoutNow) for m in net.queue)
    net.deliver_all()
    assert net.leaders() == ["c"]
    sent = net.sent
    timeout_now = next(n for n, m in enumerate(sent) if isinstance(m, TimeoutNow))
    caught_up = next(n for n, m in enumerate(sent) if isinstance(m, AppendEntriesResponse)
                     and m.source == "c" and m.success and m.match_index == last)
    assert caught_up < timeout_now
    assert net.nodes["c"].log.last_index == last + 1  # everything, plus its own no-op


def test_transfer_is_aborted_after_an_election_timeout_if_the_target_is_down() -> None:
    """Dissertation §3.10: "If the transfer does not complete within an election
    timeout, the prior leader aborts the transfer and resumes accepting client
    requests"."""
    net = CoreNet(seed=33)
    net.campaign("a")
    net.crash("b")
    transfer(net, "a", "b")
    started = net.now
    assert net.nodes["a"].transfer_target == "b"
    net.tick(net.settings.election_timeout_max - 0.02)
    assert net.nodes["a"].transfer_target == "b"
    net.tick(0.04)
    assert net.nodes["a"].transfer_target is None
    aborted = [t for t, i, _, e in net.trace if i == "a" and e.kind == "transfer-aborted"]
    assert len(aborted) == 1 and aborted[0] - started <= net.settings.election_timeout_max + 0.01
    assert net.leaders() == ["a"]
    index, _ = net.propose("a", b"resumed")
    net.tick(0.1)
    assert net.nodes["a"].commit_index >= index


def test_proposals_are_refused_while_leadership_is_being_transferred() -> None:
    """Dissertation §3.10: "The prior leader stops accepting new client requests"."""
    net = CoreNet(seed=34)
    net.campaign("a")
    net.crash("b")
    transfer(net, "a", "b")
    with pytest.raises(ProposalDropped):
        net.nodes["a"].propose(b"x", net.now)
    with pytest.raises(ProposalDropped):
        net.nodes["a"].change_configuration(ConfigChange(ChangeKind.REMOVE, "c"), net.now)


def test_transfer_without_a_target_picks_the_most_up_to_date_voter() -> None:
    net = CoreNet(seed=35)
    net.campaign("a")
    net.crash("c")
    net.propose("a", b"x")
    net.deliver_all()
    net.start("c")
    transfer(net, "a", None)
    assert net.nodes["a"].transfer_target == "b"
    net.deliver_all()
    assert net.leaders() == ["b"]


def test_transfer_checks_its_target() -> None:
    net = CoreNet(seed=36, nonvoters=("c",))
    net.campaign("a")
    with pytest.raises(ConfigurationError, match='id "c" is not a voter'):
        transfer(net, "a", "c")
    with pytest.raises(NotLeader):
        transfer(net, "b", "a")
    transfer(net, "a", "a")  # already the leader: nothing to do
    assert net.nodes["a"].transfer_target is None


# ---------------------------------------------------------------------- ReadIndex


def test_read_index_is_confirmed_only_after_a_quorum_heartbeat_round() -> None:
    """Dissertation §6.4: "The leader needs to make sure it hasn't been superseded by a
    newer leader of which it is unaware. It issues a new round of heartbeats and waits
    for their acknowledgments from a majority of the cluster. Once these
    acknowledgments are received, the leader knows that there could not have existed a
    leader for a greater term at the moment it sent the heartbeats"."""
    net = CoreNet(FIVE, seed=41)
    net.campaign("s1")
    net.tick(0.06)
    commit = net.nodes["s1"].commit_index
    read(net, "s1", 7)
    round_ = [m for m in net.queue if isinstance(m, AppendEntries) and m.context]
    assert sorted(m.target for m in round_) == ["s2", "s3", "s4", "s5"]
    assert net.read_states["s1"] == []
    net.deliver_where(lambda m: m.target == "s2")
    net.deliver_where(lambda m: m.source == "s2")
    assert net.read_states["s1"] == []  # two of five
    net.deliver_where(lambda m: m.target == "s3")
    net.deliver_where(lambda m: m.source == "s3")
    assert net.read_states["s1"] == [ReadState(7, commit)]  # three of five


def test_read_index_is_the_commit_index_when_the_read_arrived() -> None:
    """Dissertation §6.4: "the leader saves its current commit index in a local
    variable readIndex" and the read is served once "the state machine has advanced at
    least as far as the readIndex"."""
    net = CoreNet(seed=42)
    net.campaign("a")
    net.tick(0.06)
    before = net.nodes["a"].commit_index
    read(net, "a", 1)
    index, _ = net.propose("a", b"later")
    net.deliver_all()
    assert net.nodes["a"].commit_index == index > before
    assert net.read_states["a"] == [ReadState(1, before)]


def test_leader_cut_off_from_the_quorum_never_confirms_a_read() -> None:
    net = CoreNet(seed=43, settings=NodeSettings(check_quorum=False))
    net.campaign("a")
    net.tick(0.06)
    net.partition(["a"])
    read(net, "a", 1)
    net.tick(2.0)
    assert net.nodes["a"].role is Role.LEADER  # without CheckQuorum it never notices
    assert net.read_states["a"] == []


def test_read_fails_when_the_leader_steps_down_before_confirming_it() -> None:
    net = CoreNet(seed=43)
    net.campaign("a")
    net.tick(0.06)
    net.partition(["a"])
    read(net, "a", 1)
    net.tick(1.0)
    assert net.nodes["a"].role is not Role.LEADER
    assert net.read_states["a"] == [ReadState(1, None)]


def test_reads_wait_until_the_leader_has_committed_an_entry_of_its_term() -> None:
    """Dissertation §6.4: "If the leader has not yet marked an entry from its current
    term committed, it waits until it has done so. The Leader Completeness Property
    guarantees that a leader has all committed entries, but at the start of its term, it
    may not know which those are"."""
    net = CoreNet(seed=44, settings=NodeSettings(check_quorum=False))
    net.dropped = lambda m: isinstance(m, AppendEntries)
    net.campaign("a")
    noop = net.nodes["a"].log.last_index
    assert net.nodes["a"].commit_index < noop
    read(net, "a", 1)
    assert not any(m.context for m in net.queue if isinstance(m, AppendEntries))
    net.tick(0.1)  # heartbeats carry no read round while the no-op is uncommitted
    assert not any(m.context for m in net.sent if isinstance(m, AppendEntries))
    assert net.read_states["a"] == []
    net.heal()
    net.tick(0.06)
    assert net.read_states["a"] == [ReadState(1, noop)]


def test_only_the_leader_serves_read_index() -> None:
    net = CoreNet(seed=45)
    net.campaign("a")
    with pytest.raises(NotLeader):
        read(net, "b", 1)


def test_single_voter_confirms_a_read_at_once() -> None:
    net = CoreNet(("a",), seed=46)
    net.campaign("a")
    read(net, "a", 1)
    assert net.read_states["a"] == [ReadState(1, net.nodes["a"].commit_index)]


def test_stale_read_bug_confirms_a_read_at_once_on_a_deposed_leader() -> None:
    """bugs.py "stale-read": "ReadIndex answers at once without confirming leadership
    with a quorum, so a deposed leader serves stale reads"."""
    settings = NodeSettings(check_quorum=False, bugs=frozenset({"stale-read"}))
    net = CoreNet(seed=47, settings=settings)
    net.campaign("a")
    net.tick(0.06)
    net.partition(["a"])
    net.tick(1.0)
    (leader,) = net.leaders()[1:]  # a still believes it leads; the majority moved on
    index, _ = net.propose(leader, b"newer")
    net.tick(0.1)
    assert net.nodes[leader].commit_index >= index
    read(net, "a", 1)
    assert net.read_states["a"] == [ReadState(1, net.nodes["a"].commit_index)]
    assert net.nodes["a"].commit_index < index  # the read misses the newer write


# ---------------------------------------------------------------------- snapshots


def test_follower_far_behind_receives_install_snapshot_and_catches_up() -> None:
    """Paper §7: "the leader must occasionally send snapshots to followers that lag
    behind. This happens when the leader has already discarded the next log entry that
    it needs to send to a follower"."""
    net = CoreNet(seed=51)
    net.campaign("a")
    net.crash("c")
    for n in range(30):
        net.propose("a", f"x{n}".encode())
    net.tick(0.1)
    a = net.nodes["a"]
    compact_at = a.applied - 5
    net.handle("a", a.compact(compact_at, b"state@%d" % compact_at, net.now))
    assert a.log.snapshot_index == compact_at and a.log.term_at(compact_at - 1) is None
    net.start("c")
    net.tick(0.3)
    c = net.nodes["c"]
    snaps = [m for m in net.sent if isinstance(m, InstallSnapshot)]
    assert [(m.target, m.last_included_index) for m in snaps] == [("c", compact_at)]
    assert c.snapshot is not None and c.snapshot.data == b"state@%d" % compact_at
    assert c.log.last_index == a.log.last_index and c.commit_index == a.commit_index
    assert log_of(net, "c") == list(a.log.slice(compact_at + 1, a.log.last_index + 1))
    # its state machine is restored from the snapshot, then applies what follows it
    assert [e.index for e in net.applied["c"] if e.index > 1] == list(
        range(compact_at + 1, a.commit_index + 1))
    # and it survives a restart from what it persisted
    net.crash("c")
    net.start("c")
    assert net.nodes["c"].log.snapshot_index == compact_at
    assert net.nodes["c"].log.last_index == a.log.last_index


def test_stale_probe_rejections_do_not_send_the_snapshot_again() -> None:
    """Paper §7: InstallSnapshot sends "the snapshot to followers that are too far
    behind" -- once. Rejections of probes sent before the snapshot (heartbeats re-probe a
    slow follower) are stale, as etcd's ``MaybeDecrTo`` treats them outside its
    replicate state; acting on each would ship the whole snapshot again every time."""
    net = CoreNet(seed=51)
    net.campaign("a")
    net.crash("c")
    for n in range(30):
        net.propose("a", f"x{n}".encode())
    net.tick(0.1)
    a = net.nodes["a"]
    net.handle("a", a.compact(a.applied, b"state", net.now))
    net.start("c")
    held: list[Message] = []  # c is slow: its answers to three probes arrive late

    def hold_answers_from_c(m: Message) -> bool:
        if m.source == "c":
            held.append(m)
            return True
        return False

    net.dropped = hold_answers_from_c
    net.tick(0.16)
    assert len(held) == 3
    assert all(isinstance(m, AppendEntriesResponse) and not m.success for m in held)
    net.heal()
    net.sent.clear()
    net.queue.extend(held)
    net.tick(0.3)
    assert sum(isinstance(m, InstallSnapshot) for m in net.sent) == 1
    assert net.nodes["c"].log.last_index == a.log.last_index


def test_snapshot_carries_the_configuration() -> None:
    """Paper §7: "To support cluster membership changes (Section 6), the snapshot also
    includes the latest configuration in the log as of last included index"."""
    net = CoreNet(("a", "b", "c", "d"), seed=52)
    net.campaign("a")
    net.crash("d")
    ready = net.handle("a", net.nodes["a"].change_configuration(
        ConfigChange(ChangeKind.REMOVE, "c"), net.now))
    assert ready.proposed is not None
    config_index = ready.proposed[0]
    for n in range(10):
        net.propose("a", f"x{n}".encode())
    net.tick(0.1)
    a = net.nodes["a"]
    net.handle("a", a.compact(a.applied, b"state", net.now))
    net.start("d")
    net.tick(0.3)
    d = net.nodes["d"]
    assert d.log.snapshot_index == a.log.snapshot_index
    assert d.configuration.voters == ("a", "b", "d")
    assert d.committed_configuration == (config_index, a.configuration)
    net.crash("d")
    net.start("d")
    assert net.nodes["d"].committed_configuration == (config_index, a.configuration)
    net.crash("a")
    net.start("a")
    assert net.nodes["a"].committed_configuration == (config_index, a.configuration)


def test_snapshot_describing_a_prefix_keeps_the_entries_that_follow_it() -> None:
    """Paper §7: "If instead the follower receives a snapshot that describes a prefix of
    its log (due to retransmission or by mistake), then log entries covered by the
    snapshot are deleted but entries following the snapshot are still valid and must be
    retained"."""
    net = CoreNet(seed=53)
    net.campaign("a")
    for n in range(5):
        net.propose("a", f"x{n}".encode())
    net.deliver_all()
    b = net.nodes["b"]
    last = b.log.last_index
    assert b.commit_index < last
    a = net.nodes["a"]
    snap = InstallSnapshot(a.term, "a", "b", last - 2, a.log.term_at(last - 2) or 0,
                           b"", b"state")
    net.queue.append(snap)
    net.deliver_where(lambda m: m is snap)
    assert b.log.snapshot_index == last - 2
    assert b.log.last_index == last  # the two entries after it survive


def test_compaction_covers_only_applied_entries() -> None:
    net = CoreNet(seed=54)
    net.campaign("a")
    a = net.nodes["a"]
    with pytest.raises(ValueError, match="only"):
        a.compact(a.applied + 1, b"", net.now)


def test_change_is_refused_while_one_is_uncommitted_even_after_compaction() -> None:
    net = CoreNet(seed=55)
    net.campaign("a")
    net.tick(0.1)
    a = net.nodes["a"]
    net.handle("a", a.compact(a.applied, b"", net.now))
    net.dropped = lambda m: True
    net.handle("a", a.change_configuration(ConfigChange(ChangeKind.REMOVE, "c"), net.now))
    with pytest.raises(ChangeNotAllowedYet):
        a.change_configuration(ConfigChange(ChangeKind.REMOVE, "b"), net.now)


# ---------------------------------------------------------------------- conformance (issue 12)


def test_a_read_whose_round_was_lost_is_confirmed_by_the_next_heartbeat_round() -> None:
    """Dissertation §6.4 (etcd TestReadOnlyDuplicateRequest): the leader only needs *a*
    quorum of acknowledgments to a heartbeat sent after the read arrived. If that first
    round's answers are lost, any later round confirms the read, instead of the read
    waiting for its client's timeout."""
    net = CoreNet(seed=48)
    net.campaign("a")
    net.tick(0.06)
    commit = net.nodes["a"].commit_index
    read(net, "a", 1)
    net.queue = [m for m in net.queue if not (isinstance(m, AppendEntries) and m.context)]
    net.deliver_all()
    assert net.read_states["a"] == []
    net.handle("a", net.nodes["a"].heartbeat(net.now))  # the next round, whatever its kind
    net.deliver_all()
    assert net.read_states["a"] == [ReadState(1, commit)]


def test_a_read_is_confirmed_by_the_periodic_heartbeat_after_its_round_was_lost() -> None:
    net = CoreNet(seed=49)
    net.campaign("a")
    net.tick(0.06)
    read(net, "a", 1)
    net.queue = [m for m in net.queue if not (isinstance(m, AppendEntries) and m.context)]
    net.tick(net.settings.heartbeat_interval + 0.01)
    assert [s.request_id for s in net.read_states["a"]] == [1]


def test_concurrent_reads_share_one_confirmation_round() -> None:
    """hashicorp/raft's VerifyLeader: reads that arrive while a round is in flight wait
    for the next round together, so N concurrent reads cost two rounds, not N."""
    net = CoreNet(FIVE, seed=50)
    net.campaign("s1")
    net.tick(0.06)
    net.sent.clear()
    for request_id in range(1, 11):
        read(net, "s1", request_id)
    net.deliver_all()
    assert sorted(s.request_id for s in net.read_states["s1"]) == list(range(1, 11))
    rounds = {m.context for m in net.sent if isinstance(m, AppendEntries) and m.context}
    assert len(rounds) == 2
    # a read that arrived after the first round was sent is not confirmed by that round
    first_round = min(rounds)
    assert [s.request_id for s in net.read_states["s1"]][0] == 1
    assert first_round < max(rounds)


def test_a_read_is_not_confirmed_by_a_round_sent_before_it_arrived() -> None:
    net = CoreNet(seed=51)
    net.campaign("a")
    net.tick(0.06)
    read(net, "a", 1)
    read(net, "a", 2)  # the round in flight was sent before this read arrived
    net.deliver_where(lambda m: m.target != "a")
    net.deliver_where(lambda m: m.target == "a" and isinstance(m, AppendEntriesResponse))
    assert [s.request_id for s in net.read_states["a"]] == [1]
    net.deliver_all()
    assert [s.request_id for s in net.read_states["a"]] == [1, 2]


def test_repeating_a_transfer_to_the_same_target_keeps_its_deadline() -> None:
    """etcd TestLeaderTransferSecondTransferToSameNode: a client retrying the same
    transfer must not keep the leader refusing writes beyond one election timeout."""
    net = CoreNet(seed=37)
    net.campaign("a")
    net.crash("b")
    transfer(net, "a", "b")
    started = net.now
    net.tick(net.settings.election_timeout_max / 2)
    transfer(net, "a", "b")
    net.tick(net.settings.election_timeout_max / 2 + 0.02)
    assert net.nodes["a"].transfer_target is None
    aborted = [t for t, i, _, e in net.trace if i == "a" and e.kind == "transfer-aborted"]
    assert len(aborted) == 1
    assert aborted[0] - started <= net.settings.election_timeout_max + 0.02


def test_transfer_to_the_leader_itself_cancels_a_pending_transfer() -> None:
    """etcd TestLeaderTransferBack."""
    net = CoreNet(seed=38)
    net.campaign("a")
    net.crash("b")
    transfer(net, "a", "b")
    assert net.nodes["a"].transfer_target == "b"
    transfer(net, "a", "a")
    assert net.nodes["a"].transfer_target is None
    assert events(net, "a", "transfer-aborted")
    index, _ = net.propose("a", b"accepted again")
    net.tick(0.1)
    assert net.nodes["a"].commit_index >= index


def test_transfer_to_another_target_replaces_the_pending_one() -> None:
    """etcd TestLeaderTransferSecondTransferToAnotherNode."""
    net = CoreNet(seed=39)
    net.campaign("a")
    net.crash("b")
    transfer(net, "a", "b")
    transfer(net, "a", "c")
    assert [f["target"] for f in events(net, "a", "transfer-aborted")] == ["b"]
    net.deliver_all()
    assert net.leaders() == ["c"]


def test_a_heartbeat_during_a_read_round_starts_no_extra_round() -> None:
    net = CoreNet(FIVE, seed=52)
    net.campaign("s1")
    net.tick(0.06)
    read(net, "s1", 1)
    net.handle("s1", net.nodes["s1"].heartbeat(net.now))  # the periodic one falls due
    net.sent.clear()
    net.deliver_all()
    assert [s.request_id for s in net.read_states["s1"]] == [1]
    assert not any(isinstance(m, AppendEntries) and m.context for m in net.sent)


def test_reads_that_waited_for_the_first_commit_share_one_round() -> None:
    net = CoreNet(seed=53, settings=NodeSettings(check_quorum=False))
    net.dropped = lambda m: isinstance(m, AppendEntries)
    net.campaign("a")
    read(net, "a", 1)
    read(net, "a", 2)
    net.heal()
    net.sent.clear()
    net.tick(0.06)
    assert sorted(s.request_id for s in net.read_states["a"]) == [1, 2]
    rounds = {m.context for m in net.sent if isinstance(m, AppendEntries) and m.context}
    assert len(rounds) == 1
