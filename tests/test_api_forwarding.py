"""Forwarding: followers hand non-stale reads and all writes to the leader over RPC."""

from __future__ import annotations

from typing import Any

import pytest

from raftsim.api import SimApi
from raftsim.api.forwarding import FORWARD_METHOD, MAX_HOPS
from raftsim.sim.cluster import Cluster


def serve_forwarded(cluster: Cluster, server_id: str, source: str, params: list[Any]) -> Any:
    """Call ``server_id``'s api.forward RPC method directly."""
    async def call() -> Any:
        return await cluster.servers[server_id].rpc_handlers[FORWARD_METHOD](source, params)

    return cluster.run(call())


def rpc_sends(cluster: Cluster) -> list[tuple[str, str]]:
    assert cluster.recorder is not None
    return [(r["server"], r["to"]) for r in cluster.recorder.records
            if r["kind"] == "send" and r.get("msg") == "rpc"]


def test_writes_and_reads_travel_to_the_leader_stale_reads_do_not() -> None:
    with Cluster(3, seed=6) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        cluster.run(api.request(follower, "PUT", "/v1/kv/a", body=b"1"))
        cluster.run(api.request(follower, "GET", "/v1/kv/a"))
        assert rpc_sends(cluster) == [(follower, leader), (leader, follower)] * 2
        cluster.run(api.request(follower, "GET", "/v1/kv/a?stale"))
        cluster.run(api.request(follower, "GET", "/v1/agent/self"))
        assert len(rpc_sends(cluster)) == 4
        cluster.run(api.request(leader, "PUT", "/v1/kv/b", body=b"2"))
        assert len(rpc_sends(cluster)) == 4
        api.close()


def test_a_leader_that_does_not_answer_is_a_500_after_a_bounded_wait() -> None:
    with Cluster(3, seed=6) as cluster:
        api = SimApi(cluster, leader_hold=0.5, request_timeout=1.0)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        cluster.cut(follower, leader)  # the follower still hears the leader's heartbeats
        started = cluster.now
        r = cluster.run(api.request(follower, "PUT", "/v1/kv/a", body=b"1"))
        assert (r.status, r.text) == (500, f"no answer from {leader} to {FORWARD_METHOD}")
        assert cluster.now - started == pytest.approx(2.5, abs=0.01)
        assert cluster.servers[leader].kv.digest() == {}
        api.close()


def test_the_rpc_method_checks_what_it_is_given() -> None:
    with Cluster(3, seed=6) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        api.app(leader)
        bad: list[list[Any]] = [[], ["GET"], ["GET", "/v1/agent/self", [], "not bytes", 1],
                                ["GET", "/v1/agent/self", [["X-Nomad-Token"]], b"", 1],
                                ["GET", "/v1/agent/self", [], b"", True]]
        for params in bad:
            with pytest.raises(ValueError):
                serve_forwarded(cluster, leader, "s2", params)
        status, headers, body = serve_forwarded(
            cluster, leader, "s2", ["GET", "/v1/status/leader", [["X-Other", "dropped"]], b"", 1])
        assert status == 200
        assert body == f'"{cluster.addresses[leader]}"'.encode()
        assert all(name.lower() == "content-type" or name.startswith("X-Nomad-")
                   for name, _ in headers)
        api.close()


def test_a_request_forwarded_too_often_gives_up() -> None:
    with Cluster(3, seed=6) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        api.app(follower)
        status, _, body = serve_forwarded(cluster, follower, leader,
                                          ["GET", "/v1/status/leader", [], b"", MAX_HOPS])
        assert (status, body) == (500, b"No cluster leader")
        status, _, body = serve_forwarded(cluster, follower, leader,
                                          ["GET", "/v1/status/leader", [], b"", MAX_HOPS - 1])
        assert status == 200
        api.close()


def test_every_server_can_be_forwarded_to_before_its_app_is_used() -> None:
    with Cluster(3, seed=6) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        r = cluster.run(api.request(follower, "GET", "/v1/operator/raft/configuration"))
        assert r.status == 200
        assert r.header("X-Nomad-LastContact") == "0"
        api.close()
