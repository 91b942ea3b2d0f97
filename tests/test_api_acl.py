"""ACLs: off by default; with a management token, every endpoint but /v1/status needs it.
The token is never written to the trace."""

from __future__ import annotations

import json

import pytest

from raftsim.api import SimApi
from raftsim.api.acl import Acl, request_token
from raftsim.sim.cluster import Cluster

TOKEN = "3f1c9e2a-0d41-4b7e-9a55-6c2b8e1d7f00"
GUARDED = [
    ("GET", "/v1/operator/raft/configuration"),
    ("GET", "/v1/operator/raft/configuration?stale"),
    ("DELETE", "/v1/operator/raft/peer?id=s3"),
    ("PUT", "/v1/operator/raft/peer?id=s9&address=127.0.0.9:4647"),
    ("POST", "/v1/operator/raft/promote?id=s3"),
    ("PUT", "/v1/operator/raft/transfer-leadership?id=s2"),
    ("GET", "/v1/operator/autopilot/health"),
    ("GET", "/v1/agent/self"),
    ("GET", "/v1/kv/k"),
    ("GET", "/v1/kv/k?stale"),
    ("PUT", "/v1/kv/k"),
    ("DELETE", "/v1/kv/k"),
]


def test_request_token_reads_headers_as_nomad_does() -> None:
    assert request_token({"X-Nomad-Token": "  abc \t"}) == "abc"
    assert request_token({"Authorization": "Bearer abc"}) == "abc"
    assert request_token({"Authorization": "bearer   abc  def"}) == "abc"
    assert request_token({"Authorization": "Basic abc"}) is None
    assert request_token({"Authorization": "Bearer"}) is None
    assert request_token({"Authorization": "Bearer "}) is None
    assert request_token({"X-Nomad-Token": "x", "Authorization": "Bearer y"}) == "x"
    assert request_token({}) is None


def test_acl_compares_and_hides_the_token() -> None:
    acl = Acl(TOKEN)
    assert acl.enabled
    assert acl.allows(TOKEN)
    assert not acl.allows(TOKEN[:-1])
    assert not acl.allows(None)
    assert not acl.allows("")
    assert not acl.allows("é")  # non-ASCII does not break the constant-time compare
    assert TOKEN not in repr(acl)
    assert Acl().allows(None)
    with pytest.raises(ValueError, match="must not be empty"):
        Acl("  ")


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_without_a_valid_token_every_management_endpoint_is_403(
        method: str, path: str) -> None:
    with Cluster(3, seed=8) as cluster:
        api = SimApi(cluster, acl_token=TOKEN)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        node = cluster.servers[leader].node
        assert node is not None
        before = node.configuration
        for headers in ({}, {"X-Nomad-Token": "wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": "Bearer wrong"}, {"X-Nomad-Token": TOKEN + "x"}):
            for sid in (leader, follower):
                r = cluster.run(api.request(sid, method, path, headers=headers, body=b"v"))
                assert (r.status, r.text) == (403, "Permission denied"), (sid, headers)
                assert r.header("Content-Type", "").startswith("text/plain")
        assert node.configuration == before
        assert cluster.servers[leader].kv.digest() == {}
        api.close()


def test_the_token_opens_every_endpoint_and_never_reaches_the_trace() -> None:
    with Cluster(3, seed=8) as cluster:
        assert cluster.recorder is not None
        api = SimApi(cluster, acl_token=TOKEN)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        good = [{"X-Nomad-Token": f"  {TOKEN}  "}, {"Authorization": f"Bearer {TOKEN}"}]
        for headers in good:
            r = cluster.run(api.request(follower, "PUT", "/v1/kv/k", body=b"v",
                                        headers=headers))
            assert r.status == 200
            r = cluster.run(api.request(follower, "GET", "/v1/operator/raft/configuration",
                                        headers=headers))
            assert r.status == 200
            r = cluster.run(api.request(follower, "GET", "/v1/agent/self", headers=headers))
            assert r.json()["config"]["ACL"]["Enabled"] is True
        # a token in a query string (which Nomad ignores) is kept out of the trace too
        r = cluster.run(api.request(follower, "GET", f"/v1/kv/k?token={TOKEN}&stale",
                                    headers=good[0]))
        assert r.status == 200
        r = cluster.run(api.request(follower, "GET", "/v1/kv/k",
                                    headers={"X-Nomad-Token": TOKEN[::-1]}))
        assert r.status == 403
        api.close()
        records = cluster.recorder.records
        assert any(rec["kind"] == "api" for rec in records)
        assert any(rec.get("msg") == "rpc" for rec in records)  # forwarded over RPC
        text = "\n".join(cluster.recorder.lines())
        assert TOKEN not in text
        assert TOKEN[::-1] not in text
        assert all(TOKEN not in json.dumps(rec, default=str) for rec in records)


def test_status_endpoints_need_no_token() -> None:
    with Cluster(3, seed=8) as cluster:
        api = SimApi(cluster, acl_token=TOKEN)
        leader = cluster.wait_for_leader()
        for path in ("/v1/status/leader", "/v1/status/peers"):
            assert cluster.run(api.request(leader, "GET", path)).status == 200
        api.close()


def test_parameters_are_checked_before_the_token_as_in_nomad() -> None:
    with Cluster(3, seed=8) as cluster:
        api = SimApi(cluster, acl_token=TOKEN)
        leader = cluster.wait_for_leader()
        r = cluster.run(api.request(leader, "DELETE", "/v1/operator/raft/peer"))
        assert r.status == 400
        r = cluster.run(api.request(leader, "GET", "/v1/operator/raft/configuration?stale=x"))
        assert r.status == 400
        api.close()
