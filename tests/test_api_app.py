"""build_app: the routes it serves are exactly the ones openapi.yaml documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raftsim.api import SimApi, build_app
from raftsim.sim.cluster import Cluster

OPENAPI = Path(__file__).resolve().parent.parent / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def documented() -> dict[str, set[str]]:
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.0")
    return {path: {m.upper() for m in item if m in HTTP_METHODS}
            for path, item in spec["paths"].items()}


def routed() -> dict[str, set[str]]:
    with Cluster(1) as cluster:
        app = build_app(cluster.servers["s1"])
        table: dict[str, set[str]] = {}
        for route in app.router.routes():
            path = route.resource.canonical if route.resource is not None else "?"
            methods = table.setdefault(path, set())
            if route.method != "*":  # the catch-all answers Nomad's wrong-method error
                methods.add(route.method)
        return table


def test_every_route_is_documented_and_every_documented_path_is_routed() -> None:
    docs, routes = documented(), routed()
    assert sorted(set(routes) - set(docs)) == [], "routes missing from openapi.yaml"
    assert sorted(set(docs) - set(routes)) == [], "documented paths the app does not serve"
    for path in routes:
        assert routes[path] == docs[path], path


def test_every_operation_says_whether_it_is_nomads_or_raftsims() -> None:
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    own = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                assert operation["tags"] in (["nomad"], ["raftsim"]), (path, method)
                if operation["tags"] == ["raftsim"]:
                    own.add((method.upper(), path))
    assert own == {("PUT", "/v1/operator/raft/peer"), ("POST", "/v1/operator/raft/promote"),
                   ("PUT", "/v1/operator/raft/promote"), ("POST", "/v1/operator/raft/demote"),
                   ("PUT", "/v1/operator/raft/demote"), ("GET", "/v1/kv/{key}"),
                   ("PUT", "/v1/kv/{key}"), ("DELETE", "/v1/kv/{key}")}


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/operator/raft/configuration", 200),
    ("POST", "/v1/operator/raft/configuration", 405),
    ("GET", "/v1/operator/raft/peer", 404),
    ("GET", "/v1/no/such/path", 404),
    ("GET", "/", 404),
    ("GET", "/v1/kv/missing", 404),
    ("DELETE", "/v1/operator/raft/peer", 400),
])
def test_every_response_says_whether_a_leader_is_known(
        method: str, path: str, status: int) -> None:
    with Cluster(3, seed=9) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        r = cluster.run(api.request(leader, method, path))
        assert r.status == status
        assert r.header("X-Nomad-KnownLeader") == "true"
        if path == "/v1/no/such/path":
            assert r.text == "404 page not found"
        api.close()


def test_build_app_checks_its_options() -> None:
    with Cluster(1) as cluster:
        with pytest.raises(ValueError):
            build_app(cluster.servers["s1"], leader_hold=-1)
        with pytest.raises(ValueError):
            build_app(cluster.servers["s1"], request_timeout=0)


def test_a_bug_is_a_500_that_names_no_secret(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from raftsim.api import agent

    def broken(state: object) -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(agent, "agent_self", broken)
    with Cluster(1) as cluster:
        api = SimApi(cluster, acl_token="do-not-log-me")
        cluster.wait_for_leader()
        r = cluster.run(api.request("s1", "GET", "/v1/agent/self",
                                    headers={"X-Nomad-Token": "do-not-log-me"}))
        assert (r.status, r.text) == (500, "internal error: RuntimeError")
        assert r.header("X-Nomad-KnownLeader") == "true"
        assert "GET /v1/agent/self" in caplog.text
        assert "do-not-log-me" not in caplog.text
        api.close()
