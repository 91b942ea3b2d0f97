"""SimApi: real HTTP/1.1 through aiohttp's request handling, in memory, in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from raftsim.api import ApiResponse, SimApi
from raftsim.api.exchange import decode_response, encode_request
from raftsim.api.inmemory import traced_path
from raftsim.sim.cluster import Cluster


def test_request_returns_status_headers_and_body() -> None:
    with Cluster(3, seed=1) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        r = cluster.run(api.request(leader, "GET", "/v1/status/leader"))
        assert isinstance(r, ApiResponse)
        assert r.status == 200
        assert r.json() == cluster.addresses[leader]
        assert r.text == f'"{cluster.addresses[leader]}"'
        assert r.headers["X-Nomad-KnownLeader"] == "true"
        assert "Date" not in r.headers
        api.close()


def test_each_call_is_one_api_record_without_headers_or_tokens() -> None:
    with Cluster(3, seed=1) as cluster:
        assert cluster.recorder is not None
        api = SimApi(cluster, acl_token="secret-token")
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        cluster.run(api.request(follower, "GET", "/v1/operator/raft/configuration?stale",
                                headers={"X-Nomad-Token": "secret-token"}))
        cluster.run(api.request(follower, "DELETE", "/v1/operator/raft/peer?id=nope",
                                headers={"X-Nomad-Token": "secret-token"}))
        records = [r for r in cluster.recorder.records if r["kind"] == "api"]
        assert [(r["server"], r["method"], r["path"], r["status"]) for r in records] == [
            (follower, "GET", "/v1/operator/raft/configuration?stale", 200),
            (follower, "DELETE", "/v1/operator/raft/peer?id=nope", 500),
        ]
        assert "error" not in records[0]
        assert records[1]["error"] == 'id "nope" was not found in the Raft configuration'
        node = cluster.servers[follower].node
        assert node is not None and records[1]["term"] == node.term
        api.close()


def test_traced_path_drops_token_parameters_only() -> None:
    assert traced_path("/v1/kv/a?stale") == "/v1/kv/a?stale"
    assert traced_path("/v1/kv/a?token=s3cr3t&stale=1") == "/v1/kv/a?stale=1"
    assert traced_path("/v1/kv/a?X-Nomad-Token=s3cr3t") == "/v1/kv/a"


def test_a_crashed_server_refuses_the_connection() -> None:
    with Cluster(3, seed=1) as cluster:
        assert cluster.recorder is not None
        api = SimApi(cluster)
        cluster.wait_for_leader()
        cluster.crash("s3")
        with pytest.raises(ConnectionRefusedError):
            cluster.run(api.request("s3", "GET", "/v1/agent/self"))
        last = cluster.recorder.records[-1]
        assert (last["kind"], last["status"], last["error"]) == ("api", 0, "connection refused")
        with pytest.raises(ValueError, match="unknown server 'zz'"):
            cluster.run(api.request("zz", "GET", "/v1/agent/self"))
        cluster.restart("s3")
        assert cluster.run(api.request("s3", "GET", "/v1/agent/self")).status == 200
        api.close()


def test_no_port_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("SimApi must not listen on a socket")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_server", refuse)
    with Cluster(3, seed=1) as cluster:
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        follower = next(s for s in cluster.ids if s != leader)
        assert cluster.run(api.request(follower, "PUT", "/v1/kv/k", body=b"v")).status == 200
        api.close()


def run_scenario(seed: int) -> str:
    with Cluster(5, seed=seed) as cluster:
        assert cluster.recorder is not None
        api = SimApi(cluster)
        cluster.wait_for_leader()
        for k in range(5):
            cluster.run(api.request("s2", "PUT", f"/v1/kv/k{k}", body=b"v"))
        cluster.run(api.request("s3", "DELETE", "/v1/operator/raft/peer?id=s5"))
        cluster.run(api.request("s4", "GET", "/v1/operator/raft/configuration"))
        cluster.run_for(0.5)
        api.close()
        return cluster.recorder.digest()


def test_same_seed_same_trace_with_api_calls() -> None:
    assert run_scenario(21) == run_scenario(21)


def test_requests_run_concurrently_in_virtual_time() -> None:
    with Cluster(3, seed=1) as cluster:
        api = SimApi(cluster)
        cluster.wait_for_leader()

        async def many() -> list[ApiResponse]:
            return list(await asyncio.gather(*(
                api.request(f"s{1 + k % 3}", "PUT", f"/v1/kv/k{k}", body=b"%d" % k)
                for k in range(30))))

        answers = cluster.run(many())
        assert all(a.status == 200 and a.json() is True for a in answers)
        leader = cluster.leader()
        assert leader is not None
        assert len(cluster.servers[leader].kv.digest()) == 30
        api.close()


def test_encode_and_decode() -> None:
    raw = encode_request("PUT", "/v1/kv/ключ a?x=1", [("X-Nomad-Token", "t")], b"body")
    assert raw.startswith(b"PUT /v1/kv/%D0%BA%D0%BB%D1%8E%D1%87%20a?x=1 HTTP/1.1\r\n")
    assert raw.endswith(b"\r\n\r\nbody")
    with pytest.raises(ValueError):
        encode_request("GET /", "/x")
    with pytest.raises(ValueError):
        encode_request("GET", "/x", [("X-Evil", "a\r\nInjected: 1")])
    with pytest.raises(ValueError):
        encode_request("GET", "no-slash")
    r = decode_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert (r.status, r.body) == (200, b"abcde")
    with pytest.raises(ValueError):
        decode_response(b"HTTP/1.1 200 OK\r\n")
