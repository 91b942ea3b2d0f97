"""Live clusters of ``raftsim agent`` processes on loopback (free high ports, temporary
data directories): durability across kill -9, leader failure under load, removing a
live server, catching up by InstallSnapshot. Clients are real: python-nomad, curl,
aiohttp."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import nomad
import pytest

from tests.livecluster import (
    RETRY_PAUSE,
    AgentProcesses,
    caught_up,
    cluster_command,
    configuration,
    get_many,
    http,
    http_json,
    observe_for,
    put_many,
    raft_stats,
    until_async,
    wait_until,
)

TOKEN = "s3cr3t-management-token"


# ---------------------------------------------------------------------- tests


def test_three_processes_survive_kill_9_of_every_one_with_nothing_lost(tmp_path: Path) -> None:
    """``raftsim cluster``: python-nomad and curl see the configuration; 1,000 writes
    are acknowledged; every agent is killed with SIGKILL; after a restart every write is
    on every server, and the configuration and term history are intact."""
    data = tmp_path / "data"
    with cluster_command(tmp_path, data_dir=data, acl_token=TOKEN) as (launcher, ready):
        servers = ready["servers"]
        assert [s["id"] for s in servers] == ["s1", "s2", "s3"]
        assert ready["leader"] in {"s1", "s2", "s3"}
        urls = [f"http://{s['http']}" for s in servers]
        leader = next(s for s in servers if s["id"] == ready["leader"])
        host, port = leader["http"].rsplit(":", 1)

        client = nomad.Nomad(host=host, port=int(port), timeout=5, token=TOKEN)
        config = client.operator.get_configuration()
        assert [(s["ID"], s["Address"], s["Node"], s["Voter"]) for s in config["Servers"]] == [
            (s["id"], s["rpc"], s["node"], True) for s in servers]
        assert [s["Leader"] for s in config["Servers"]] == [
            s["id"] == ready["leader"] for s in servers]
        curl = subprocess.run(
            ["curl", "-s", "-H", f"X-Nomad-Token: {TOKEN}",
             f"http://{servers[0]['http']}/v1/operator/raft/configuration"],
            capture_output=True, check=True, timeout=10)
        assert json.loads(curl.stdout)["Servers"] == config["Servers"]
        denied = subprocess.run(
            ["curl", "-s", f"http://{servers[0]['http']}/v1/operator/raft/configuration"],
            capture_output=True, check=True, timeout=10)
        assert denied.stdout == b"Permission denied"

        items = [(f"k{i}", f"value-{i}".encode()) for i in range(1000)]
        asyncio.run(put_many([f"http://{leader['http']}"], items, token=TOKEN))
        before = {s["id"]: (raft_stats(f"http://{s['http']}", TOKEN),
                            configuration(f"http://{s['http']}", TOKEN)) for s in servers}

        for server in servers:
            os.kill(server["pid"], signal.SIGKILL)
        assert launcher.wait(30) == 1  # every agent is gone

    with cluster_command(tmp_path, data_dir=data, acl_token=TOKEN,
                         base_port=_base_port(servers)) as (launcher, ready):
        wait_until(lambda: caught_up(urls, TOKEN), 30.0, "every server applied everything")
        expected = dict(items)
        for server in ready["servers"]:
            url = f"http://{server['http']}"
            assert asyncio.run(get_many(url, list(expected), token=TOKEN)) == expected
            stats, config = raft_stats(url, TOKEN), configuration(url, TOKEN)
            old_stats, old_config = before[server["id"]]
            assert int(stats["term"]) >= int(old_stats["term"])
            assert config["Index"] == old_config["Index"]
            assert [(s["ID"], s["Address"]) for s in config["Servers"]] == [
                (s["ID"], s["Address"]) for s in old_config["Servers"]]
            assert int(stats["last_log_index"]) >= int(old_stats["commit_index"])
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(30) == 0
    out = (tmp_path / "cluster.out").read_text()
    for sid in ("s1", "s2", "s3"):
        assert f"{sid} exited with code 0" in out  # SIGTERM: a clean stop
        assert f"{sid}: stopped" in out


def _base_port(servers: list[dict[str, Any]]) -> int:
    return int(servers[0]["http"].rsplit(":", 1)[1])


def test_kill_9_of_the_leader_under_write_load_loses_no_acknowledged_write(
        tmp_path: Path) -> None:
    with AgentProcesses(tmp_path) as cluster:
        cluster.start()
        old_leader = cluster.wait_for_leader()
        acknowledged: dict[str, bytes] = {}
        counts = {"after_kill": 0}
        killed = False

        async def load() -> None:
            nonlocal killed
            stop = asyncio.Event()
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=3)) as session:
                async def writer(w: int) -> None:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        key, value = f"w{w}-{n}", f"{w}:{n}".encode()
                        alive = [s.id for s in cluster.plan if s.id not in (
                            {old_leader} if killed else set())]
                        target = cluster.url(alive[n % len(alive)])
                        try:
                            async with session.put(f"{target}/v1/kv/{key}",
                                                   data=value) as response:
                                ok = response.status == 200 and await response.read() == b"true"
                        except (aiohttp.ClientError, TimeoutError):
                            ok = False
                        if ok:
                            acknowledged[key] = value
                            if killed:
                                counts["after_kill"] += 1
                        else:
                            await asyncio.sleep(RETRY_PAUSE)

                writers = [asyncio.ensure_future(writer(w)) for w in range(8)]
                try:
                    await until_async(lambda: len(acknowledged) >= 300, 30.0)
                    cluster.kill(old_leader)  # SIGKILL
                    killed = True
                    await until_async(lambda: counts["after_kill"] >= 300, 45.0)
                finally:
                    stop.set()
                    await asyncio.gather(*writers)

        asyncio.run(load())
        survivors = [sid for sid in cluster.running()]
        new_leader = cluster.wait_for_leader(survivors)
        assert new_leader != old_leader
        urls = [cluster.url(sid) for sid in survivors]
        wait_until(lambda: caught_up(urls), 30.0, "the survivors applied everything")
        for url in urls:
            found = asyncio.run(get_many(url, list(acknowledged)))
            assert found == acknowledged

        cluster.start(old_leader)  # comes back as a follower with everything
        wait_until(lambda: cluster.agreed_leader() == new_leader, 30.0,
                   "the old leader following the new one")
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 30.0,
                   "the old leader caught up")
        assert asyncio.run(get_many(cluster.url(old_leader), list(acknowledged))) == acknowledged


def test_removing_a_live_server_leaves_it_running_and_the_others_undisturbed(
        tmp_path: Path) -> None:
    with AgentProcesses(tmp_path) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        removed = next(s for s in cluster.plan if s.id != leader)
        remaining = [s.id for s in cluster.plan if s.id != removed.id]
        host, port = cluster.spec(leader).http.rsplit(":", 1)
        client = nomad.Nomad(host=host, port=int(port), timeout=5)
        client.operator.delete_peer(removed.rpc)

        def gone_everywhere() -> bool:
            return all(removed.id not in [s["ID"] for s in configuration(cluster.url(sid))
                                          ["Servers"]] for sid in remaining)

        # Every member's committed configuration. (The removed server itself learns that
        # its removal committed only if it acknowledged the entry before the commit: the
        # leader stops replicating to it then, as hashicorp/raft does.)
        wait_until(gone_everywhere, 15.0, "the removal on every remaining server")
        assert [s["ID"] for s in client.operator.get_configuration()["Servers"]] == remaining
        assert cluster.processes[removed.id].poll() is None  # still running
        terms = {sid: cluster.stats(sid)["term"] for sid in remaining}
        writes = iter(range(10**6))

        def undisturbed() -> None:
            assert cluster.processes[removed.id].poll() is None
            assert {sid: cluster.stats(sid)["term"] for sid in remaining} == terms
            assert cluster.agreed_leader(remaining) == leader
            n = next(writes)
            status, body = http("PUT", f"{cluster.url(leader)}/v1/kv/after-{n}", b"x")
            assert (status, body) == (200, b"true")

        observe_for(4.0, undisturbed)


def test_a_server_down_while_the_log_was_compacted_catches_up_by_install_snapshot(
        tmp_path: Path) -> None:
    """The live half of the snapshot check (the simulator's does 10,000 entries): with a
    snapshot every 50 entries and 100 trailing entries kept, a follower down for 400
    writes comes back through InstallSnapshot."""
    extra = ["--rpc-idle-timeout", "2", "--snapshot-threshold", "50", "--trailing-logs", "100"]
    with AgentProcesses(tmp_path, extra=extra) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        lagging = next(s.id for s in cluster.plan if s.id != leader)
        asyncio.run(put_many([cluster.url(leader)], [("before", b"0")], concurrency=1))
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 15.0,
                   "every server caught up")
        down_at = int(cluster.stats(lagging)["last_log_index"])
        cluster.kill(lagging)
        items = [(f"k{i}", b"v%d" % i) for i in range(400)]
        asyncio.run(put_many([cluster.url(leader)], items, concurrency=2))
        assert int(cluster.stats(leader)["last_snapshot_index"]) > down_at + 50
        cluster.start(lagging)
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 30.0,
                   "the lagging server caught up")
        assert f"{lagging}: installed a snapshot" in cluster.log(lagging)
        expected = dict([("before", b"0"), *items])
        assert asyncio.run(get_many(cluster.url(lagging), list(expected))) == expected


def test_a_follower_down_for_thousands_of_writes_catches_up_from_the_trailing_log(
        tmp_path: Path) -> None:
    """hashicorp/raft's TrailingLogs (10,240 by default): compaction keeps the entries
    before the snapshot, so a follower that missed 2,000 writes is sent them, not the
    snapshot, although the leader compacted 40 times meanwhile."""
    extra = ["--rpc-idle-timeout", "2", "--snapshot-threshold", "50"]
    with AgentProcesses(tmp_path, extra=extra) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        lagging = next(s.id for s in cluster.plan if s.id != leader)
        asyncio.run(put_many([cluster.url(leader)], [("before", b"0")], concurrency=1))
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 15.0,
                   "every server caught up")
        down_at = int(cluster.stats(lagging)["last_log_index"])
        cluster.kill(lagging)
        items = [(f"k{i}", b"v%d" % i) for i in range(2000)]
        asyncio.run(put_many([cluster.url(leader)], items, concurrency=16))
        assert int(cluster.stats(leader)["last_snapshot_index"]) > down_at + 50
        cluster.start(lagging)
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 30.0,
                   "the lagging server caught up")
        installed = cluster.log(lagging).count(f"{lagging}: installed a snapshot")
        assert installed == 0
        expected = dict([("before", b"0"), *items])
        assert asyncio.run(get_many(cluster.url(lagging), list(expected))) == expected


@pytest.mark.parametrize("fsync", ["always"])
def test_agent_processes_restart_from_their_data_directories(tmp_path: Path,
                                                             fsync: str) -> None:
    """SIGTERM every agent (a clean stop), start them again: the writes are there."""
    with AgentProcesses(tmp_path, fsync=fsync) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader()
        items = [(f"k{i}", b"%d" % i) for i in range(50)]
        asyncio.run(put_many([cluster.url(leader)], items))
        for spec in cluster.plan:
            cluster.kill(spec.id, signal.SIGTERM)
            assert cluster.processes[spec.id].returncode == 0
        cluster.start()
        cluster.wait_for_leader()
        urls = [cluster.url(s.id) for s in cluster.plan]
        wait_until(lambda: caught_up(urls), 30.0, "every server applied everything")
        for url in urls:
            assert asyncio.run(get_many(url, [k for k, _ in items])) == dict(items)
        assert http_json(f"{urls[0]}/v1/status/peers") == [s.rpc for s in cluster.plan]
