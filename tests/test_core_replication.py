"""Log replication and commitment (paper §5.3, §5.4.2, Figures 7 and 8), checked on core
nodes over the in-memory CoreNet. Each test is named after the sentence it checks."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest

from raftsim.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Message,
)
from raftsim.core.node import ReplicationState
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

FIVE = ("s1", "s2", "s3", "s4", "s5")


def log_of(net: CoreNet, node_id: str) -> list[Entry]:
    log = net.nodes[node_id].log
    return log.slice(log.first_index, log.last_index + 1)


def terms_of(net: CoreNet, node_id: str) -> list[int]:
    return [e.term for e in log_of(net, node_id)]


def elect(net: CoreNet, node_id: str, attempts: int = 5) -> None:
    for _ in range(attempts):
        net.campaign(node_id)
        if net.nodes[node_id].role is Role.LEADER:
            return
    raise AssertionError(f"{node_id} could not win an election")


def rejections_from(net: CoreNet, node_id: str) -> int:
    return sum(1 for m in net.sent
               if isinstance(m, AppendEntriesResponse) and m.source == node_id and not m.success)


def commands(net: CoreNet, node_id: str) -> list[bytes]:
    return [e.data for e in net.applied[node_id] if e.kind is EntryKind.COMMAND]


# ---------------------------------------------------------------------- Figure 7

LEADER_FIG7 = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7 = {
    "a (missing one entry)": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b (missing many entries)": [1, 1, 1, 4],
    "c (one extra uncommitted entry)": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d (extra entries of a later term)": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e (missing entries and extra entries of an older term)": [1, 1, 1, 4, 4, 4, 4],
    "f (many conflicting entries from older terms)": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("shape", list(FIGURE_7))
def test_leader_forces_the_followers_logs_to_duplicate_its_own(shape: str) -> None:
    """§5.3 / Figure 7: "the leader handles inconsistencies by forcing the followers'
    logs to duplicate its own. This means that conflicting entries in follower logs will
    be overwritten with entries from the leader's log" ... "a follower may be missing
    entries that are present on the leader, it may have extra entries that are not
    present on the leader, or both"."""
    follower = FIGURE_7[shape]
    net = CoreNet(("leader", "follower", "other"), seed=11)
    net.set_log("leader", LEADER_FIG7, term=7)
    net.set_log("other", LEADER_FIG7, term=7)
    net.set_log("follower", follower, term=max(follower))
    elect(net, "leader")
    leader = net.nodes["leader"]
    assert leader.term == 8
    assert terms_of(net, "leader") == LEADER_FIG7 + [8]
    assert log_of(net, "follower") == log_of(net, "leader")
    assert leader.commit_index == 11
    net.tick(0.06)  # the next heartbeat carries the commit index
    assert net.nodes["follower"].commit_index == 11
    # and what the follower applies is exactly what the leader applies
    assert net.applied["follower"] == net.applied["leader"]


# ---------------------------------------------------------------------- fast back-off


def test_conflicting_term_is_skipped_in_one_round_trip_not_one_per_entry() -> None:
    """§5.3: "If desired, the protocol can be optimized to reduce the number of rejected
    AppendEntries RPCs ... With this information, the leader can decrement nextIndex to
    bypass all of the conflicting entries in that term; one AppendEntries RPC will be
    required for each term with conflicting entries, rather than one RPC per entry"."""
    net = CoreNet(("leader", "follower", "other"), seed=12)
    net.set_log("leader", [1] + [3] * 100, term=3)
    net.set_log("other", [1] + [3] * 100, term=3)
    net.set_log("follower", [1] + [2] * 100, term=3)
    elect(net, "leader")
    assert log_of(net, "follower") == log_of(net, "leader")
    assert rejections_from(net, "follower") <= 2  # naive back-off: 100


def test_one_rejection_per_conflicting_term_when_the_leader_knows_the_term() -> None:
    net = CoreNet(("leader", "follower", "other"), seed=12)
    leader_log = [1] + [2] * 30 + [4] * 30
    net.set_log("leader", leader_log, term=4)
    net.set_log("other", leader_log, term=4)
    net.set_log("follower", [1] + [2] * 40 + [3] * 40, term=4)
    elect(net, "leader")
    assert log_of(net, "follower") == log_of(net, "leader")
    assert rejections_from(net, "follower") <= 3  # naive back-off: ~50


