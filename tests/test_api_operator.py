"""/v1/operator: every row of docs operator-api.md for the configuration, peer,
transfer-leadership and autopilot endpoints, in a simulated cluster (virtual time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from raftsim.api import SimApi
from raftsim.api.exchange import ApiResponse
from raftsim.core.messages import EntryKind
from raftsim.core.settings import NodeSettings
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster

CONFIG = "/v1/operator/raft/configuration"
PEER = "/v1/operator/raft/peer"


class World:
    """A simulated cluster with its API, and shorthands for the tests."""

    def __init__(self, servers: int = 5, seed: int = 3, *,
                 settings: NodeSettings | None = None, leader_hold: float = 5.0,
                 request_timeout: float = 5.0) -> None:
        self.cluster = Cluster(servers, seed=seed, settings=settings)
        self.api = SimApi(self.cluster, leader_hold=leader_hold,
                          request_timeout=request_timeout)
        self.leader = self.cluster.wait_for_leader()

    def req(self, sid: str, method: str, path: str, body: bytes = b"") -> ApiResponse:
        return self.cluster.run(self.api.request(sid, method, path, body=body))

    def followers(self) -> list[str]:
        return [s for s in self.cluster.ids if s != self.cluster.leader()]

    def committed_ids(self, sid: str) -> tuple[str, ...]:
        node = self.cluster.servers[sid].node
        assert node is not None
        return node.committed_configuration[1].ids

    def latest_ids(self, sid: str) -> tuple[str, ...]:
        node = self.cluster.servers[sid].node
        assert node is not None
        return node.configuration.ids

    def close(self) -> None:
        self.api.close()
        self.cluster.close()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


def ids_of(response: ApiResponse) -> list[str]:
    return [s["ID"] for s in response.json()["Servers"]]


# ---------------------------------------------------------------- GET configuration

def test_configuration_lists_the_committed_configuration_in_order(world: World) -> None:
    r = world.req(world.leader, "GET", CONFIG)
    assert r.status == 200
    assert r.header("Content-Type", "").startswith("application/json")
    body = r.json()
    assert body["Index"] == 1  # the bootstrap configuration's entry
    assert [s["ID"] for s in body["Servers"]] == world.cluster.ids
    for s in body["Servers"]:
        assert s["Address"] == world.cluster.addresses[s["ID"]]
        assert s["Node"] == f"{s['ID']}.global"
        assert s["Voter"] is True
        assert s["RaftProtocol"] == "3"
        assert s["Leader"] is (s["ID"] == world.leader)
    assert r.header("X-Nomad-Index") == "1"
    assert r.header("X-Nomad-KnownLeader") == "true"
    assert r.header("X-Nomad-LastContact") == "0"


def test_leader_is_set_on_exactly_one_server_from_every_servers_view(world: World) -> None:
    leader_address = world.cluster.addresses[world.leader]
    for sid in world.cluster.ids:
        for path in (CONFIG, CONFIG + "?stale"):
            servers = world.req(sid, "GET", path).json()["Servers"]
            flagged = [s["Address"] for s in servers if s["Leader"]]
            assert flagged == [leader_address], (sid, path)


def test_a_server_that_knows_no_leader_flags_none(world: World) -> None:
    lonely = world.followers()[0]
    world.cluster.isolate(lonely)
    node = world.cluster.servers[lonely].node
    assert node is not None
    assert world.cluster.run_until(lambda: node.leader_id is None, 2.0)
    r = world.req(lonely, "GET", CONFIG + "?stale")
    assert r.status == 200
    assert not any(s["Leader"] for s in r.json()["Servers"])
    assert r.header("X-Nomad-KnownLeader") == "false"
    assert int(r.header("X-Nomad-LastContact", "0") or 0) > 0


def test_a_server_the_member_directory_does_not_know_is_unknown(world: World) -> None:
    r = world.req(world.leader, "PUT", PEER + "?id=ghost&address=127.0.0.99:4647&voter=false")
    assert r.status == 200, r.text
    servers = {s["ID"]: s for s in world.req(world.leader, "GET", CONFIG).json()["Servers"]}
    assert servers["ghost"]["Node"] == "(unknown)"
    assert servers["ghost"]["Voter"] is False
    assert servers["s2"]["Node"] == "s2.global"


def test_stale_answer_can_lag_the_leader_while_a_forwarded_one_cannot(world: World) -> None:
    """A follower whose link from the leader is slow has not yet learned of a committed
    removal: its stale answer still shows the old configuration; a non-stale request to
    the same follower is answered by the leader."""
    lagging, entry, victim = world.followers()[:3]
    world.cluster.network.set_link(world.leader, lagging, latency=(1.0, 1.0))
    assert world.req(entry, "DELETE", f"{PEER}?id={victim}").status == 200
    leader_view = world.req(world.leader, "GET", CONFIG)
    stale_view = world.req(lagging, "GET", CONFIG + "?stale")
    forwarded = world.req(lagging, "GET", CONFIG)
    assert victim not in ids_of(leader_view)
    assert victim in ids_of(stale_view)
    assert stale_view.json()["Index"] == 1 < leader_view.json()["Index"]
    assert ids_of(forwarded) == ids_of(leader_view)
    assert forwarded.json()["Index"] == leader_view.json()["Index"]
    assert forwarded.header("X-Nomad-Index") == leader_view.header("X-Nomad-Index")
    # once the link is back to normal the follower catches up
    world.cluster.network.set_link(world.leader, lagging)
    assert world.cluster.run_until(
        lambda: world.committed_ids(lagging) == tuple(ids_of(leader_view)), 5.0)


def test_index_is_the_committed_configuration_entrys_index(world: World) -> None:
    victim = world.followers()[-1]
    assert world.req(world.leader, "DELETE", f"{PEER}?id={victim}").status == 200
    node = world.cluster.servers[world.leader].node
    assert node is not None
    index, _ = node.committed_configuration
    assert index > 1
    assert node.log.entry(index).kind is EntryKind.CONFIGURATION
    r = world.req(world.leader, "GET", CONFIG)
    assert r.json()["Index"] == index
    assert r.header("X-Nomad-Index") == str(index)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_on_configuration_are_405_with_an_empty_body(
        world: World, method: str) -> None:
    r = world.req(world.leader, method, CONFIG)
    assert r.status == 405
    assert r.body == b""
    assert r.header("X-Nomad-KnownLeader") == "true"


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True", ""])
def test_stale_true_spellings_answer_locally(world: World, value: str) -> None:
    follower = world.followers()[0]
    world.cluster.isolate(follower)  # a forwarded read could not be answered now
    r = world.req(follower, "GET", f"{CONFIG}?stale={value}" if value else f"{CONFIG}?stale")
    assert r.status == 200
    assert r.header("X-Nomad-LastContact") != "0"  # answered by the follower itself


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_stale_false_spellings_are_answered_by_the_leader(world: World, value: str) -> None:
    follower = world.followers()[0]
    r = world.req(follower, "GET", f"{CONFIG}?stale={value}")
    assert r.status == 200
    assert r.header("X-Nomad-LastContact") == "0"  # the leader's answer


@pytest.mark.parametrize("value", ["yes", "no", "2", "tRUE", "true ", "%20", "on", "-1"])
def test_bad_stale_is_400_with_nomads_message(world: World, value: str) -> None:
    r = world.req(world.leader, "GET", f"{CONFIG}?stale={value}")
    assert r.status == 400
    assert r.header("Content-Type", "").startswith("text/plain")
    shown = " " if value == "%20" else value
    assert r.text == ("Expect `true` or `false` for `stale` query string parameter, "
                      f"got {shown}")


def test_unknown_query_parameters_are_ignored(world: World) -> None:
    r = world.req(world.leader, "GET", CONFIG + "?region=global&namespace=x&index=7")
    assert r.status == 200


def test_no_leader_within_the_hold_time_is_500_no_cluster_leader() -> None:
    w = World(leader_hold=0.5)
    try:
        follower = w.followers()[0]
        w.cluster.isolate(follower)
        node = w.cluster.servers[follower].node
        assert node is not None
        assert w.cluster.run_until(lambda: node.leader_id is None, 2.0)
        started = w.cluster.now
        r = w.req(follower, "GET", CONFIG)
        assert (r.status, r.text) == (500, "No cluster leader")
        assert w.cluster.now - started == pytest.approx(0.5, abs=0.05)
        assert w.req(follower, "GET", CONFIG + "?stale").status == 200
    finally:
        w.close()


# ---------------------------------------------------------------- DELETE peer

@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "HEAD"])
def test_other_methods_on_peer_are_404_invalid_method(world: World, method: str) -> None:
    r = world.req(world.leader, method, PEER + "?id=s2")
    assert r.status == 404
    if method != "HEAD":
        assert r.text == "Invalid method"
    assert world.committed_ids(world.leader) == tuple(world.cluster.ids)


def test_remove_needs_an_id_or_an_address(world: World) -> None:
    r = world.req(world.leader, "DELETE", PEER)
    assert r.status == 400
    assert r.text == ("Must specify either ?id with the server's ID or ?address with "
                      "IP:port of peer to remove")
    r = world.req(world.leader, "DELETE", PEER + "?stale=false")
    assert r.status == 400


def test_remove_refuses_both_an_id_and_an_address(world: World) -> None:
    r = world.req(world.leader, "DELETE", PEER + "?id=s2&address=127.0.0.2:4647")
    assert (r.status, r.text) == (400, "Must specify only one of ?id or ?address")


def test_removing_an_unknown_server_is_500_not_found(world: World) -> None:
    follower = world.followers()[0]
    r = world.req(follower, "DELETE", PEER + "?address=1.2.3.4:4646")
    assert (r.status, r.text) == (
        500, 'address "1.2.3.4:4646" was not found in the Raft configuration')
    r = world.req(follower, "DELETE", PEER + "?id=x")
    assert (r.status, r.text) == (500, 'id "x" was not found in the Raft configuration')
    assert world.committed_ids(world.leader) == tuple(world.cluster.ids)


def test_removing_the_last_voter_is_refused() -> None:
    w = World(servers=1)
    try:
        r = w.req("s1", "DELETE", PEER + "?id=s1")
        assert (r.status, r.text) == (500, "need at least one voter in configuration")
        assert w.committed_ids("s1") == ("s1",)
    finally:
        w.close()


def test_python_nomads_stale_false_is_accepted_on_remove(world: World) -> None:
    victim = world.followers()[0]
    r = world.req(world.leader, "DELETE",
                  f"{PEER}?address={world.cluster.addresses[victim]}&stale=False")
    assert (r.status, r.body) == (200, b"")
    assert victim not in world.committed_ids(world.leader)


def test_remove_a_follower_then_the_leader_through_a_followers_api(world: World) -> None:
    old_leader = world.leader
    entry, victim, *_ = world.followers()
    assert world.req(entry, "DELETE", f"{PEER}?id={victim}").status == 200
    r = world.req(entry, "DELETE", f"{PEER}?address={world.cluster.addresses[old_leader]}")
    assert (r.status, r.body) == (200, b"")
    members = tuple(s for s in world.cluster.ids if s not in (victim, old_leader))

    def converged() -> bool:
        leader = world.cluster.leader()
        return (leader in members
                and all(world.committed_ids(s) == members == world.latest_ids(s)
                        for s in members))

    assert world.cluster.run_until(converged, 5.0)
    assert world.cluster.leader() != old_leader
    # every member answers with the same configuration, and flags the new leader
    answers = [world.req(s, "GET", CONFIG + "?stale").json() for s in members]
    assert all(a == answers[0] for a in answers)
    assert [s["ID"] for s in answers[0]["Servers"]] == list(members)
    assert [s["ID"] for s in answers[0]["Servers"] if s["Leader"]] == [world.cluster.leader()]
    # the removed servers committed their own removal and stay out
    assert old_leader not in world.committed_ids(old_leader)
    assert victim not in world.committed_ids(victim)


def test_leadership_lost_before_the_commit_is_500_and_changes_nothing(world: World) -> None:
    """The leader can reach one follower only: it appends the removal, cannot commit it,
    and steps down (CheckQuorum) before it could."""
    original = tuple(world.cluster.ids)
    leader = world.leader
    buddy, *others = world.followers()
    world.cluster.partition([[leader, buddy], others])
    r = world.req(buddy, "DELETE", f"{PEER}?id={others[-1]}")
    assert (r.status, r.text) == (500, "leadership lost while committing log")
    assert world.latest_ids(leader) != original  # the entry was appended, not committed
    world.cluster.heal()

    def settled() -> bool:
        return world.cluster.leader() is not None and all(
            world.committed_ids(s) == original == world.latest_ids(s) for s in original)

    assert world.cluster.run_until(settled, 5.0)
    for sid in original:
        assert ids_of(world.req(sid, "GET", CONFIG + "?stale")) == list(original)


def test_a_change_waits_for_an_uncommitted_one_then_gives_up_saying_why() -> None:
    w = World(settings=NodeSettings(check_quorum=False), request_timeout=1.0)
    try:
        leader = w.leader
        buddy, *others = w.followers()
        w.cluster.partition([[leader, buddy], others])

        async def two_removals() -> list[ApiResponse]:
            first = asyncio.ensure_future(
                w.api.request(buddy, "DELETE", f"{PEER}?id={others[0]}"))
            second = asyncio.ensure_future(
                w.api.request(leader, "DELETE", f"{PEER}?id={others[1]}"))
            return list(await asyncio.gather(first, second))

        answers = w.cluster.run(two_removals())
        # whichever reached the leader first appended its entry and waited for the
        # commit; the other waited for that entry to commit, and gave up
        assert sorted((r.status, r.text) for r in answers) == [
            (500, "timed out waiting for the entry to commit"),
            (500, "timed out waiting to change the configuration: "
                  "a configuration change is still uncommitted"),
        ]
    finally:
        w.close()


# ---------------------------------------------------------------- add and promote

def test_add_a_nonvoter_then_promote_it(world: World) -> None:
    new = world.cluster.add_server("s6")
    address = world.cluster.addresses["s6"]
    entry = world.followers()[0]
    r = world.req(entry, "PUT", f"{PEER}?id=s6&address={address}&voter=false")
    assert (r.status, r.body) == (200, b"")
    servers = {s["ID"]: s for s in world.req(entry, "GET", CONFIG).json()["Servers"]}
    assert servers["s6"]["Voter"] is False
    assert servers["s6"]["Node"] == "s6.global"
    r = world.req(entry, "POST", "/v1/operator/raft/promote?id=s6")
    assert (r.status, r.body) == (200, b"")
    servers = {s["ID"]: s for s in world.req(entry, "GET", CONFIG).json()["Servers"]}
    assert servers["s6"]["Voter"] is True
    assert world.cluster.run_until(
        lambda: new.node is not None and "s6" in new.node.committed_configuration[1].voters,
        5.0)


def test_add_as_nonvoter_by_default_and_as_voter_on_request(world: World) -> None:
    """A server joins as a non-voter (hashicorp/raft's staging, etcd's learners):
    autopilot promotes it once it has caught up. ``?voter=true`` asks for a voter."""
    world.cluster.add_server("s6")
    world.cluster.add_server("s7")
    r = world.req(world.leader, "PUT", f"{PEER}?id=s6&address={world.cluster.addresses['s6']}")
    assert r.status == 200
    node = world.cluster.servers[world.leader].node
    assert node is not None
    assert "s6" in node.committed_configuration[1].ids
    assert not node.committed_configuration[1].is_voter("s6")
    r = world.req(world.leader, "PUT",
                  f"{PEER}?id=s7&address={world.cluster.addresses['s7']}&voter=true")
    assert r.status == 200
    assert node.committed_configuration[1].is_voter("s7")


def test_adding_an_unreachable_server_never_costs_availability() -> None:
    """A server that is not running yet (or never will) joins as a non-voter, so the
    quorum stays that of the running voters, and autopilot never promotes it."""
    w = World(servers=3, seed=5)
    try:
        r = w.req(w.leader, "PUT", f"{PEER}?id=ghost&address=127.0.0.99:4647")
        assert r.status == 200, r.text
        w.cluster.crash(w.followers()[0])
        r = w.req(w.leader, "PUT", "/v1/kv/still-writable", body=b"yes")
        assert (r.status, r.text) == (200, "true")
        w.cluster.run_for(15.0)  # longer than the stabilization time
        servers = {s["ID"]: s for s in w.req(w.leader, "GET", CONFIG).json()["Servers"]}
        assert servers["ghost"]["Voter"] is False
    finally:
        w.close()


@pytest.mark.parametrize(("query", "message"), [
    ("", "Must specify ?id with the server's ID and ?address with IP:port of the server "
         "to add"),
    ("?id=s6", "Must specify ?id with the server's ID and ?address with IP:port of the "
               "server to add"),
    ("?address=127.0.0.6:4647", "Must specify ?id with the server's ID and ?address with "
                                "IP:port of the server to add"),
    ("?id=s6&address=nowhere", "Invalid ?address 'nowhere': expected IP:port"),
    ("?id=s6&address=1.2.3.4:99999", "Invalid ?address '1.2.3.4:99999': expected IP:port"),
    ("?id=s6&address=127.0.0.6:4647&voter=maybe",
     "Expect `true` or `false` for `voter` query string parameter, got maybe"),
])
def test_add_rejects_bad_parameters(world: World, query: str, message: str) -> None:
    r = world.req(world.leader, "PUT", PEER + query)
    assert (r.status, r.text) == (400, message)
    assert world.latest_ids(world.leader) == tuple(world.cluster.ids)


def test_add_refuses_an_address_in_use(world: World) -> None:
    r = world.req(world.leader, "PUT", f"{PEER}?id=s9&address={world.cluster.addresses['s2']}")
    assert (r.status, r.text) == (
        500, 'address "127.0.0.2:4647" is already in the Raft configuration')


def test_promote_errors(world: World) -> None:
    promote = "/v1/operator/raft/promote"
    r = world.req(world.leader, "POST", promote)
    assert (r.status, r.text) == (400, "Must specify ?id with the ID of the server to promote")
    r = world.req(world.leader, "POST", promote + "?id=nobody")
    assert (r.status, r.text) == (500, 'id "nobody" was not found in the Raft configuration')
    r = world.req(world.leader, "GET", promote + "?id=s2")
    assert (r.status, r.text) == (405, "Invalid method")


# ---------------------------------------------------------------- transfer-leadership

TRANSFER = "/v1/operator/raft/transfer-leadership"


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_transfer_leadership_by_id_through_a_follower(world: World, method: str) -> None:
    old = world.leader
    target, entry = world.followers()[:2]
    r = world.req(entry, method, f"{TRANSFER}?id={target}")
    assert r.status == 200, r.text
    assert r.json() == {"From": {"Address": world.cluster.addresses[old], "ID": old},
                        "To": {"Address": world.cluster.addresses[target], "ID": target},
                        "Noop": False}
    assert world.cluster.leader() == target


def test_transfer_leadership_by_address_and_to_the_leader_itself(world: World) -> None:
    target = world.followers()[0]
    r = world.req(world.leader, "PUT", f"{TRANSFER}?address={world.cluster.addresses[target]}")
    assert r.status == 200
    assert world.cluster.leader() == target
    r = world.req(target, "PUT", f"{TRANSFER}?id={target}")
    assert r.status == 200
    assert r.json()["Noop"] is True


@pytest.mark.parametrize(("query", "message"), [
    ("", "must specify id or address"),
    ("?id=s2&address=127.0.0.2:4647", "must specify either id or address"),
    ("?id=", "id must be non-empty"),
    ("?id=s2&id=s3", "must specify only one id"),
    ("?address=", "address must be non-empty"),
    ("?address=a&address=b", "must specify only one address"),
    ("?id=nobody", 'id "nobody" was not found in the Raft configuration'),
    ("?address=127.0.9.9:1", 'address "127.0.9.9:1" was not found in the Raft configuration'),
])
def test_transfer_leadership_rejects_bad_parameters(
        world: World, query: str, message: str) -> None:
    r = world.req(world.followers()[0], "PUT", TRANSFER + query)
    assert (r.status, r.text) == (400, message)
    assert world.cluster.leader() == world.leader


def test_transfer_leadership_to_a_nonvoter_is_refused(world: World) -> None:
    world.cluster.add_server("s6")
    world.req(world.leader, "PUT",
              f"{PEER}?id=s6&address={world.cluster.addresses['s6']}&voter=false")
    r = world.req(world.leader, "PUT", f"{TRANSFER}?id=s6")
    assert (r.status, r.text) == (400, "cannot transfer leadership to non-voter")


def test_transfer_leadership_other_methods_are_405(world: World) -> None:
    r = world.req(world.leader, "GET", f"{TRANSFER}?id=s2")
    assert (r.status, r.text) == (405, "Invalid method")


# ---------------------------------------------------------------- autopilot health

HEALTH = "/v1/operator/autopilot/health"


def test_autopilot_health_of_a_healthy_cluster(world: World) -> None:
    world.cluster.run_for(0.5)
    r = world.req(world.followers()[0], "GET", HEALTH)
    assert r.status == 200, r.text
    report = r.json()
    assert report["Healthy"] is True
    assert report["FailureTolerance"] == 2
    assert report["Leader"] == world.leader
    assert report["Voters"] == world.cluster.ids
    assert [s["ID"] for s in report["Servers"]] == world.cluster.ids
    for s in report["Servers"]:
        assert s["Healthy"] is True
        assert s["Name"] == f"{s['ID']}.global"
        assert s["Leader"] is (s["ID"] == world.leader)
        assert s["LastTerm"] >= 1 and s["LastIndex"] >= 1
    assert [s["LastContact"] for s in report["Servers"] if s["Leader"]] == ["0s"]


def test_autopilot_health_is_429_with_a_server_down(world: World) -> None:
    down = world.followers()[0]
    world.cluster.crash(down)
    world.cluster.run_for(1.0)
    r = world.req(world.leader, "GET", HEALTH)
    assert r.status == 429
    report = r.json()
    assert report["Healthy"] is False
    assert report["FailureTolerance"] == 1
    assert [s["ID"] for s in report["Servers"] if not s["Healthy"]] == [down]


def test_autopilot_health_validates_stale_and_other_methods(world: World) -> None:
    assert world.req(world.leader, "GET", HEALTH + "?stale=nope").status == 400
    r = world.req(world.leader, "PUT", HEALTH)
    assert (r.status, r.text) == (404, "Invalid method")


# ---------------------------------------------------------------- conformance (issue 12)

TRANSFER_PATH = "/v1/operator/raft/transfer-leadership"


def test_a_failed_transfer_is_answered_when_the_leader_gives_up(world: World) -> None:
    """Dissertation §3.10: the leader aborts a transfer that did not complete within an
    election timeout; the client hears so then, not at its own timeout."""
    down = world.followers()[0]
    world.cluster.crash(down)
    started = world.cluster.now
    r = world.req(world.leader, "PUT", f"{TRANSFER_PATH}?id={down}")
    assert r.status == 500
    assert r.text == f"leadership transfer to {down} did not complete"
    settings = world.cluster.settings
    assert world.cluster.now - started <= settings.election_timeout_max + 0.05
    assert world.req(world.leader, "PUT", "/v1/kv/after", body=b"x").status == 200


def test_configuration_reads_wait_for_the_new_leader_to_commit_in_its_term() -> None:
    """After a removal answered 200, a new leader that has not yet committed an entry
    of its own term may not know the removal is committed: a non-stale read waits for
    that commit (a leader barrier), so it never shows the removed server again nor an
    older Index."""
    for seed in range(3, 9):
        w = World(seed=seed)
        try:
            victim = w.followers()[0]
            assert w.req(w.leader, "DELETE", f"{PEER}?id={victim}").status == 200
            node = w.cluster.servers[w.leader].node
            assert node is not None
            removal = node.committed_configuration[0]
            w.cluster.crash(w.leader)
            cluster = w.cluster
            members = [s for s in cluster.ids if s not in (victim, w.leader)]
            # (the removed server may lead for a moment first: it still holds an
            # uncommitted configuration, §4.2.2; wait for a member to lead)
            assert cluster.run_until(lambda: cluster.leader() in members,  # noqa: B023
                                     5.0, step=0.0005)
            new_leader = cluster.leader()
            assert new_leader is not None
            for path in (CONFIG, "/v1/status/peers"):
                sid = new_leader
                r = w.req(sid, "GET", path)
                assert r.status == 200, r.text
                if path == CONFIG:
                    assert r.json()["Index"] >= removal, seed
                    assert victim not in ids_of(r), seed
                else:
                    assert w.cluster.addresses[victim] not in r.json(), seed
                assert int(r.header("X-Nomad-Index", "0") or 0) >= removal
        finally:
            w.close()


def test_status_peers_lists_every_server_nonvoters_too(world: World) -> None:
    """Nomad's /v1/status/peers lists every server of the Raft configuration."""
    world.cluster.add_server("s6")
    address = world.cluster.addresses["s6"]
    r = world.req(world.leader, "PUT", f"{PEER}?id=s6&address={address}&voter=false")
    assert r.status == 200
    peers = world.req(world.followers()[0], "GET", "/v1/status/peers").json()
    assert peers == [world.cluster.addresses[s] for s in world.cluster.ids]


