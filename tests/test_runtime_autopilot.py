"""Autopilot (raftsim/runtime/autopilot.py) through the operator API, in virtual time:
non-voters are promoted once caught up and stable, never while unreachable; its
configuration is Nomad's and drives the promotion; its health report is Nomad's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from raftsim import __version__
from raftsim.api import SimApi
from raftsim.api.exchange import ApiResponse
from raftsim.runtime.autopilot import EVALUATION_INTERVAL, MEMBER_FAILED_AFTER
from raftsim.sim.cluster import Cluster

PEER = "/v1/operator/raft/peer"
AUTOPILOT = "/v1/operator/autopilot/configuration"
HEALTH = "/v1/operator/autopilot/health"
MEMBERS = "/v1/agent/members"


class World:
    def __init__(self, servers: int = 3, seed: int = 11) -> None:
        self.cluster = Cluster(servers, seed=seed)
        self.api = SimApi(self.cluster)
        self.leader = self.cluster.wait_for_leader()

    def req(self, sid: str, method: str, path: str, body: bytes = b"") -> ApiResponse:
        return self.cluster.run(self.api.request(sid, method, path, body=body))

    def is_voter(self, sid: str) -> bool:
        leader = self.cluster.leader()
        assert leader is not None
        node = self.cluster.servers[leader].node
        assert node is not None
        return node.committed_configuration[1].is_voter(sid)

    def join(self, sid: str, *, start: bool = True) -> None:
        """A new server joins through the API (as a non-voter: the default)."""
        if start:
            self.cluster.add_server(sid)
            address = self.cluster.addresses[sid]
        else:
            address = "127.0.0.99:4647"
        r = self.req(self.leader, "PUT", f"{PEER}?id={sid}&address={address}")
        assert r.status == 200, r.text

    def close(self) -> None:
        self.api.close()
        self.cluster.close()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def test_a_joining_server_is_promoted_after_the_stabilization_time(world: World) -> None:
    """raft-autopilot's stable promoter with Nomad's default ServerStabilizationTime
    (10 s): healthy (caught up, answering) and stable that long, then a voter."""
    world.join("s4")
    joined = world.cluster.now
    assert not world.is_voter("s4")
    assert world.cluster.run_until(lambda: world.is_voter("s4"), 15.0)
    took = world.cluster.now - joined
    assert 10.0 <= took <= 10.0 + 2 * EVALUATION_INTERVAL + 0.5


def test_the_configuration_drives_the_promotion(world: World) -> None:
    body = json.dumps({"CleanupDeadServers": True, "LastContactThreshold": "200ms",
                       "MaxTrailingLogs": 250, "ServerStabilizationTime": "1s"}).encode()
    r = world.req(world.leader, "PUT", AUTOPILOT, body)
    assert (r.status, r.json()) == (200, True)
    world.join("s4")
    joined = world.cluster.now
    assert world.cluster.run_until(lambda: world.is_voter("s4"), 5.0)
    assert 1.0 <= world.cluster.now - joined <= 1.0 + 2 * EVALUATION_INTERVAL + 0.5


def test_a_lagging_or_cut_off_nonvoter_is_not_promoted_until_it_is_healthy(
        world: World) -> None:
    world.req(world.leader, "PUT", AUTOPILOT,
              json.dumps({"LastContactThreshold": "200ms", "MaxTrailingLogs": 250,
                          "ServerStabilizationTime": "1s"}).encode())
    world.join("s4")
    world.cluster.cut(world.leader, "s4")
    world.cluster.run_for(3.0)
    assert not world.is_voter("s4")
    report = world.req(world.leader, "GET", HEALTH).json()
    s4 = next(s for s in report["Servers"] if s["ID"] == "s4")
    assert s4["Healthy"] is False and s4["Voter"] is False
    world.cluster.heal()
    assert world.cluster.run_until(lambda: world.is_voter("s4"), 5.0)


def test_an_unreachable_server_is_never_promoted_and_reported_failed(world: World) -> None:
    world.join("ghost", start=False)
    world.cluster.run_for(12.0)
    assert not world.is_voter("ghost")
    r = world.req(world.leader, "GET", HEALTH)
    assert r.status == 429
    ghost = next(s for s in r.json()["Servers"] if s["ID"] == "ghost")
    assert ghost["SerfStatus"] == "failed" and ghost["Healthy"] is False
    assert ghost["LastContact"] == "-1ns"
    # the cluster's quorum did not change: two of the three voters still commit
    world.cluster.crash(next(s for s in world.cluster.ids if s != world.leader))
    assert world.req(world.leader, "PUT", "/v1/kv/x", b"1").status == 200


def test_health_has_nomads_fields(world: World) -> None:
    world.cluster.run_for(1.0)
    report = world.req(world.leader, "GET", HEALTH).json()
    for server in report["Servers"]:
        assert server["SerfStatus"] == "alive"
        assert server["Version"] == __version__
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", server["StableSince"])
    follower = next(s for s in world.cluster.ids if s != world.leader)
    world.cluster.crash(follower)
    world.cluster.run_for(MEMBER_FAILED_AFTER + 1.0)
    report = world.req(world.leader, "GET", HEALTH).json()
    crashed = next(s for s in report["Servers"] if s["ID"] == follower)
    assert crashed["SerfStatus"] == "failed"
    others = [s["StableSince"] for s in report["Servers"] if s["ID"] != follower]
    assert crashed["StableSince"] > min(others)  # it became unhealthy later


def test_configuration_get_has_nomads_shape_and_defaults(world: World) -> None:
    r = world.req(world.cluster.ids[1], "GET", AUTOPILOT)
    assert r.status == 200, r.text
    assert r.json() == {
        "CleanupDeadServers": True, "LastContactThreshold": "200ms",
        "MaxTrailingLogs": 250, "MinQuorum": 0, "ServerStabilizationTime": "10s",
        "EnableRedundancyZones": False, "DisableUpgradeMigration": False,
        "EnableCustomUpgrades": False, "CreateIndex": 0, "ModifyIndex": 0}
    assert world.req(world.leader, "GET", AUTOPILOT + "?stale").status == 200


def test_configuration_put_replaces_it_everywhere_with_check_and_set(world: World) -> None:
    body = json.dumps({"CleanupDeadServers": False, "LastContactThreshold": "1s",
                       "MaxTrailingLogs": 10, "MinQuorum": 3,
                       "ServerStabilizationTime": 5_000_000_000}).encode()
    assert world.req(world.cluster.ids[2], "PUT", AUTOPILOT, body).json() is True
    got = world.req(world.cluster.ids[1], "GET", AUTOPILOT).json()
    assert got["LastContactThreshold"] == "1s" and got["ServerStabilizationTime"] == "5s"
    assert got["MaxTrailingLogs"] == 10 and got["MinQuorum"] == 3
    assert got["CleanupDeadServers"] is False and got["ModifyIndex"] > 0
    index = got["ModifyIndex"]
    stale = world.req(world.leader, "PUT", f"{AUTOPILOT}?cas={index - 1}", b"{}")
    assert (stale.status, stale.json()) == (200, False)
    fresh = world.req(world.leader, "PUT", f"{AUTOPILOT}?cas={index}", b"{}")
    assert (fresh.status, fresh.json()) == (200, True)
    # Nomad decodes into a zero value: fields left out are false, 0, 0s
    got = world.req(world.leader, "GET", AUTOPILOT).json()
    assert got["MaxTrailingLogs"] == 0 and got["ServerStabilizationTime"] == "0s"


@pytest.mark.parametrize(("query", "body", "message"), [
    ("", b"not json", "Error parsing autopilot config: invalid JSON"),
    ("", b"[1]", "Error parsing autopilot config: the body must be a JSON object"),
    ("", b'{"ServerStabilizationTime": "soon"}',
     'Error parsing autopilot config: time: invalid duration "soon"'),
    ("", b'{"MaxTrailingLogs": -1}',
     "Error parsing autopilot config: MaxTrailingLogs must be a whole number >= 0"),
    ("", b'{"CleanupDeadServers": "yes"}',
     "Error parsing autopilot config: CleanupDeadServers must be true or false"),
    ("?cas=x", b"{}", "Error parsing cas value"),
])
def test_configuration_put_rejects_bad_input_and_changes_nothing(
        world: World, query: str, body: bytes, message: str) -> None:
    before = world.req(world.leader, "GET", AUTOPILOT).json()
    r = world.req(world.leader, "PUT", AUTOPILOT + query, body)
    assert r.status == 400 and r.text.startswith(message), r.text
    assert world.req(world.leader, "GET", AUTOPILOT).json() == before


def test_configuration_other_methods_are_404_invalid_method(world: World) -> None:
    r = world.req(world.leader, "DELETE", AUTOPILOT)
    assert (r.status, r.text) == (404, "Invalid method")


def test_members_is_what_nomad_server_members_shows(world: World) -> None:
    world.cluster.run_for(0.5)
    follower = next(s for s in world.cluster.ids if s != world.leader)
    r = world.req(follower, "GET", MEMBERS)
    assert r.status == 200, r.text
    body = r.json()
    assert body["ServerName"] == f"{follower}.global"
    assert (body["ServerRegion"], body["ServerDC"]) == ("global", "dc1")
    leader_address = world.req(follower, "GET", "/v1/status/leader").json()
    rows = {}
    for member in body["Members"]:
        address = f"{member['Addr']}:{member['Tags']['port']}"
        rows[member["Name"]] = (address, member["Status"], member["Tags"]["raft_vsn"],
                                member["Tags"]["build"], address == leader_address)
    assert rows == {
        f"{sid}.global": (world.cluster.addresses[sid], "alive", "3", __version__,
                          sid == world.leader)
        for sid in world.cluster.ids}
    world.cluster.crash(follower)
    world.cluster.run_for(MEMBER_FAILED_AFTER + 1.0)
    members = world.req(world.leader, "GET", MEMBERS).json()["Members"]
    assert {m["Name"]: m["Status"] for m in members}[f"{follower}.global"] == "failed"