def test_follower_missing_a_hundred_entries_is_found_in_one_rejection() -> None:
    net = CoreNet(("leader", "follower", "other"), seed=13)
    net.set_log("leader", [1] + [3] * 100, term=3)
    net.set_log("other", [1] + [3] * 100, term=3)
    net.set_log("follower", [1], term=3)
    elect(net, "leader")
    assert log_of(net, "follower") == log_of(net, "leader")
    assert rejections_from(net, "follower") == 1


# ---------------------------------------------------------------------- batching, pipelining


def test_entries_are_batched_up_to_max_entries_per_message() -> None:
    """Dissertation chapter 10 (batching): the leader sends many entries in one
    AppendEntries request, at most ``max_entries_per_message`` of them."""
    net = CoreNet(seed=14, settings=NodeSettings(max_entries_per_message=5))
    net.campaign("a")
    net.crash("c")
    for n in range(40):
        net.propose("a", f"x{n}".encode())
    net.deliver_all()
    assert net.nodes["a"].commit_index == net.nodes["a"].log.last_index
    net.sent.clear()
    net.start("c")
    net.tick(0.3)
    assert log_of(net, "c") == log_of(net, "a")
    to_c = [m for m in net.sent if isinstance(m, AppendEntries) and m.target == "c"
            and m.entries]
    assert all(len(m.entries) <= 5 for m in to_c)
    assert max(len(m.entries) for m in to_c) == 5
    assert len(to_c) >= 8
    assert commands(net, "c") == [f"x{n}".encode() for n in range(40)]


def test_leader_pipelines_several_append_entries_without_waiting_for_answers() -> None:
    """Dissertation chapter 10 (pipelining): the leader sends the next AppendEntries
    request before the previous one is acknowledged, up to ``max_inflight`` of them."""
    net = CoreNet(seed=15, settings=NodeSettings(max_inflight=4))
    net.campaign("a")
    for n in range(20):
        net.propose("a", f"x{n}".encode())
    in_flight = [m for m in net.queue if isinstance(m, AppendEntries) and m.target == "b"]
    assert len(in_flight) == 4  # four requests out, none acknowledged yet
    assert [m.entries[0].data for m in in_flight] == [b"x0", b"x1", b"x2", b"x3"]
    net.deliver_all()
    net.tick(0.06)
    for i in net.ids:
        assert commands(net, i) == [f"x{n}".encode() for n in range(20)]


def test_follower_catching_up_receives_a_window_of_requests_at_once() -> None:
    """Once a lagging follower's position is found, the leader streams the rest without
    waiting for each answer: up to ``max_inflight`` requests between two responses."""
    net = CoreNet(seed=16, settings=NodeSettings(max_inflight=3, max_entries_per_message=2))
    net.campaign("a")
    net.crash("c")
    for n in range(30):
        net.propose("a", f"x{n}".encode())
    net.deliver_all()
    net.sent.clear()
    net.start("c")
    net.tick(0.2)
    assert log_of(net, "c") == log_of(net, "a")
    run = longest = 0
    for m in net.sent:
        if isinstance(m, AppendEntries) and m.target == "c" and m.entries:
            run += 1
            longest = max(longest, run)
        elif isinstance(m, AppendEntriesResponse) and m.source == "c":
            run = 0
    assert longest == 3
    sizes = [len(m.entries) for m in net.sent if isinstance(m, AppendEntries) and m.target == "c"]
    assert sum(sizes) >= 30 and max(sizes) == 2