def test_demote_a_voter_then_autopilot_promotes_it_back(world: World) -> None:
    victim = world.followers()[0]
    r = world.req(world.leader, "POST", f"/v1/operator/raft/demote?id={victim}")
    assert (r.status, r.body) == (200, b"")
    servers = {s["ID"]: s for s in world.req(world.leader, "GET", CONFIG).json()["Servers"]}
    assert servers[victim]["Voter"] is False
    r = world.req(world.leader, "POST", "/v1/operator/raft/demote?id=nobody")
    assert (r.status, r.text) == (500, 'id "nobody" was not found in the Raft configuration')
    r = world.req(world.leader, "POST", "/v1/operator/raft/demote")
    assert r.status == 400
    # a healthy non-voter is a voter again once it was stable for the stabilization time
    assert world.cluster.run_until(
        lambda: victim in world.committed_ids(world.leader) and world.cluster.servers[
            world.leader].node is not None and world.cluster.servers[
            world.leader].node.committed_configuration[1].is_voter(victim), 15.0)


@pytest.mark.parametrize("path", [
    "/v1/operator/raft/configuration/", "/v1/operator/raft/configuration/?stale"])
def test_a_trailing_slash_works_under_the_raft_prefix(world: World, path: str) -> None:
    r = world.req(world.leader, "GET", path)
    assert r.status == 200, r.text
    assert ids_of(r) == world.cluster.ids


