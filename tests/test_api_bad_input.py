"""Bad input: each gets its documented status and a message that says what was wrong,
and none of it changes the configuration, the leader or the data."""

from __future__ import annotations

import pytest

from raftsim.api import SimApi
from raftsim.runtime.kv import MAX_KEY_BYTES, MAX_VALUE_BYTES
from raftsim.sim.cluster import Cluster

TOKEN = "b7d1e0c4-management"
AUTH = {"X-Nomad-Token": TOKEN}
STALE = "Expect `true` or `false` for `stale` query string parameter, got "
ADD = "Must specify ?id with the server's ID and ?address with IP:port of the server to add"

# (method, path, body, headers, status, message); None: any message (405 is empty)
CASES: list[tuple[str, str, bytes, dict[str, str], int, str | None]] = [
    # malformed query values
    ("GET", "/v1/operator/raft/configuration?stale=maybe", b"", AUTH, 400, STALE + "maybe"),
    ("GET", "/v1/operator/autopilot/health?stale=2", b"", AUTH, 400, STALE + "2"),
    ("GET", "/v1/status/leader?stale=yes", b"", {}, 400, STALE + "yes"),
    ("GET", "/v1/status/peers?stale=%00", b"", {}, 400, STALE + "\x00"),
    ("GET", "/v1/kv/k?stale=nah", b"", AUTH, 400, STALE + "nah"),
    ("DELETE", "/v1/operator/raft/peer", b"", AUTH, 400,
     "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"),
    ("DELETE", "/v1/operator/raft/peer?id=s1&address=127.0.0.1:4647", b"", AUTH, 400,
     "Must specify only one of ?id or ?address"),
    ("PUT", "/v1/operator/raft/peer?id=s9", b"", AUTH, 400, ADD),
    ("PUT", "/v1/operator/raft/peer?id=s9&address=localhost", b"", AUTH, 400,
     "Invalid ?address 'localhost': expected IP:port"),
    ("PUT", "/v1/operator/raft/peer?id=s9&address=127.0.0.9:4647&voter=perhaps", b"", AUTH,
     400, "Expect `true` or `false` for `voter` query string parameter, got perhaps"),
    ("POST", "/v1/operator/raft/promote", b"", AUTH, 400,
     "Must specify ?id with the ID of the server to promote"),
    ("PUT", "/v1/operator/raft/transfer-leadership", b"", AUTH, 400,
     "must specify id or address"),
    ("PUT", "/v1/operator/raft/transfer-leadership?id=", b"", AUTH, 400,
     "id must be non-empty"),
    ("PUT", "/v1/kv/k?cas=abc", b"v", AUTH, 400,
     'Error parsing cas value: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("PUT", "/v1/kv/", b"v", AUTH, 400, "Missing key name"),
    ("PUT", "/v1/kv/%C3%28", b"v", AUTH, 400, "Key is not valid UTF-8"),
    ("PUT", "/v1/kv/" + "k" * (MAX_KEY_BYTES + 1), b"v", AUTH, 400,
     f"Key too long: {MAX_KEY_BYTES + 1} bytes, the limit is {MAX_KEY_BYTES}"),
    # unknown ids
    ("DELETE", "/v1/operator/raft/peer?id=s42", b"", AUTH, 500,
     'id "s42" was not found in the Raft configuration'),
    ("DELETE", "/v1/operator/raft/peer?address=127.0.9.9:4647", b"", AUTH, 500,
     'address "127.0.9.9:4647" was not found in the Raft configuration'),
    ("POST", "/v1/operator/raft/promote?id=s42", b"", AUTH, 500,
     'id "s42" was not found in the Raft configuration'),
    ("PUT", "/v1/operator/raft/transfer-leadership?id=s42", b"", AUTH, 400,
     'id "s42" was not found in the Raft configuration'),
    # wrong methods
    ("POST", "/v1/operator/raft/configuration", b"", AUTH, 405, ""),
    ("GET", "/v1/operator/raft/peer?id=s2", b"", AUTH, 404, "Invalid method"),
    ("PATCH", "/v1/operator/raft/peer?id=s2", b"", AUTH, 404, "Invalid method"),
    ("GET", "/v1/operator/raft/transfer-leadership?id=s2", b"", AUTH, 405, "Invalid method"),
    ("DELETE", "/v1/operator/raft/promote?id=s2", b"", AUTH, 405, "Invalid method"),
    ("PUT", "/v1/operator/autopilot/health", b"", AUTH, 404, "Invalid method"),
    ("DELETE", "/v1/status/leader", b"", {}, 405, "Invalid method"),
    ("POST", "/v1/status/peers", b"", {}, 405, "Invalid method"),
    ("DELETE", "/v1/agent/self", b"", AUTH, 405, "Invalid method"),
    ("POST", "/v1/kv/k", b"v", AUTH, 405, "Invalid method"),
    ("GET", "/v1/operator/raft/nope", b"", AUTH, 404, "Invalid method"),  # Nomad prefix
    ("GET", "/v1/operator/nope", b"", AUTH, 404, "404 page not found"),
    # huge KV bodies
    ("PUT", "/v1/kv/k", b"z" * (MAX_VALUE_BYTES + 1), AUTH, 413,
     f"Value exceeds {MAX_VALUE_BYTES} byte limit"),
    ("PUT", "/v1/kv/new", b"z" * (4 * MAX_VALUE_BYTES), AUTH, 413,
     f"Value exceeds {MAX_VALUE_BYTES} byte limit"),
    # bad tokens
    ("DELETE", "/v1/operator/raft/peer?id=s2", b"", {"X-Nomad-Token": "guess"}, 403,
     "Permission denied"),
    ("DELETE", "/v1/operator/raft/peer?id=s2", b"", {}, 403, "Permission denied"),
    ("PUT", "/v1/operator/raft/peer?id=s9&address=127.0.0.9:4647", b"",
     {"Authorization": "Bearer guess"}, 403, "Permission denied"),
    ("POST", "/v1/operator/raft/promote?id=s2", b"", {"Authorization": f"Token {TOKEN}"},
     403, "Permission denied"),
    ("PUT", "/v1/operator/raft/transfer-leadership?id=s2", b"",
     {"X-Nomad-Token": TOKEN[:-1]}, 403, "Permission denied"),
    ("PUT", "/v1/kv/k", b"overwrite", {"X-Nomad-Token": " "}, 403, "Permission denied"),
    ("DELETE", "/v1/kv/k", b"", {"X-Nomad-Token": TOKEN.upper()}, 403, "Permission denied"),
    ("GET", "/v1/kv/k?stale", b"", {"X-Nomad-Token": "x"}, 403, "Permission denied"),
]


@pytest.fixture(scope="module")
def world() -> object:
    cluster = Cluster(3, seed=17)
    api = SimApi(cluster, acl_token=TOKEN)
    leader = cluster.wait_for_leader()
    r = cluster.run(api.request(leader, "PUT", "/v1/kv/k", body=b"original", headers=AUTH))
    assert r.status == 200
    cluster.run_for(0.5)
    yield cluster, api, leader
    api.close()
    cluster.close()


def snapshot(cluster: Cluster) -> list[object]:
    state: list[object] = [cluster.leader()]
    for sid in cluster.ids:
        node = cluster.servers[sid].node
        assert node is not None
        state += [node.configuration, node.committed_configuration,
                  cluster.servers[sid].kv.digest()]
    return state


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "message"), CASES,
                         ids=[f"{c[0]} {c[1][:60]} {c[4]}" for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(
        world: tuple[Cluster, SimApi, str], method: str, path: str, body: bytes,
        headers: dict[str, str], status: int, message: str | None) -> None:
    cluster, api, leader = world
    before = snapshot(cluster)
    follower = next(s for s in cluster.ids if s != leader)
    for sid in (leader, follower):
        r = cluster.run(api.request(sid, method, path, body=body, headers=headers))
        assert r.status == status, (sid, r.text)
        if message is not None:
            assert r.text == message, sid
        if status != 405 or message:
            assert r.header("Content-Type", "").startswith("text/plain")
        assert r.header("X-Nomad-KnownLeader") == "true"
    cluster.run_for(0.5)
    assert snapshot(cluster) == before
