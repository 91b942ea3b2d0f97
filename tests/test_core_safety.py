"""Paper Figure 3's safety properties, checked after every step of seeded random runs:
lost, duplicated and reordered messages, partitions, crashes and restarts, proposals,
membership changes, transfers, reads and compaction, all on core nodes over CoreNet."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from raftsim.core.configuration import ChangeKind, ConfigChange, ConfigurationError
from raftsim.core.errors import ChangeNotAllowedYet, NotLeader, ProposalDropped
from raftsim.core.messages import EntryKind, Message
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

REFUSALS = (NotLeader, ChangeNotAllowedYet, ProposalDropped, ConfigurationError)


class SafetyChecker:
    """Remembers every applied entry and when each index was first committed."""

    def __init__(self, net: CoreNet) -> None:
        self.net = net
        self.applied: dict[int, tuple[int, EntryKind, bytes]] = {}
        #: the lowest term of a "commit" event covering the index (the bootstrap
        #: configuration, index 1, is committed from the start: term 1)
        self.commit_term: dict[int, int] = {}
        self._trace_seen = 0

    def check(self) -> None:
        net = self.net
        for _, _, term, event in net.trace[self._trace_seen:]:
            if event.kind == "commit":
                for index in range(1, int(event.fields["index"]) + 1):
                    if self.commit_term.get(index, term + 1) > term:
                        self.commit_term[index] = term
        self._trace_seen = len(net.trace)
        # "State Machine Safety: if a server has applied a log entry at a given index
        # to its state machine, no other server will ever apply a different log entry
        # for the same index."
        for node_id in net.ids:
            for e in net.applied[node_id]:
                seen = self.applied.setdefault(e.index, (e.term, e.kind, e.data))
                assert seen == (e.term, e.kind, e.data), f"{node_id} applied another {e.index}"
            net.applied[node_id] = []
        # "Election Safety: at most one leader can be elected in a given term."
        for term, leaders in net.leader_terms().items():
            assert len(leaders) <= 1, f"term {term}: leaders {sorted(leaders)}"
        live = [net.nodes[i] for i in net.ids if i not in net.down]
        # "Leader Completeness: if a log entry is committed in a given term, then that
        # entry will be present in the logs of the leaders for all higher-numbered terms."
        for node in live:
            if node.role is not Role.LEADER:
                continue
            for index, (term, _, _) in self.applied.items():
                if index > node.log.snapshot_index and node.term > self.commit_term.get(index, 1):
                    assert node.log.term_at(index) == term, f"leader {node.id} lacks {index}"
        # "Log Matching: if two logs contain an entry with the same index and term, then
        # the logs are identical in all entries up through the given index."
        for a in live:
            for b in live:
                if a.id >= b.id:
                    continue
                lo = max(a.log.first_index, b.log.first_index)
                for index in range(min(a.log.last_index, b.log.last_index), lo - 1, -1):
                    if a.log.term_at(index) == b.log.term_at(index):
                        same = a.log.slice(lo, index + 1) == b.log.slice(lo, index + 1)
                        assert same, f"{a.id} and {b.id} match at {index} but differ below"
                        break


#: how often each kind of step happens
ACTIONS = {
    "time": 22.0, "deliver": 40.0, "propose": 12.0, "crash": 1.5, "crash-leader": 1.0,
    "restart": 3.0, "transfer": 1.0, "read": 3.0, "compact": 2.0, "change": 1.0,
    "add-server": 0.5, "partition": 1.0, "heal": 4.0,
}


def random_run(seed: int, steps: int, bugs: frozenset[str] = frozenset(),
               lease: bool = False) -> SafetyChecker:
    """``lease`` forces PreVote and CheckQuorum on (otherwise each is drawn)."""
    rng = random.Random(seed)
    settings = NodeSettings(
        bugs=bugs,
        pre_vote=rng.random() < 0.7 or lease,
        check_quorum=rng.random() < 0.7 or lease,
        max_entries_per_message=rng.choice([1, 2, 64]),
        max_inflight=rng.choice([1, 2, 16]),
    )
    net = CoreNet([f"n{i}" for i in range(rng.choice([3, 5]))], seed=seed, settings=settings)
    checker = SafetyChecker(net)
    loss = rng.choice([0.0, 0.05, 0.2])
    duplicate, reorder = rng.random() < 0.5, rng.random() < 0.5

    def lossy(m: Message) -> bool:
        return rng.random() < loss

    def cut(side: set[str]) -> Callable[[Message], bool]:
        return lambda m: (m.source in side) != (m.target in side) or lossy(m)

    net.dropped = lossy
    proposals = reads = 0
    actions, weights = zip(*ACTIONS.items(), strict=True)
    for _ in range(steps):
        leaders = net.leaders()
        leader = net.nodes[leaders[0]] if leaders else None
        up = [i for i in net.ids if i not in net.down]
        voters = len(net.nodes[up[0]].configuration.voters)
        action = rng.choices(actions, weights)[0]
        try:
            if action == "time":  # time passes; due timers fire
                net.now += rng.choice([0.005, 0.01, 0.01, 0.02, 0.05])
                for i in up:
                    if net.nodes[i].deadline() <= net.now:
                        net.handle(i, net.nodes[i].on_timeout(net.now))
            elif action == "deliver":  # messages arrive, maybe out of order or twice
                if reorder:
                    rng.shuffle(net.queue)
                burst = len(net.queue) if rng.random() < 0.7 else rng.randint(0, len(net.queue))
                for _ in range(burst):
                    m = net.queue.pop(0)
                    if duplicate and rng.random() < 0.1:
                        net.queue.append(m)
                    if m.target not in net.down:
                        net.handle(m.target, net.nodes[m.target].step(m, net.now))
            elif action == "propose" and leader:
                proposals += 1
                net.propose(leader.id, b"c%d" % proposals)
            elif action == "crash" and len(net.down) < voters // 2:
                net.crash(rng.choice(up))
            elif action == "crash-leader" and leader and len(net.down) < voters // 2:
                net.crash(leader.id)
            elif action == "restart" and net.down:
                net.start(rng.choice(sorted(net.down)))
            elif action == "transfer" and leader:
                target = rng.choice([*net.ids, None])
                net.handle(leader.id, leader.transfer_leadership(target, net.now))
            elif action == "read" and leader:
                reads += 1
                net.handle(leader.id, leader.read_index(reads, net.now))
            elif action == "compact":
                node = net.nodes[rng.choice(up)]
                if node.applied > node.log.snapshot_index:
                    index = rng.randint(node.log.snapshot_index + 1, node.applied)
                    net.handle(node.id, node.compact(index, b"snap", net.now))
            elif action == "change" and leader:
                server = rng.choice(net.ids)
                known = leader.configuration.get(server)
                address = known.address if known else f"10.1.0.{net.ids.index(server)}:4647"
                change = ConfigChange(rng.choice(list(ChangeKind)), server, address)
                net.handle(leader.id, leader.change_configuration(change, net.now))
            elif action == "add-server" and len(net.ids) < 7:
                net.add_node(f"n{len(net.ids)}")
            elif action == "partition":
                net.dropped = cut(set(rng.sample(net.ids, rng.randint(1, len(net.ids) - 1))))
            elif action == "heal":
                net.dropped = lossy
        except REFUSALS:
            pass
        checker.check()
    return checker


@pytest.mark.parametrize("seed", range(12))
def test_figure_3_safety_properties_hold_under_random_faults(seed: int) -> None:
    """Figure 3: "Raft guarantees that each of these properties is true at all times"
    (Election Safety, Leader Append-Only, Log Matching, Leader Completeness, State
    Machine Safety)."""
    checker = random_run(seed, steps=1200)
    assert len(checker.applied) > 3  # the run made progress, not only elections


@pytest.mark.parametrize("seed", range(10))
def test_once_faults_heal_one_leader_emerges_and_every_member_catches_up(seed: int) -> None:
    """§5.2 / §4.2.2: liveness. With PreVote and CheckQuorum on, whatever state the
    faults left behind (half-done membership changes included), healing the network and
    restarting every server lets one leader emerge and every member match its log."""
    net = random_run(seed, steps=1200, lease=True).net
    net.heal()
    for i in sorted(net.down):
        net.start(i)
    net.tick(3.0)
    (leader_id,) = net.leaders()
    leader = net.nodes[leader_id]
    for i in leader.configuration.ids:
        node = net.nodes[i]
        assert (node.log.last_index, node.commit_index) == (
            leader.log.last_index, leader.commit_index), f"{i} is behind"


@pytest.mark.parametrize("bug", ["no-log-check", "no-truncate"])
def test_the_checks_catch_a_bug_switch_within_a_few_seeds(bug: str) -> None:
    """A checker that never fails proves nothing: with a switch that breaks safety in
    ordinary runs, some early seed must fail."""
    for seed in range(5):
        try:
            random_run(seed, steps=1200, bugs=frozenset({bug}))
        except AssertionError:
            return
    pytest.fail(f"{bug} went unnoticed for 5 seeds")