@pytest.mark.parametrize("seed", range(3))
def test_lost_messages_are_retried_until_every_log_matches(seed: int) -> None:
    """§5.3: "If followers crash or run slowly, or if network packets are lost, the
    leader retries AppendEntries RPCs indefinitely ... until all followers eventually
    store all log entries"."""
    rng = random.Random(seed)
    net = CoreNet(FIVE, seed=seed)
    lost: list[Message] = []

    def drop(m: Message) -> bool:
        if rng.random() < 0.2:
            lost.append(m)
            return True
        return False

    net.dropped = drop
    net.tick(1.0)
    committed: list[bytes] = []
    for n in range(30):
        data = f"x{n}".encode()
        for _attempt in range(20):
            leaders = net.leaders()
            if not leaders:
                net.tick(0.2)
                continue
            leader = leaders[0]
            index, term = net.propose(leader, data)
            net.tick(0.3)
            node = net.nodes[leader]
            if node.commit_index >= index and node.log.term_at(index) == term:
                committed.append(data)
                break
    assert len(committed) == 30
    for _ in range(100):
        net.tick(0.1)
        logs = [log_of(net, i) for i in FIVE]
        commits = {net.nodes[i].commit_index for i in FIVE}
        if all(x == logs[0] for x in logs) and len(commits) == 1:
            break
    assert all(log_of(net, i) == log_of(net, "s1") for i in FIVE)
    assert len(lost) > 100
    assert any(isinstance(m, AppendEntries) and m.entries for m in lost)
    applied = [commands(net, i) for i in FIVE]
    assert all(a == applied[0] for a in applied)
    assert [c for c in applied[0] if c in committed] == committed


# ---------------------------------------------------------------------- Figure 8


def trim_after(index: int, source: str) -> Callable[[Message], Message]:
    """A rewrite that removes entries past ``index`` from ``source``'s AppendEntries:
    they are lost on the way, while the rest of the message arrives."""

    def rewrite(m: Message) -> Message:
        if isinstance(m, AppendEntries) and m.source == source:
            return dataclasses.replace(m, entries=tuple(e for e in m.entries
                                                        if e.index <= index))
        return m

    return rewrite


def figure_8_up_to_c(settings: NodeSettings) -> CoreNet:
    """Paper Figure 8 (a)-(c). Index 1 is the bootstrap configuration (term 1)."""
    net = CoreNet(FIVE, seed=8, settings=settings)
    # (a) S1 is leader in term 2 and replicates its entry at index 2 to S2 only.
    net.dropped = lambda m: (isinstance(m, AppendEntries) and m.source == "s1"
                             and m.target in ("s3", "s4", "s5"))
    elect(net, "s1")
    assert net.nodes["s1"].term == 2
    assert terms_of(net, "s1") == terms_of(net, "s2") == [1, 2]
    assert all(terms_of(net, i) == [1] for i in ("s3", "s4", "s5"))
    # (b) S1 crashes; S5 is elected in term 3 with votes from S3, S4 and itself, and
    # accepts a different entry at index 2.
    net.crash("s1")
    net.dropped = lambda m: isinstance(m, AppendEntries) and m.source == "s5"
    elect(net, "s5")
    assert net.leader_terms()[3] == {"s5"}
    votes = {i: e.fields["granted"] for _, i, term, e in net.trace
             if e.kind == "vote" and term == 3 and e.fields["candidate"] == "s5"}
    assert votes == {"s2": False, "s3": True, "s4": True}
    assert terms_of(net, "s5") == [1, 3]
    # (c) S5 crashes; S1 restarts, is elected (term 4) and continues replication: the
    # term-2 entry reaches S3, so it is stored on a majority (S1, S2, S3), while S1's
    # term-4 entry stays on S1 alone.
    net.crash("s5")
    net.start("s1")
    net.dropped = lambda m: (isinstance(m, AppendEntries) and m.source == "s1"
                             and m.target == "s4")
    net.rewrite = trim_after(2, "s1")
    elect(net, "s1")
    assert net.nodes["s1"].term == 4
    assert terms_of(net, "s1") == [1, 2, 4]
    assert terms_of(net, "s2") == terms_of(net, "s3") == [1, 2]
    assert terms_of(net, "s4") == [1]
    assert net.nodes["s1"].progress["s2"].match == net.nodes["s1"].progress["s3"].match == 2
    return net