def test_remove_with_a_trailing_slash(world: World) -> None:
    victim = world.followers()[0]
    r = world.req(world.leader, "DELETE", f"/v1/operator/raft/peer/?id={victim}")
    assert (r.status, r.body) == (200, b"")
    assert victim not in world.committed_ids(world.leader)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_unknown_path_under_the_raft_prefix_is_404_invalid_method(
        world: World, method: str) -> None:
    for path in ("/v1/operator/raft/", "/v1/operator/raft/nothing-here",
                 "/v1/operator/raft/snapshot/x"):
        r = world.req(world.leader, method, path)
        assert (r.status, r.text) == (404, "Invalid method"), path


def test_removing_the_leader_answers_200_when_writes_commit_with_it() -> None:
    """With group commit, the leader applies committed entries in slices. Its removal
    can commit in one step with writes still waiting to be applied; it steps down at
    once, but the removal did commit: the answer is 200, not "leadership lost"."""
    cluster = Cluster(3, seed=4, group_commit=True)
    api = SimApi(cluster)
    try:
        leader = cluster.wait_for_leader()
        server = cluster.servers[leader]
        cluster.run_for(0.2)
        cluster.isolate(leader)
        big = b"v" * 60_000  # each write its own entry; an apply slice holds about one
        writes = [cluster.loop.create_task(server.propose(encode_put(f"k{n}", big)))
                  for n in range(4)]
        cluster.run_for(0.001)
        removal = cluster.loop.create_task(
            api.request(leader, "DELETE", f"{PEER}?id={leader}"))
        cluster.run_for(0.07)
        cluster.heal()
        assert cluster.run_until(lambda: removal.done() and all(w.done() for w in writes), 5.0)
        response = removal.result()
        assert (response.status, response.text) == (200, "")
        assert [w.result() for w in writes] == [True] * 4
        node = server.node
        assert node is not None and leader not in node.committed_configuration[1].ids
    finally:
        api.close()
        cluster.close()


def test_a_transfer_to_the_leader_itself_cancels_a_pending_one(world: World) -> None:
    """etcd's TestLeaderTransferBack, through the API: the pending request answers at
    once that its transfer did not complete, and writes are taken again."""
    down = world.followers()[0]
    world.cluster.crash(down)
    pending = world.cluster.loop.create_task(
        world.api.request(world.leader, "PUT", f"{TRANSFER_PATH}?id={down}"))
    world.cluster.run_for(0.01)
    assert not pending.done()
    started = world.cluster.now
    back = world.req(world.leader, "PUT", f"{TRANSFER_PATH}?id={world.leader}")
    assert (back.status, back.json()["Noop"]) == (200, True)
    assert world.cluster.run_until(pending.done, 0.05, step=0.001)
    assert world.cluster.now - started < 0.05
    assert (pending.result().status, pending.result().text) == (
        500, f"leadership transfer to {down} did not complete")
    assert world.req(world.leader, "PUT", "/v1/kv/after", body=b"x").status == 200
