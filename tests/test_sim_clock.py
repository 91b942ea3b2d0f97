"""Clock faults: each simulated server can read its own clock (rate and offset from the
seed), deterministically; and a leader lease read -- the Raft optimization that bets on
clocks -- is caught serving a stale value when the leader's clock runs slow."""

from __future__ import annotations

import pytest

from raftsim.api import SimApi
from raftsim.check.history import KvHistory, KvOp
from raftsim.core.settings import NodeSettings
from raftsim.sim.clock import ClockSkew, ServerClock, draw_skew
from raftsim.sim.cluster import Cluster
from raftsim.sim.loop import VirtualTimeLoop


def test_skews_come_from_the_seed_and_each_server_reads_its_own_clock() -> None:
    assert draw_skew(7, "s1", 0.1) == draw_skew(7, "s1", 0.1)
    assert draw_skew(7, "s1", 0.1) != draw_skew(7, "s2", 0.1)
    with Cluster(3, seed=7, clock_drift=0.1, trace=False) as cluster:
        cluster.run_for(2.0)
        for sid in cluster.ids:
            skew = cluster.clock_skews[sid]
            assert 0.9 <= skew.rate <= 1.1 and skew.rate != 1.0
            assert cluster.servers[sid].loop.time() == pytest.approx(
                skew.offset + skew.rate * cluster.now)


def test_a_drifting_cluster_is_still_deterministic_and_elects_a_leader() -> None:
    digests = []
    for _ in range(2):
        with Cluster(5, seed=3, clock_drift=0.2) as cluster:
            cluster.wait_for_leader()
            cluster.run_for(3.0)
            assert cluster.recorder is not None
            digests.append(cluster.recorder.digest())
    assert digests[0] == digests[1]
    with Cluster(5, seed=3) as cluster:
        cluster.wait_for_leader()
        cluster.run_for(3.0)
        assert cluster.recorder is not None
        assert cluster.recorder.digest() != digests[0]


def test_bad_drift_is_refused() -> None:
    with pytest.raises(ValueError, match="clock_drift must be at least 0 and below 1"):
        Cluster(3, clock_drift=1.5)


def _read_after_a_new_leader_wrote(lease_reads: bool, rate: float
                                   ) -> tuple[KvHistory, int]:
    """s1 leads, its clock at ``rate``; a read through it starts its lease; it is cut
    off; the others elect a leader and commit a write; then a client reads through s1.
    Returns the history and the read's status."""
    settings = NodeSettings(check_quorum=True, lease_reads=lease_reads)
    with Cluster(3, seed=1, settings=settings,
                 clock_skews={"s1": ClockSkew(rate=rate)}) as cluster:
        api = SimApi(cluster, request_timeout=1.0)
        history = KvHistory()
        leader = cluster.wait_for_leader()
        if leader != "s1":
            cluster.run(api.request(leader, "PUT",
                                    "/v1/operator/raft/transfer-leadership?id=s1"))
            assert cluster.run_until(lambda: cluster.leader() == "s1", 5.0)
        history.invoke("w0", KvOp("write", "k", "old"), cluster.now)
        first = cluster.run(api.request("s1", "PUT", "/v1/kv/k", body=b"old"))
        history.complete("w0", first.status, first.body, cluster.now)
        assert first.status == 200
        cluster.run_for(0.5)
        assert cluster.run(api.request("s1", "GET", "/v1/kv/k")).status == 200  # the lease
        cluster.isolate("s1")
        assert cluster.run_until(lambda: any(
            cluster.servers[s].role is not None and cluster.servers[s].role.value == "leader"
            for s in ("s2", "s3")), 2.0)
        new = next(s for s in ("s2", "s3") if cluster.servers[s].role.value == "leader")
        history.invoke("w", KvOp("write", "k", "new"), cluster.now)
        answer = cluster.run(api.request(new, "PUT", "/v1/kv/k", body=b"new"))
        history.complete("w", answer.status, answer.body, cluster.now)
        assert answer.status == 200
        history.invoke("r", KvOp("read", "k"), cluster.now)
        read = cluster.run(api.request("s1", "GET", "/v1/kv/k"))
        history.complete("r", read.status, read.body, cluster.now)
        api.close()
        return history, read.status


def test_a_lease_read_from_a_leader_whose_clock_runs_slow_is_caught() -> None:
    """Its lease (an election timeout by its own clock) outlasts the followers' promise
    not to vote (an election timeout by theirs): it serves the old value after the new
    leader committed the new one, and the linearizability checker says so."""
    history, status = _read_after_a_new_leader_wrote(lease_reads=True, rate=1 / 3)
    assert status == 200
    result = history.check()
    assert result.verdict == "violation"
    assert 'returned "old" after write "new"' in result.message


def test_with_clocks_that_agree_the_lease_has_run_out_before_a_new_leader_commits() -> None:
    history, status = _read_after_a_new_leader_wrote(lease_reads=True, rate=1.0)
    assert status != 200  # no lease: a ReadIndex round, which cut off s1 cannot finish
    assert history.check().verdict == "ok"


def test_without_leases_the_same_read_is_refused_not_stale() -> None:
    history, status = _read_after_a_new_leader_wrote(lease_reads=False, rate=1 / 3)
    assert status != 200
    assert history.check().verdict == "ok"


def test_a_timer_set_by_a_skewed_clock_fires_when_that_clock_reads_its_deadline() -> None:
    """Rounding must never fire a timer a hair before its local deadline: a server
    would set it again for the same moment, forever. These numbers are from fuzz seed 7
    (drift 0.2), which hung that way before."""
    loop = VirtualTimeLoop()
    clock = ServerClock(loop, ClockSkew(rate=1.0749065655850747, offset=70.244315))
    deadline = 106.29726175506703
    fired: list[float] = []
    clock.call_at(deadline, lambda: fired.append(clock.time()))
    loop.run_for(40.0)
    loop.close()
    assert len(fired) == 1 and fired[0] >= deadline
