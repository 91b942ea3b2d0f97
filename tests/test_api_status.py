"""/v1/status: the leader's and the voters' addresses, without ACLs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftsim.api import SimApi
from raftsim.sim.cluster import Cluster


@pytest.fixture
def world() -> Iterator[tuple[Cluster, SimApi, str]]:
    cluster = Cluster(3, seed=2)
    api = SimApi(cluster, acl_token="management-secret")
    leader = cluster.wait_for_leader()
    yield cluster, api, leader
    api.close()
    cluster.close()


def test_leader_from_every_server(world: tuple[Cluster, SimApi, str]) -> None:
    cluster, api, leader = world
    for sid in cluster.ids:
        for path in ("/v1/status/leader", "/v1/status/leader?stale"):
            r = cluster.run(api.request(sid, "GET", path))
            assert r.status == 200  # no token needed even with ACLs on
            assert r.json() == cluster.addresses[leader]
            assert r.header("X-Nomad-Index") is not None
            assert r.header("X-Nomad-KnownLeader") == "true"


def test_leader_is_empty_on_a_stale_read_without_a_known_leader(
        world: tuple[Cluster, SimApi, str]) -> None:
    cluster, api, leader = world
    follower = next(s for s in cluster.ids if s != leader)
    cluster.isolate(follower)
    node = cluster.servers[follower].node
    assert node is not None
    assert cluster.run_until(lambda: node.leader_id is None, 2.0)
    r = cluster.run(api.request(follower, "GET", "/v1/status/leader?stale"))
    assert (r.status, r.json()) == (200, "")
    assert r.header("X-Nomad-KnownLeader") == "false"


def test_peers_lists_every_server_nonvoters_too(world: tuple[Cluster, SimApi, str]) -> None:
    cluster, api, leader = world
    cluster.add_server("s4")
    r = cluster.run(api.request(
        leader, "PUT", f"/v1/operator/raft/peer?id=s4&address={cluster.addresses['s4']}"
                       "&voter=false", headers={"X-Nomad-Token": "management-secret"}))
    assert r.status == 200
    r = cluster.run(api.request("s2", "GET", "/v1/status/peers"))
    assert r.status == 200
    assert r.json() == [cluster.addresses[s] for s in ("s1", "s2", "s3", "s4")]


@pytest.mark.parametrize("path", ["/v1/status/leader", "/v1/status/peers"])
def test_status_other_methods_and_bad_stale(world: tuple[Cluster, SimApi, str],
                                            path: str) -> None:
    cluster, api, leader = world
    r = cluster.run(api.request(leader, "POST", path))
    assert (r.status, r.text) == (405, "Invalid method")
    r = cluster.run(api.request(leader, "GET", path + "?stale=sometimes"))
    assert r.status == 400
    assert r.text.startswith("Expect `true` or `false` for `stale` query string parameter")
