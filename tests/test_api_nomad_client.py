"""The real python-nomad client against servers listening on loopback ports (a cluster on
an ordinary real-time loop in a background thread: raftsim.api.standin)."""

from __future__ import annotations

from collections.abc import Iterator

import nomad
import nomad.api.exceptions
import pytest

from raftsim.api.standin import StandIn
from raftsim.sim.cluster import Cluster

TOKEN = "7c2f3a9e-python-nomad"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(3, seed=1) as s:
        yield s


def client(standin: StandIn, server_id: str, token: str | None = None) -> nomad.Nomad:
    return nomad.Nomad(host="127.0.0.1", port=standin.ports[server_id], timeout=5,
                       token=token)


def test_get_configuration_from_leader_and_follower(standin: StandIn) -> None:
    leader = standin.leader()
    follower = next(s for s in standin.cluster.ids if s != leader)
    for sid in (leader, follower):
        configuration = client(standin, sid).operator.get_configuration()
        assert configuration["Index"] == 1
        servers = configuration["Servers"]
        assert [s["ID"] for s in servers] == ["s1", "s2", "s3"]
        assert [s["Address"] for s in servers] == [standin.cluster.addresses[i]
                                                   for i in ("s1", "s2", "s3")]
        assert [s["ID"] for s in servers if s["Leader"]] == [leader]
        assert all(s["Voter"] and s["Node"] == f"{s['ID']}.global" for s in servers)


def test_delete_peer_removes_one(standin: StandIn) -> None:
    leader = standin.leader()
    follower, victim = [s for s in standin.cluster.ids if s != leader]
    api = client(standin, follower)
    assert api.operator.delete_peer(standin.cluster.addresses[victim]) is True
    servers = api.operator.get_configuration()["Servers"]
    assert victim not in [s["ID"] for s in servers]

    def converged(cluster: Cluster) -> bool:
        nodes = [cluster.servers[s].node for s in (leader, follower)]
        return all(n is not None and set(n.committed_configuration[1].ids) == {leader, follower}
                   for n in nodes)

    assert standin.wait_until(converged, timeout=5.0)
    with pytest.raises(nomad.api.exceptions.BaseNomadException) as caught:
        api.operator.delete_peer("127.0.0.77:4647")
    assert "was not found in the Raft configuration" in str(caught.value.nomad_resp.text)


def test_acls_on_without_a_token_is_not_authorized() -> None:
    with StandIn(3, seed=2, acl_token=TOKEN) as standin:
        leader = standin.leader()
        follower = next(s for s in standin.cluster.ids if s != leader)
        for sid in (leader, follower):
            with pytest.raises(nomad.api.exceptions.URLNotAuthorizedNomadException):
                client(standin, sid).operator.get_configuration()
            with pytest.raises(nomad.api.exceptions.URLNotAuthorizedNomadException):
                client(standin, sid, token="wrong").operator.get_configuration()
        configuration = client(standin, follower, token=TOKEN).operator.get_configuration()
        assert len(configuration["Servers"]) == 3
        records = standin.inspect(lambda c: list(c.recorder.records) if c.recorder else [])
        assert TOKEN not in repr(records)
