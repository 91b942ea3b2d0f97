"""The invariant checker (raftsim/check/invariants.py).

A checker that never fires proves nothing, and one that fires on a correct run is worse
than none. So: each invariant is shown to fire on a hand-crafted bad state -- a real
cluster whose node state is tampered with, followed by the trace record the checker
would see -- and never to fire on correct runs that do what Raft allows (overwritten
uncommitted entries, lagging followers, crashes, partitions, a leader elected late).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftsim.check.invariants import INVARIANTS, InvariantChecker, Violation
from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.messages import Entry, EntryKind
from raftsim.core.ready import Role
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster(3, seed=5, trace_messages=False) as c:
        yield c


def _elect_and_write(cluster: Cluster, writes: int = 3) -> tuple[InvariantChecker, str]:
    checker = InvariantChecker(cluster)
    leader = cluster.wait_for_leader()
    for k in range(writes):
        cluster.run(cluster.propose(encode_put(f"k{k}", b"v%d" % k)))
    cluster.run_for(0.3)  # every follower hears the commit index
    assert checker.violations == []
    return checker, leader


def _follower(cluster: Cluster, leader: str) -> str:
    return next(sid for sid in cluster.ids if sid != leader)


def _record(cluster: Cluster, sid: str, kind: str, **fields: object) -> None:
    recorder = cluster.recorder
    assert recorder is not None
    node = cluster.servers[sid].node
    recorder.record(sid, node.term if node is not None else 0, kind, dict(fields))


def _fire(cluster: Cluster, sid: str, command: bytes) -> None:
    """Propose through ``sid`` without waiting for the outcome (it may never commit)."""
    task = cluster.loop.create_task(cluster.servers[sid].propose(command, timeout=1.0))
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())


def _only(checker: InvariantChecker) -> Violation:
    assert checker.first is not None, "expected a violation"
    assert {v.invariant for v in checker.violations} == {checker.first.invariant}
    return checker.first


# ---------------------------------------------------------------------- firing

def test_election_safety_fires_on_a_second_leader_in_one_term(cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    other = _follower(cluster, leader)
    node = cluster.servers[other].node
    assert node is not None
    node.role = Role.LEADER
    node.term = cluster.servers[leader].node.term  # type: ignore[union-attr]
    _record(cluster, other, "role", role="leader", leader=other)
    violation = _only(checker)
    assert violation.invariant == "election-safety"
    assert f"{other} became leader of term {node.term}, but {leader} was already" \
        in violation.message
    assert violation.record["kind"] == "role"


def test_vote_once_fires_on_two_votes_in_one_term(cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    voter = _follower(cluster, leader)
    cluster.servers[voter].node.term += 10  # type: ignore[union-attr]  # a fresh term
    _record(cluster, voter, "vote", candidate="s1", granted=True, pre_vote=False)
    _record(cluster, voter, "vote", candidate="s1", granted=True, pre_vote=False)
    _record(cluster, voter, "vote", candidate="s9", granted=False, pre_vote=False)
    _record(cluster, voter, "vote", candidate="s9", granted=True, pre_vote=True)
    assert checker.violations == []  # the same candidate twice, a refusal, a pre-vote
    _record(cluster, voter, "vote", candidate="s3", granted=True, pre_vote=False)
    violation = _only(checker)
    assert violation.invariant == "vote-once"
    assert "voted for s3" in violation.message and "already voted for s1" in violation.message


def test_leader_append_only_fires_when_a_leader_truncates(cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    _record(cluster, leader, "truncate", index=3)
    assert {v.invariant for v in checker.violations} >= {"leader-append-only"}
    assert checker.first is not None and checker.first.invariant == "leader-append-only"


def test_leader_append_only_fires_when_a_leader_rewrites_an_index(cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    last = cluster.servers[leader].node.log.last_index  # type: ignore[union-attr]
    _record(cluster, leader, "append", **{"from": last, "to": last})
    violation = _only(checker)
    assert violation.invariant == "leader-append-only"
    assert f"rewrote its log from index {last}" in violation.message


def test_log_matching_fires_on_different_entries_with_one_index_and_term(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    log = cluster.servers[follower].node.log  # type: ignore[union-attr]
    last = log.last_index
    original = log.entry(last)
    log.replace(last, Entry(original.term, last, EntryKind.COMMAND, b"not what was sent"))
    _record(cluster, follower, "append", **{"from": last, "to": last})
    violation = _only(checker)
    assert violation.invariant == "log-matching"
    assert "different entry" in violation.message


def test_log_matching_fires_on_equal_entries_after_different_prefixes(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    log = cluster.servers[follower].node.log  # type: ignore[union-attr]
    last = log.last_index
    before = log.entry(last - 1)
    log.replace(last - 1, Entry(before.term + 50, last - 1, EntryKind.COMMAND, b"x"))
    _record(cluster, follower, "append", **{"from": last, "to": last})
    assert checker.first is not None
    assert checker.first.invariant == "log-matching"
    assert "the logs differ before it" in checker.first.message


def test_leader_completeness_fires_on_a_leader_without_a_committed_entry(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    node = cluster.servers[follower].node
    assert node is not None
    node.log.truncate_from(3)
    node.term += 5
    node.role = Role.LEADER
    _record(cluster, follower, "role", role="leader", leader=follower)
    violation = _only(checker)
    assert violation.invariant == "leader-completeness"
    assert "was already committed" in violation.message


def test_leader_completeness_does_not_ask_a_stale_term_for_later_commits(
        cluster: Cluster) -> None:
    """A candidate whose votes arrive late (it was paused) may become leader of a term
    older than entries committed meanwhile; it need not hold those."""
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    node = cluster.servers[follower].node
    assert node is not None
    node.log.truncate_from(node.log.last_index)  # lacks the newest committed entry...
    node.role = Role.LEADER
    node.term = 1  # ...but leads a term older than the one that committed it
    _record(cluster, follower, "role", role="leader", leader=follower)
    assert [v.invariant for v in checker.violations] == []


def test_state_machine_safety_fires_when_a_server_applies_something_else(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    log = cluster.servers[follower].node.log  # type: ignore[union-attr]
    index = log.last_index
    original = log.entry(index)
    log.replace(index, Entry(original.term, index, EntryKind.COMMAND, encode_put("k0", b"!")))
    _record(cluster, follower, "apply", **{"from": index, "to": index})
    violation = _only(checker)
    assert violation.invariant == "state-machine-safety"
    assert f"applied ({index}, term {original.term}, command" in violation.message


def test_state_machine_safety_fires_when_two_servers_commit_different_entries(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    node = cluster.servers[leader].node
    assert node is not None
    cluster.servers[leader].pause()  # nothing else reaches it; we move its commit index
    index = node.log.last_index + 1
    node.log.append(Entry(node.term, index, EntryKind.COMMAND, b"first"))
    node.commit_index = index
    _record(cluster, leader, "commit", index=index)
    follower = _follower(cluster, leader)
    other = cluster.servers[follower].node
    assert other is not None
    other.log.append(Entry(node.term, index, EntryKind.COMMAND, b"second"))
    other.commit_index = index
    _record(cluster, follower, "commit", index=index)
    assert "state-machine-safety" in {v.invariant for v in checker.violations}


def test_current_term_commit_fires_on_a_leader_counting_an_old_entry(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    _record(cluster, leader, "commit", index=1)  # the bootstrap entry, term 1
    violation = _only(checker)
    assert violation.invariant == "current-term-commit"
    assert "advanced its commit index to 1, an entry of term 1" in violation.message


def test_durability_fires_when_a_server_truncates_what_it_committed(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    _record(cluster, follower, "truncate", index=2)
    violation = _only(checker)
    assert violation.invariant == "durability"
    assert f"{follower} truncated its log from index 2, but had committed" in violation.message


def test_durability_fires_when_a_restart_finds_a_committed_entry_gone(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    cluster.crash(follower)
    storage = cluster.servers[follower].storage
    storage._entries = storage._entries[:2]  # type: ignore[attr-defined]
    cluster.restart(follower)
    assert checker.first is not None
    assert checker.first.invariant == "durability"
    assert f"{follower} restarted with nothing at index 3" in checker.first.message


def test_single_uncommitted_config_fires_on_two_pending_configurations(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    node = cluster.servers[follower].node
    assert node is not None
    config = node.configuration
    for extra in ("s8", "s9"):
        index = node.log.last_index + 1
        config = Configuration((*config.servers, ServerInfo(extra, f"{extra}:1")))
        node.log.append(Entry(node.term, index, EntryKind.CONFIGURATION, config.encode()))
        node._configs.append((index, config))
        _record(cluster, follower, "config", index=index, voters=list(config.voters))
    violation = _only(checker)
    assert violation.invariant == "single-uncommitted-config"
    assert "holds 2 uncommitted configuration entries" in violation.message


def test_single_uncommitted_config_fires_on_a_change_before_the_leader_commits(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    node = cluster.servers[leader].node
    assert node is not None
    cluster.servers[leader].pause()
    index = node.log.last_index + 1
    config = Configuration((*node.configuration.servers, ServerInfo("s8", "s8:1")))
    node.log.append(Entry(node.term, index, EntryKind.CONFIGURATION, config.encode()))
    node._configs.append((index, config))
    node.commit_index = 1  # as if nothing of its term were committed yet
    _record(cluster, leader, "config", index=index, voters=list(config.voters))
    violation = _only(checker)
    assert violation.invariant == "single-uncommitted-config"
    assert "before committing any entry of its term" in violation.message


def test_served_configuration_fires_when_a_server_serves_another_one(
        cluster: Cluster) -> None:
    checker, leader = _elect_and_write(cluster)
    follower = _follower(cluster, leader)
    node = cluster.servers[follower].node
    assert node is not None
    index, config = node.committed_configuration
    position = next(k for k, (i, _) in enumerate(node._configs) if i == index)
    node._configs[position] = (index, Configuration(config.servers[:1]))
    _record(cluster, follower, "commit", index=node.commit_index)
    violation = _only(checker)
    assert violation.invariant == "served-configuration"
    assert f"as the configuration committed at index {index}" in violation.message


def test_acknowledged_writes_fires_on_an_ack_nobody_committed(cluster: Cluster) -> None:
    checker, _ = _elect_and_write(cluster)
    checker.write_acknowledged("k0", b"v0")  # it was committed: fine
    assert checker.violations == []
    checker.write_acknowledged("k0", b"never written")
    violation = _only(checker)
    assert violation.invariant == "acknowledged-writes"


def test_acknowledged_writes_fires_at_the_end_when_the_entry_was_replaced(
        cluster: Cluster) -> None:
    checker, _ = _elect_and_write(cluster)
    checker.write_acknowledged("k1", b"v1")
    index = next(i for i in range(1, checker.commit_index + 1)
                 if (e := checker.committed_entry(i)) is not None and b"v1" in e.data)
    truth = checker.committed_entry(index)
    assert truth is not None
    checker._committed[index] = Entry(truth.term, index, EntryKind.COMMAND, b"other")
    checker.finish()
    assert checker.first is not None and checker.first.invariant == "acknowledged-writes"


def test_every_invariant_has_a_sentence_and_a_firing_test() -> None:
    assert set(INVARIANTS) == {
        "election-safety", "vote-once", "leader-append-only", "log-matching",
        "leader-completeness", "state-machine-safety", "durability",
        "current-term-commit", "single-uncommitted-config", "served-configuration",
        "acknowledged-writes", "fail-stop"}  # fail-stop: tests/test_runtime_failstop.py
    assert all(text.strip() for text in INVARIANTS.values())


def test_a_violation_is_reported_once_with_its_record(cluster: Cluster) -> None:
    found: list[Violation] = []
    checker = InvariantChecker(cluster, on_violation=found.append)
    leader = cluster.wait_for_leader()
    for _ in range(3):
        _record(cluster, leader, "commit", index=1)
    assert len(checker.violations) == 1 and found == checker.violations
    violation = checker.violations[0]
    assert violation.as_dict()["record"]["kind"] == "commit"
    assert violation.t == pytest.approx(cluster.now, abs=1e-6)


def test_it_needs_a_trace() -> None:
    with Cluster(3, trace=False) as cluster, pytest.raises(ValueError, match="trace"):
        InvariantChecker(cluster)


# ---------------------------------------------------------------------- silence

def test_a_clean_run_with_crashes_partitions_and_overwritten_entries_is_clean() -> None:
    """A leader cut off with a minority appends entries that the majority's new leader
    overwrites; followers lag; servers crash and restart: all allowed."""
    with Cluster(5, seed=9, trace_messages=False, loss=0.02) as cluster:
        checker = InvariantChecker(cluster)
        old = cluster.wait_for_leader()
        cluster.run(cluster.propose(encode_put("a", b"1")))
        others = [s for s in cluster.ids if s != old]
        cluster.partition([[old, others[0]], others[1:]])
        for k in range(5):  # appended by the old leader, never committed
            _fire(cluster, old, encode_put("a", b"lost%d" % k))
        cluster.run_until(lambda: cluster.leader() not in (None, old), 5.0)
        new = cluster.leader()
        assert new is not None and new != old
        cluster.run(cluster.servers[new].propose(encode_put("a", b"2")))
        cluster.crash(others[3])
        cluster.heal()
        cluster.run_for(1.0)
        cluster.restart(others[3])
        cluster.run_for(2.0)
        checker.finish()
        assert checker.violations == []
        assert any(r["kind"] == "truncate" for r in cluster.recorder.records)  # type: ignore[union-attr]


@pytest.mark.parametrize("settings", [
    NodeSettings(), NodeSettings(pre_vote=False, check_quorum=False),
    NodeSettings(max_entries_per_message=1)], ids=["defaults", "no-prevote-no-cq", "one"])
def test_leader_crashes_under_load_are_clean(settings: NodeSettings) -> None:
    with Cluster(5, seed=3, settings=settings, trace_messages=False,
                 snapshot_threshold=8) as cluster:
        checker = InvariantChecker(cluster)
        for round_ in range(4):
            leader = cluster.wait_for_leader()
            for k in range(10):
                _fire(cluster, leader, encode_put(f"k{k % 3}", b"%d-%d" % (round_, k)))
            cluster.run_for(0.01 * round_)
            cluster.crash(leader)
            cluster.run_for(0.5)
            cluster.restart(leader)
        cluster.run_for(2.0)
        checker.finish()
        assert checker.violations == []
        assert checker.commit_index > 20