def figure_8_d(net: CoreNet) -> None:
    """(d) S1 crashes; S5 restarts, wins term 5 with votes from S2, S3 and S4 (its last
    term 3 beats their 2) and overwrites index 2 with its own term-3 entry."""
    net.crash("s1")
    net.heal()
    net.rewrite = lambda m: m
    net.start("s5")
    elect(net, "s5")
    assert net.nodes["s5"].term == 5
    net.tick(0.2)


def test_figure_8_leader_never_commits_an_earlier_term_entry_by_counting_replicas() -> None:
    """§5.4.2: "a leader cannot immediately conclude that an entry from a previous term
    is committed once it is stored on a majority of servers. Figure 8 illustrates a
    situation where an old log entry is stored on a majority of servers, yet can still be
    overwritten by a future leader" ... "Raft never commits log entries from previous
    terms by counting replicas. Only log entries from the leader's current term are
    committed by counting replicas"."""
    net = figure_8_up_to_c(NodeSettings(pre_vote=False, check_quorum=False))
    assert net.nodes["s1"].commit_index == 1  # stored on a majority, yet not committed
    assert all(e.index < 2 for e in net.applied["s1"])
    figure_8_d(net)
    # ... and it is indeed overwritten, which was safe because it was never committed.
    assert terms_of(net, "s2")[:3] == terms_of(net, "s3")[:3] == [1, 3, 5]
    net.start("s1")
    net.tick(0.5)
    for i in FIVE:
        assert log_of(net, i) == log_of(net, "s5")
        assert [(e.index, e.term) for e in net.applied[i] if e.index >= 2][:2] == [(2, 3), (3, 5)]


def test_figure_8_earlier_term_entry_commits_once_a_current_term_entry_after_it_does() -> None:
    """§5.4.2 / Figure 8 (e): "if S1 replicates an entry from its current term on a
    majority of the servers before crashing, as in (e), then this entry is committed (S5
    cannot win an election). At this point all preceding entries in the log are committed
    as well"."""
    net = figure_8_up_to_c(NodeSettings(pre_vote=False, check_quorum=False))
    net.rewrite = lambda m: m
    net.tick(0.06)  # a heartbeat round carries the term-4 entry to S2 and S3
    assert net.nodes["s1"].commit_index == 3
    assert [(e.index, e.term) for e in net.applied["s1"][-2:]] == [(2, 2), (3, 4)]
    net.crash("s1")
    net.heal()
    net.start("s5")
    for _ in range(5):
        net.campaign("s5")
        assert net.nodes["s5"].role is not Role.LEADER  # S2, S3 refuse: their log is newer
    net.tick(1.0)
    leader = net.leaders()[0]
    assert leader in ("s2", "s3")
    assert terms_of(net, leader)[:3] == [1, 2, 4]
    assert terms_of(net, "s5")[:3] == [1, 2, 4]  # S5's term-3 entry is the one erased


def test_figure_8_with_commit_prior_term_bug_a_committed_entry_is_lost() -> None:
    """The counter-example: with ``commit-prior-term`` S1 commits the term-2 entry by
    counting replicas in (c); S5 then wins term 5 and overwrites it, so the cluster
    applies a different entry at an index S1 has already applied."""
    net = figure_8_up_to_c(NodeSettings(pre_vote=False, check_quorum=False,
                                        bugs=frozenset({"commit-prior-term"})))
    assert net.nodes["s1"].commit_index == 2
    s1_applied = {e.index: e for e in net.applied["s1"]}
    assert s1_applied[2].term == 2
    figure_8_d(net)
    s5_applied = {e.index: e for e in net.applied["s5"]}
    assert s5_applied[2].term == 3  # a different entry committed at index 2
    assert net.nodes["s5"].commit_index >= 2
    assert terms_of(net, "s2")[:2] == [1, 3]  # S2's copy of the committed entry is gone


