"""Leader election (paper §5.2, §5.4.1; dissertation §3.4, §4.2.3, §9.6), checked on
core nodes over the in-memory CoreNet. Each test is named after the sentence it checks."""

from __future__ import annotations

import random

import pytest

from raftsim.core.messages import RequestVote, RequestVoteResponse
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

FIVE = ("s1", "s2", "s3", "s4", "s5")
NO_PREVOTE = NodeSettings(pre_vote=False)


def events(net: CoreNet, node_id: str, kind: str) -> list[dict[str, object]]:
    return [e.fields for _, i, _, e in net.trace if i == node_id and e.kind == kind]


def assert_election_safety(net: CoreNet) -> None:
    """Paper Figure 3: "Election Safety: at most one leader can be elected in a given
    term"."""
    for term, leaders in net.leader_terms().items():
        assert len(leaders) <= 1, f"term {term} had leaders {sorted(leaders)}"


@pytest.mark.parametrize("seed", range(5))
def test_follower_that_hears_nothing_starts_an_election_after_its_randomized_timeout(
    seed: int,
) -> None:
    """§5.2: "If a follower receives no communication over a period of time called the
    election timeout, then it assumes there is no viable leader and begins an election
    to choose a new leader." ... "election timeouts are chosen randomly from a fixed
    interval (e.g., 150–300ms)"."""
    net = CoreNet(seed=seed)
    s = net.settings
    deadlines = {i: net.nodes[i].deadline() for i in net.ids}
    for d in deadlines.values():
        assert s.election_timeout_min <= d < s.election_timeout_max
    assert len(set(deadlines.values())) == len(deadlines), "timeouts are randomized"
    first = min(deadlines, key=lambda i: deadlines[i])
    net.tick(deadlines[first] - 0.01)
    assert all(net.nodes[i].role is Role.FOLLOWER for i in net.ids)
    assert not any(e.kind == "election-timeout" for *_, e in net.trace)
    net.tick(0.02)
    timeouts = [(t, i) for t, i, _, e in net.trace if e.kind == "election-timeout"]
    assert timeouts[0][1] == first
    assert deadlines[first] <= timeouts[0][0] < deadlines[first] + 0.02
    net.tick(1.0)
    assert len(net.leaders()) == 1
    assert_election_safety(net)


def test_randomized_timeouts_differ_between_servers_and_between_elections() -> None:
    """§5.2: "Raft uses randomized election timeouts to ensure that split votes are rare
    ... each candidate restarts its randomized election timeout at the start of an
    election"."""
    net = CoreNet(FIVE, seed=7)
    node = net.nodes["s1"]
    seen = set()
    for _ in range(20):
        net.handle("s1", node.campaign(net.now))
        seen.add(round(node.deadline() - net.now, 9))
        net.queue.clear()
    assert len(seen) == 20
    assert all(0.15 <= d < 0.30 for d in seen)


@pytest.mark.parametrize("batch", range(4))
def test_election_safety_at_most_one_leader_per_term_under_split_votes(batch: int) -> None:
    """§5.2: "if many followers become candidates at the same time, votes could be split
    so that no candidate obtains a majority. When this happens, each candidate will time
    out and start a new election" ... "Each server will vote for at most one candidate in
    a given term, on a first-come-first-served basis". Several timers of a five-server
    cluster fire at the same instant (PreVote off), over many seeds: never two leaders in
    one term, and the randomized timeouts always resolve it to one leader."""
    split_terms = 0
    for seed in range(batch * 25, batch * 25 + 25):
        net = CoreNet(FIVE, seed=seed, settings=NO_PREVOTE)
        rng = random.Random(seed)
        for _round in range(3):
            firing = rng.sample(FIVE, rng.randint(2, 5))
            for i in firing:
                if net.nodes[i].role is not Role.LEADER:
                    net.handle(i, net.nodes[i].campaign(net.now))
            rng.shuffle(net.queue)  # votes arrive in any order
            net.deliver_all()
            assert_election_safety(net)
            net.tick(2.0)
            assert_election_safety(net)
            leaders = net.leaders()
            assert len(leaders) == 1, f"seed {seed}: leaders {leaders}"
            leader = net.nodes[leaders[0]]
            assert all(net.nodes[i].term == leader.term for i in FIVE)
            assert all(net.nodes[i].leader_id == leader.id for i in FIVE)
        candidate_terms = {t for _, _, t, e in net.trace
                           if e.kind == "role" and e.fields["role"] == "candidate"}
        split_terms += len(candidate_terms - set(net.leader_terms()))
    assert split_terms > 0, "the scenario never produced a split vote"


