"""/v1/agent/self: the asked server's own view, in Nomad's shape."""

from __future__ import annotations

from raftsim.api import SimApi
from raftsim.api.durations import go_duration
from raftsim.sim.cluster import Cluster


def test_agent_self_of_leader_and_follower() -> None:
    with Cluster(3, seed=4) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        cluster.run_for(0.5)
        follower = next(s for s in cluster.ids if s != leader)
        me = cluster.run(api.request(leader, "GET", "/v1/agent/self")).json()
        raft = me["stats"]["raft"]
        node = cluster.servers[leader].node
        assert node is not None
        assert raft["state"] == "Leader"
        assert raft["term"] == str(node.term)
        assert raft["commit_index"] == str(node.commit_index)
        assert raft["last_log_index"] == str(node.log.last_index)
        assert raft["num_peers"] == "2"
        assert raft["last_contact"] == "0"
        assert raft["protocol_version"] == "3"
        assert all(isinstance(v, str) for v in raft.values())
        assert me["config"]["NodeName"] == f"{leader}.global"
        assert me["config"]["ACL"]["Enabled"] is False
        assert me["member"]["Tags"]["id"] == leader
        r = cluster.run(api.request(follower, "GET", "/v1/agent/self"))
        them = r.json()["stats"]["raft"]
        assert them["state"] == "Follower"
        assert them["last_contact"].endswith("s")  # a Go duration
        assert int(r.header("X-Nomad-LastContact") or -1) >= 0
        r = cluster.run(api.request(follower, "PUT", "/v1/agent/self"))
        assert (r.status, r.text) == (405, "Invalid method")
        api.close()


def test_agent_self_is_answered_locally_without_a_leader() -> None:
    with Cluster(3, seed=4) as cluster:
        api = SimApi(cluster, leader_hold=0.1)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        cluster.isolate(follower)
        cluster.run_for(1.0)
        r = cluster.run(api.request(follower, "GET", "/v1/agent/self"))
        assert r.status == 200
        assert r.json()["stats"]["raft"]["state"] in ("Follower", "Candidate")
        api.close()


def test_go_duration() -> None:
    assert go_duration(0) == "0s"
    assert go_duration(0.0000005) == "500ns"
    assert go_duration(0.0000125) == "12.5µs"
    assert go_duration(0.0125) == "12.5ms"
    assert go_duration(1.5) == "1.5s"
    assert go_duration(90) == "1m30s"
    assert go_duration(3725.25) == "1h2m5.25s"
    assert go_duration(-0.002) == "-2ms"
