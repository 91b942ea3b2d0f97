"""Backpressure instead of collapse: a group-commit leader offered more writes than it can
take keeps leading. Its queues are bounded (``submit`` refuses with Overloaded, HTTP with
429), and a flush works in bounded slices, yielding to the event loop in between so that
heartbeats go out. The simulated tests run on virtual time (deterministic); the last one
offers 32,000 writes at once to a real three-process cluster. No test here is timed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from raftsim.api.inmemory import ApiResponse, SimApi
from raftsim.bench.burst import run_burst
from raftsim.core.errors import NotLeader
from raftsim.core.messages import AppendEntries
from raftsim.core.ready import Role
from raftsim.runtime import server as server_module
from raftsim.runtime.errors import LeadershipLost, Overloaded
from raftsim.runtime.kv import encode_put
from raftsim.runtime.server import MAX_ENTRIES_PER_FLUSH, MAX_PENDING_COMMANDS, Server
from raftsim.sim.cluster import Cluster

#: ``asyncio.sleep`` of this yields for one event-loop turn
ONE_TURN = 0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(3, seed=7, group_commit=True, trace=False)
    try:
        cluster.wait_for_leader()
        cluster.run_for(0.5)
        yield cluster
    finally:
        cluster.close()


def leader_of(cluster: Cluster) -> Server:
    leader = cluster.servers[cluster.wait_for_leader()]
    assert leader.node is not None and leader.node.committed_in_term
    return leader


class Outcomes:
    """Completions for submitted writes: what each one ended with."""

    def __init__(self) -> None:
        self.results: dict[int, Any] = {}

    def done_for(self, n: int) -> Any:
        return lambda outcome: self.results.__setitem__(n, outcome)


def test_a_flush_proposes_in_slices_and_heartbeats_go_out_between_them(
        cluster: Cluster) -> None:
    """16,000 writes submitted in one turn, one entry per command: no event-loop turn
    appends more than MAX_ENTRIES_PER_FLUSH of them, and while the leader works through
    them its heartbeats keep reaching the followers, whose terms stay the same."""
    leader = leader_of(cluster)
    leader.max_commands_per_entry = 1
    node = leader.node
    assert node is not None
    term = node.term
    start = node.log.last_index
    growth: list[int] = []
    last = [start]

    def probe() -> None:  # once per event-loop turn
        current = leader.node
        if current is None:
            return
        growth.append(current.log.last_index - last[0])
        last[0] = current.log.last_index
        if current.log.last_index < start + 16_000:
            cluster.loop.call_soon(probe)

    appends_while_working: list[int] = []

    class Watch:
        def on_send(self, serial: int, source: str, target: str, meta: object) -> None:
            current = leader.node
            if (source == leader.id and isinstance(meta, AppendEntries)
                    and current is not None and current.log.last_index < start + 16_000):
                appends_while_working.append(len(meta.entries))

    cluster.network.observer = Watch()
    outcomes = Outcomes()
    for n in range(16_000):
        leader.submit(encode_put(f"k{n}", b"v"), outcomes.done_for(n))
    cluster.loop.call_soon(probe)
    assert cluster.run_until(lambda: len(outcomes.results) == 16_000, timeout=60.0)
    assert node.log.last_index - start == 16_000  # one entry per command
    assert max(growth) <= MAX_ENTRIES_PER_FLUSH
    assert len([g for g in growth if g]) >= 16_000 // MAX_ENTRIES_PER_FLUSH
    assert appends_while_working  # replication went on between the slices
    assert all(outcome is True for outcome in outcomes.results.values())
    assert {s.node.term for s in cluster.servers.values() if s.node} == {term}
    assert leader.pending_commands == 0


def test_submit_refuses_past_the_pending_limit_and_takes_writes_again_once_answered(
        cluster: Cluster) -> None:
    leader = leader_of(cluster)
    leader.max_pending_commands = 100
    outcomes = Outcomes()
    for n in range(100):
        leader.submit(encode_put(f"k{n}", b"v"), outcomes.done_for(n))
    with pytest.raises(Overloaded, match="100 writes are waiting to commit and apply, "
                                         "the limit is 100; retry later"):
        leader.submit(encode_put("refused", b"v"), outcomes.done_for(-1))
    assert cluster.run_until(lambda: len(outcomes.results) == 100, timeout=10.0)
    assert leader.pending_commands == 0
    assert leader.kv.get("refused") is None and -1 not in outcomes.results
    leader.submit(encode_put("later", b"v"), outcomes.done_for(100))
    assert cluster.run_until(lambda: 100 in outcomes.results, timeout=10.0)
    assert outcomes.results[100] is True and leader.kv.get("later") is not None


def test_submit_refuses_while_too_many_committed_entries_wait_to_be_applied(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "MAX_APPLY_BACKLOG", 50)
    monkeypatch.setattr(server_module, "APPLY_BUDGET", 64)  # one small entry a turn
    leader = leader_of(cluster)
    leader.max_commands_per_entry = 1
    outcomes = Outcomes()
    for n in range(5_000):
        leader.submit(encode_put(f"k{n}", b"v"), outcomes.done_for(n))
    refusals: list[Exception] = []

    def offer_while_applying(sid: str, term: int, kind: str, fields: dict[str, Any]) -> None:
        if kind == "apply" and leader.apply_backlog >= 50 and not refusals:
            try:
                leader.submit(encode_put("refused", b"v"), outcomes.done_for(-1))
            except Overloaded as exc:
                refusals.append(exc)

    leader.observer = offer_while_applying
    assert cluster.run_until(lambda: bool(refusals), timeout=30.0)
    assert str(refusals[0]).endswith("committed entries are waiting to be applied, the "
                                     "limit is 50; retry later")
    assert cluster.run_until(lambda: len(outcomes.results) == 5_000, timeout=60.0)
    assert leader.apply_backlog == 0 and leader.pending_commands == 0


def test_writes_failed_by_a_lost_leadership_are_no_longer_pending(cluster: Cluster) -> None:
    leader = leader_of(cluster)
    outcomes = Outcomes()
    cluster.isolate(leader.id)
    for n in range(50):
        leader.submit(encode_put(f"k{n}", b"v"), outcomes.done_for(n))
    assert cluster.run_until(lambda: leader.role is not Role.LEADER, timeout=10.0)
    assert len(outcomes.results) == 50
    assert all(isinstance(o, LeadershipLost | NotLeader) for o in outcomes.results.values())
    assert leader.pending_commands == 0


def test_an_overloaded_leader_answers_http_writes_with_429() -> None:
    cluster = Cluster(3, seed=5, group_commit=True, trace=False)
    api = SimApi(cluster)
    try:
        cluster.wait_for_leader()
        cluster.run_for(0.5)
        leader = leader_of(cluster)
        leader.max_pending_commands = 1
        cluster.isolate(leader.id)  # the first write stays pending

        async def two_writes() -> list[ApiResponse]:
            first = asyncio.ensure_future(api.request(leader.id, "PUT", "/v1/kv/a", body=b"1"))
            await asyncio.sleep(ONE_TURN)  # the first write is submitted first
            second = await api.request(leader.id, "PUT", "/v1/kv/b", body=b"2")
            return [await first, second]

        first, second = cluster.run(two_writes())
        assert second.status == 429
        assert second.header("Content-Type", "").startswith("text/plain")
        assert second.header("Retry-After") == "1"
        assert second.body.decode() == ("too many writes in flight: 1 writes are waiting to "
                                        "commit and apply, the limit is 1; retry later")
        assert first.status == 500
        assert "b" not in leader.kv.digest()
    finally:
        api.close()
        cluster.close()


def test_32000_writes_offered_at_once_to_a_live_leader_all_commit() -> None:
    """Real processes, one log entry per command: 32,000 writes offered in one go are
    within the leader's bound, so it takes them all and works through them in slices;
    it keeps leading, every write commits, and the state machine holds each of them."""
    assert MAX_PENDING_COMMANDS >= 32_000
    report = run_burst(32_000)
    assert report["leader_changes"] == 0 and report["still_leading"], report
    assert report["failed"] == 0 and report["unanswered"] == 0, report
    assert report["lost"] == 0 and report["refused"] == 0, report
    assert report["committed"] == 32_000, report


def test_32000_writes_offered_at_once_past_a_live_leaders_bound_commit_or_are_refused(
        ) -> None:
    """The same burst against a leader bound to 16,384 unanswered writes: it refuses the
    rest at once, keeps leading, and every write is answered, refused or committed, and
    the state machine holds exactly the committed ones."""
    report = run_burst(32_000, max_pending=16_384)
    assert report["leader_changes"] == 0 and report["still_leading"], report
    assert report["failed"] == 0 and report["unanswered"] == 0, report
    assert report["lost"] == 0, report
    assert report["committed"] + report["refused"] == 32_000, report
    assert report["committed"] >= 16_384, report
    assert report["refused"] > 0, report