def test_current_term_and_voted_for_are_persisted_before_a_vote_is_answered() -> None:
    """Figure 2: "Persistent state on all servers: (Updated on stable storage before
    responding to RPCs) currentTerm ... votedFor". A server that voted and restarts does
    not vote for a second candidate in the same term."""
    net = CoreNet(seed=1, settings=NO_PREVOTE)
    for i in ("a", "c"):  # two simultaneous candidates in term 2
        net.handle(i, net.nodes[i].campaign(net.now))
    assert net.nodes["a"].term == net.nodes["c"].term == 2
    late = [m for m in net.queue if m.source == "c" and m.target == "b"]
    (request,) = [m for m in net.queue if m.source == "a" and m.target == "b"]
    net.queue.remove(request)
    ready = net.handle("b", net.nodes["b"].step(request, net.now))
    # The answer and the state to persist first come out together, in one Ready.
    assert [(type(m), m.granted) for m in ready.messages
            if isinstance(m, RequestVoteResponse)] == [(RequestVoteResponse, True)]
    assert ready.hard_state is not None
    assert (ready.hard_state.term, ready.hard_state.voted_for) == (2, "a")
    assert net.disks["b"].hard_state.voted_for == "a"
    assert net.disks["b"].hard_state.term == 2
    net.crash("b")
    net.start("b")
    assert (net.nodes["b"].term, net.nodes["b"].voted_for) == (2, "a")
    net.queue.extend(late)
    net.deliver_where(lambda m: m.target == "b")
    answers = [(m.target, m.granted) for m in net.queue
               if isinstance(m, RequestVoteResponse) and m.source == "b"]
    assert answers == [("a", True), ("c", False)]
    net.deliver_all()
    assert_election_safety(net)


@pytest.mark.parametrize(
    ("candidate_log", "why"),
    [([1], "shorter log"), ([1, 1, 1, 1], "longer log whose last term is older")],
)
def test_voter_denies_its_vote_if_its_own_log_is_more_up_to_date(
    candidate_log: list[int], why: str
) -> None:
    """§5.4.1: "The RequestVote RPC ... includes information about the candidate's log,
    and the voter denies its vote if its own log is more up-to-date than that of the
    candidate" ... "If the logs have last entries with different terms, then the log with
    the later term is more up-to-date. If the logs end with the same term, then whichever
    log is longer is more up-to-date"."""
    for settings in (NodeSettings(), NO_PREVOTE):
        net = CoreNet(seed=2, settings=settings)
        net.set_log("a", [1, 2], term=2)
        net.set_log("b", [1, 2], term=2)
        net.set_log("c", candidate_log, term=2)
        net.campaign("c")
        assert net.nodes["c"].role is not Role.LEADER, why
        refusals = [f for f in events(net, "a", "vote") + events(net, "b", "vote")
                    if f["candidate"] == "c"]
        assert refusals and not any(f["granted"] for f in refusals)
        # the more up-to-date server wins
        net.campaign("a")
        assert net.leaders() == ["a"]


def test_prevote_keeps_a_partitioned_server_from_raising_its_term() -> None:
    """Dissertation §9.6: "a candidate would first ask other servers whether its log was
    up-to-date enough to get their vote. Only if the candidate believed it could get
    votes from a majority of the cluster would it increment its term and start a normal
    election"."""
    net = CoreNet(seed=3)
    net.campaign("a")
    term = net.nodes["a"].term
    net.partition(["c"])
    net.tick(3.0)
    assert len(events(net, "c", "election-timeout")) >= 8
    assert net.nodes["c"].term == term
    assert net.nodes["c"].role is Role.PRE_CANDIDATE
    net.heal()
    net.tick(1.0)
    assert net.leaders() == ["a"]
    assert {net.nodes[i].term for i in net.ids} == {term}
    assert net.nodes["c"].leader_id == "a"
    assert_election_safety(net)


def test_without_prevote_a_rejoining_partitioned_server_disrupts_the_leader() -> None:
    """Dissertation §9.6: "When a server is partitioned, it will not receive
    heartbeats. It will soon increment its term to start an election ... When the server
    regains connectivity sometime later, its larger term number will propagate to the
    rest of the cluster ... This will force the cluster leader to step down"."""
    net = CoreNet(seed=3, settings=NO_PREVOTE)
    net.campaign("a")
    term = net.nodes["a"].term
    net.partition(["c"])
    net.tick(3.0)
    assert net.nodes["c"].term > term + 5
    partitioned_term = net.nodes["c"].term
    assert net.leaders() == ["a"] and net.nodes["a"].term == term
    healed_at = net.now
    net.heal()
    net.tick(1.0)
    assert any(t >= healed_at and f["role"] == "follower"
               for t, i, _, e in net.trace if i == "a" and e.kind == "role"
               for f in [e.fields])
    assert all(net.nodes[i].term >= partitioned_term for i in net.ids)
    assert len(net.leaders()) == 1
    assert_election_safety(net)