def test_follower_applies_entries_only_once_the_leader_says_they_are_committed() -> None:
    """Figure 2, AppendEntries: "If leaderCommit > commitIndex, set commitIndex =
    min(leaderCommit, index of last new entry)"; §5.3: "Once a follower learns that a log
    entry is committed, it applies the entry to its local state machine"."""
    net = CoreNet(seed=17)
    net.campaign("a")
    index, _ = net.propose("a", b"x")
    net.deliver_where(lambda m: isinstance(m, AppendEntries))
    assert net.nodes["b"].log.last_index == index
    assert net.nodes["b"].commit_index < index
    assert b"x" not in commands(net, "b")
    net.deliver_all()
    assert net.nodes["a"].commit_index == index
    assert commands(net, "a") == [b"x"]
    assert b"x" not in commands(net, "b")  # learns of it with the next message
    net.tick(0.06)
    assert commands(net, "b") == commands(net, "c") == [b"x"]


def test_new_leader_appends_a_noop_to_commit_entries_of_earlier_terms() -> None:
    """Dissertation §3.6.2 / paper §8: "each leader commit a blank no-op entry into the
    log at the start of its term"."""
    net = CoreNet(("a", "b", "c"), seed=18)
    net.set_log("a", [1, 2, 2], term=2)
    net.set_log("b", [1, 2, 2], term=2)
    net.set_log("c", [1, 2], term=2)
    elect(net, "a")
    assert net.nodes["a"].log.entry(4).kind is EntryKind.NOOP
    assert net.nodes["a"].log.entry(4).term == 3
    assert net.nodes["a"].commit_index == 4
    assert [e.index for e in net.applied["a"]] == [1, 2, 3, 4]


def test_a_leader_never_overwrites_or_deletes_entries_in_its_own_log() -> None:
    """Figure 3: "Leader Append-Only: a leader never overwrites or deletes entries in
    its log; it only appends new entries"."""
    net = CoreNet(("leader", "follower", "other"), seed=19)
    net.set_log("leader", [1, 2, 2], term=3)
    net.set_log("other", [1, 2, 2], term=3)
    net.set_log("follower", [1, 3, 3, 3, 3], term=3)  # longer, but denies... and loses
    elect(net, "leader")
    before = log_of(net, "leader")
    net.tick(0.5)
    assert log_of(net, "leader")[: len(before)] == before
    assert not any(e.kind == "truncate" for _, i, _, e in net.trace if i == "leader")


def test_a_follower_slower_than_a_heartbeat_is_not_taken_for_a_lost_append() -> None:
    """A follower that takes 150 ms to answer, three heartbeat intervals: the answer to a
    heartbeat sent just before an AppendEntries arrives when that AppendEntries has been
    on its way longer than a heartbeat interval, yet nothing was lost. The leader judges
    by the follower's recent round trips: it resends nothing and keeps pipelining."""
    net = CoreNet()
    net.campaign("a")
    leader = net.nodes["a"]
    assert leader.role is Role.LEADER

    def appends_to_b(m: Message) -> bool:
        return isinstance(m, AppendEntries) and m.target == "b"

    def answers_from_b(m: Message) -> bool:
        return isinstance(m, AppendEntriesResponse) and m.source == "b"

    for n in range(3):  # round trips of 150 ms to b; c answers at once
        net.propose("a", b"x%d" % n)
        net.deliver_where(lambda m: m.target == "c" or m.source == "c")
        net.deliver_where(appends_to_b)
        net.now += 0.15
        net.deliver_where(answers_from_b)
        net.deliver_all()
    assert leader.progress["b"].match == leader.log.last_index
    net.handle("a", leader.heartbeat(net.now))
    net.now += 0.01
    net.propose("a", b"after the heartbeat")
    net.deliver_where(lambda m: m.target == "c" or m.source == "c")
    net.deliver_where(appends_to_b)  # the heartbeat, then the entry: b answers both
    net.now += 0.16
    sent_before = len(net.sent)
    heartbeat_answer = next(m for m in net.queue if answers_from_b(m))
    assert heartbeat_answer.match_index < leader.log.last_index
    net.deliver_where(lambda m: m is heartbeat_answer)
    assert leader.progress["b"].state is ReplicationState.REPLICATE
    assert not any(appends_to_b(m) and m.entries for m in net.sent[sent_before:])
    net.deliver_where(answers_from_b)  # the entry's answer, 160 ms after it was sent
    assert leader.progress["b"].match == leader.log.last_index
