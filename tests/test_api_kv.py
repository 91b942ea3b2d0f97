"""/v1/kv: raftsim's own key-value endpoints over the replicated state machine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from raftsim.api import SimApi
from raftsim.api.exchange import ApiResponse
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import MAX_KEY_BYTES, MAX_VALUE_BYTES
from raftsim.sim.cluster import Cluster


class KV:
    def __init__(self) -> None:
        self.cluster = Cluster(3, seed=5)
        self.api = SimApi(self.cluster)
        self.leader = self.cluster.wait_for_leader()
        self.followers = [s for s in self.cluster.ids if s != self.leader]

    def req(self, sid: str, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> ApiResponse:
        return self.cluster.run(self.api.request(sid, method, path, body=body,
                                                 headers=headers))

    def data(self, sid: str) -> dict[str, bytes]:
        return self.cluster.servers[sid].kv.digest()


@pytest.fixture
def kv() -> Iterator[KV]:
    k = KV()
    yield k
    k.api.close()
    k.cluster.close()


def test_put_then_get_through_followers(kv: KV) -> None:
    r = kv.req(kv.followers[0], "PUT", "/v1/kv/app/config", b"\x00value\xff")
    assert (r.status, r.json()) == (200, True)
    assert r.header("Content-Type", "").startswith("application/json")
    r = kv.req(kv.followers[1], "GET", "/v1/kv/app/config")
    assert r.status == 200
    assert r.body == b"\x00value\xff"
    assert r.header("Content-Type") == "application/octet-stream"
    item = kv.cluster.servers[kv.leader].kv.get("app/config")
    assert item is not None
    assert r.header("X-Nomad-Index") == str(item.modify_index)
    assert r.header("X-Nomad-LastContact") == "0"
    assert r.header("X-Nomad-KnownLeader") == "true"


def test_write_answers_only_once_applied_on_the_leader(kv: KV) -> None:
    kv.req(kv.followers[0], "PUT", "/v1/kv/k", b"v")
    assert kv.data(kv.leader) == {"k": b"v"}


def test_get_missing_key_is_404(kv: KV) -> None:
    r = kv.req(kv.leader, "GET", "/v1/kv/nothing-here")
    assert r.status == 404
    assert r.body == b""
    assert r.header("X-Nomad-Index") is not None


def test_delete(kv: KV) -> None:
    kv.req(kv.leader, "PUT", "/v1/kv/gone", b"x")
    r = kv.req(kv.followers[0], "DELETE", "/v1/kv/gone")
    assert (r.status, r.json()) == (200, True)
    assert kv.req(kv.leader, "GET", "/v1/kv/gone").status == 404


def test_cas(kv: KV) -> None:
    assert kv.req(kv.leader, "PUT", "/v1/kv/c?cas=0", b"first").json() is True
    assert kv.req(kv.leader, "PUT", "/v1/kv/c?cas=0", b"again").json() is False
    index = int(kv.req(kv.leader, "GET", "/v1/kv/c").header("X-Nomad-Index") or 0)
    assert kv.req(kv.leader, "PUT", f"/v1/kv/c?cas={index + 100}", b"nope").json() is False
    assert kv.req(kv.leader, "PUT", f"/v1/kv/c?cas={index}", b"second").json() is True
    assert kv.req(kv.leader, "GET", "/v1/kv/c").body == b"second"


@pytest.mark.parametrize(("cas", "why"), [
    ("x", "invalid syntax"), ("-1", "invalid syntax"), ("1.5", "invalid syntax"),
    ("", "invalid syntax"), ("18446744073709551616", "value out of range"),
])
def test_bad_cas_is_400(kv: KV, cas: str, why: str) -> None:
    r = kv.req(kv.leader, "PUT", f"/v1/kv/c?cas={cas}", b"v")
    assert r.status == 400
    assert r.text == f'Error parsing cas value: strconv.ParseUint: parsing "{cas}": {why}'
    assert kv.data(kv.leader) == {}


def test_utf8_keys_and_slashes(kv: KV) -> None:
    for key in ("a/b/c", "ünïcødé/ключ", "with space", "percent%25sign"):
        assert kv.req(kv.followers[0], "PUT", f"/v1/kv/{key}", key.encode()).status == 200
    assert kv.data(kv.leader) == {
        "a/b/c": b"a/b/c", "ünïcødé/ключ": "ünïcødé/ключ".encode(),
        "with space": b"with space", "percent%sign": b"percent%25sign"}
    assert kv.req(kv.leader, "GET", "/v1/kv/%C3%BCn%C3%AFc%C3%B8d%C3%A9/ключ").body == \
        "ünïcødé/ключ".encode()


@pytest.mark.parametrize(("path", "message"), [
    ("/v1/kv/", "Missing key name"),
    ("/v1/kv/%FF%FE", "Key is not valid UTF-8"),
    ("/v1/kv/" + "k" * (MAX_KEY_BYTES + 1),
     f"Key too long: {MAX_KEY_BYTES + 1} bytes, the limit is {MAX_KEY_BYTES}"),
])
def test_bad_keys_are_400(kv: KV, path: str, message: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = kv.req(kv.leader, method, path, b"v" if method == "PUT" else b"")
        assert (r.status, r.text) == (400, message)
    assert kv.data(kv.leader) == {}


def test_value_limit(kv: KV) -> None:
    biggest = b"x" * MAX_VALUE_BYTES
    assert kv.req(kv.followers[0], "PUT", "/v1/kv/big", biggest).status == 200
    assert kv.req(kv.followers[1], "GET", "/v1/kv/big").body == biggest
    r = kv.req(kv.followers[0], "PUT", "/v1/kv/big", biggest + b"!")
    assert (r.status, r.text) == (413, f"Value exceeds {MAX_VALUE_BYTES} byte limit")
    r = kv.req(kv.leader, "PUT", "/v1/kv/huge", b"y" * (3 * MAX_VALUE_BYTES))
    assert r.status == 413
    assert kv.data(kv.leader) == {"big": biggest}


def test_other_methods_are_405(kv: KV) -> None:
    for method in ("POST", "PATCH"):
        r = kv.req(kv.leader, method, "/v1/kv/k", b"v")
        assert (r.status, r.text) == (405, "Invalid method")


def test_a_stale_read_can_lag_but_a_default_read_is_linearizable(kv: KV) -> None:
    lagging = kv.followers[0]
    kv.cluster.network.set_link(kv.leader, lagging, latency=(1.0, 1.0))
    assert kv.req(kv.followers[1], "PUT", "/v1/kv/fresh", b"new").status == 200
    assert kv.req(lagging, "GET", "/v1/kv/fresh?stale").status == 404
    assert kv.req(lagging, "GET", "/v1/kv/fresh").body == b"new"


def test_a_partitioned_leader_does_not_serve_linearizable_reads(kv: KV) -> None:
    """The old leader, cut off from the majority, cannot confirm its leadership: the
    read fails rather than return a value the new leader has overwritten."""
    kv.req(kv.leader, "PUT", "/v1/kv/x", b"old")
    kv.cluster.partition([[kv.leader], kv.followers])
    new_leader_deadline = 5.0
    assert kv.cluster.run_until(
        lambda: kv.cluster.leader() in kv.followers, new_leader_deadline)
    assert kv.req(kv.followers[0], "PUT", "/v1/kv/x", b"new").status == 200
    r = kv.req(kv.leader, "GET", "/v1/kv/x")
    assert (r.status, r.text) == (500, "No cluster leader")
    assert kv.req(kv.leader, "GET", "/v1/kv/x?stale").body == b"old"


def test_a_write_past_the_uncommitted_limit_is_429_and_changes_nothing() -> None:
    """A leader whose writes do not commit (its followers are cut off) refuses more than
    max_uncommitted_bytes of them with 429 rather than queueing them in memory."""
    cluster = Cluster(3, seed=5, settings=NodeSettings(max_uncommitted_bytes=1000))
    api = SimApi(cluster)
    try:
        leader = cluster.wait_for_leader()
        cluster.isolate(leader)

        async def two_writes() -> list[ApiResponse]:
            return list(await asyncio.gather(
                api.request(leader, "PUT", "/v1/kv/first", body=b"1" * 800),
                api.request(leader, "PUT", "/v1/kv/second", body=b"2" * 300)))

        first, second = cluster.run(two_writes())
        assert second.status == 429
        assert second.header("Content-Type", "").startswith("text/plain")
        assert second.header("Retry-After") == "1"
        assert second.body.decode().startswith("too many uncommitted writes: ")
        assert second.body.decode().endswith("the limit is 1000; retry later")
        assert first.status == 500  # it could not commit: the outcome is unknown
        cluster.heal()
        new_leader = cluster.wait_for_leader()
        cluster.run_for(1.0)
        assert "second" not in cluster.servers[new_leader].kv.digest()
        ok = cluster.run(api.request(new_leader, "PUT", "/v1/kv/second", body=b"2" * 300))
        assert (ok.status, ok.json()) == (200, True)
    finally:
        api.close()
        cluster.close()