def test_check_quorum_leader_cut_off_from_the_majority_steps_down() -> None:
    """Dissertation §6.2: "a leader steps down if an election timeout elapses without a
    successful round of heartbeats to a majority of its cluster"."""
    net = CoreNet(seed=4)
    net.campaign("a")
    net.tick(0.5)
    net.partition(["a"])
    cut_at = net.now
    while net.nodes["a"].role is Role.LEADER and net.now < cut_at + 5:
        net.tick(0.01)
    elapsed = net.now - cut_at
    assert net.nodes["a"].role is Role.FOLLOWER
    assert elapsed <= 2 * net.settings.election_timeout_min + 0.02
    assert str(events(net, "a", "step-down")[-1]["reason"]).startswith("no quorum")
    net.tick(1.0)
    assert len(net.leaders()) == 1 and net.leaders()[0] != "a"


def test_without_check_quorum_a_cut_off_leader_keeps_believing_it_leads() -> None:
    net = CoreNet(seed=4, settings=NodeSettings(check_quorum=False))
    net.campaign("a")
    net.partition(["a"])
    net.tick(3.0)
    assert net.nodes["a"].role is Role.LEADER
    assert len(net.leaders()) == 2  # the majority elected another in a later term
    assert_election_safety(net)


@pytest.mark.parametrize("pre_vote", [True, False])
def test_server_that_heard_from_a_leader_recently_ignores_vote_requests(pre_vote: bool) -> None:
    """Dissertation §4.2.3: "if a server receives a RequestVote request within the
    minimum election timeout of hearing from a current leader, it does not update its
    term or grant its vote"."""
    net = CoreNet(seed=5, settings=NodeSettings(pre_vote=pre_vote))
    net.campaign("a")
    net.tick(0.06)
    term = net.nodes["b"].term
    vote = RequestVote(term + 1, "c", "b", last_log_index=99, last_log_term=term,
                       pre_vote=pre_vote)
    net.queue.append(vote)
    net.deliver_where(lambda m: m is vote)
    assert net.nodes["b"].term == term
    assert not any(m.source == "b" and isinstance(m, RequestVoteResponse) for m in net.queue)
    assert events(net, "b", "vote-ignored")
    # Once the leader has been silent for an election timeout, the request is heard.
    net.crash("a")
    net.tick(net.settings.election_timeout_min)
    late = RequestVote(net.nodes["b"].term + 1, "c", "b", 99, term, pre_vote=pre_vote)
    net.queue.append(late)
    net.deliver_where(lambda m: m is late)
    answers = [m for m in net.queue if isinstance(m, RequestVoteResponse) and m.source == "b"]
    assert [a.granted for a in answers][-1:] == [True]


def test_without_check_quorum_or_prevote_a_vote_request_is_heard_despite_the_leader() -> None:
    net = CoreNet(seed=5, settings=NodeSettings(pre_vote=False, check_quorum=False))
    net.campaign("a")
    net.tick(0.06)
    term = net.nodes["b"].term
    net.queue.append(RequestVote(term + 1, "c", "b", 99, term))
    net.deliver_where(lambda m: m.target == "b" and isinstance(m, RequestVote))
    assert net.nodes["b"].term == term + 1
    assert net.nodes["b"].voted_for == "c"


@pytest.mark.parametrize(
    ("voted_for", "leader", "log_terms", "granted"),
    [
        (None, None, [1, 2], True),   # up to date, no vote, no leader: granted
        (None, None, [1, 2, 2], False),  # the voter's log is longer
        ("b", None, [1, 2], True),  # it voted for this candidate already
        ("c", None, [1, 2], False),  # it voted for another server in this term
        (None, "c", [1, 2], False),  # it knows a leader of this term
    ],
)
def test_prevote_at_equal_term_follows_the_vote_rule(
    voted_for: str | None, leader: str | None, log_terms: list[int], granted: bool
) -> None:
    """etcd TestRecvMsgPreVote (dissertation §9.6): a pre-vote for the voter's own term
    is granted under the same rule as a vote, "if the candidate's log is up to date" and
    the voter could still vote in that term."""
    net = CoreNet(seed=8)
    net.set_log("a", log_terms, term=2, voted_for=voted_for)
    voter = net.nodes["a"]
    voter.leader_id = leader
    ready = voter.step(RequestVote(2, "b", "a", 2, 2, pre_vote=True), net.now)
    (answer,) = ready.messages
    assert isinstance(answer, RequestVoteResponse) and answer.pre_vote
    assert answer.granted is granted
    assert voter.term == 2 and voter.voted_for == voted_for  # a pre-vote changes nothing
