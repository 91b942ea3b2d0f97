"""A real network partition: each server in its own network namespace, linked to a
bridge by a veth pair; cutting a server's veth drops every packet to and from it.

Needs root and ``ip`` (iproute2); skipped with the reason otherwise. Everything lives in
private addresses (10.200.N.0/24) on interfaces and namespaces this test creates and
deletes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from raftsim.live.launcher import ServerSpec
from tests.livecluster import (
    RETRY_PAUSE,
    AgentProcesses,
    caught_up,
    get_many,
    until_async,
    wait_until,
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class NetnsLab:
    """``count`` namespaces on one bridge (in this namespace, at .254, so the test can
    reach every server); server k at 10.200.N.k."""

    def __init__(self, count: int) -> None:
        tag = str(os.getpid() % 100000)
        self.subnet = f"10.200.{os.getpid() % 200 + 20}"
        self.bridge = f"rsb{tag}"
        self.namespaces = [f"rs{tag}n{k}" for k in range(1, count + 1)]
        self.host_ends = [f"rs{tag}h{k}" for k in range(1, count + 1)]
        self._created: list[tuple[str, str]] = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._created.append(("link", self.bridge))
            _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for k, (ns, host) in enumerate(zip(self.namespaces, self.host_ends, strict=True),
                                           start=1):
                _ip("netns", "add", ns)
                self._created.append(("netns", ns))
                peer = f"{host[:-1 - len(str(k))]}p{k}"
                _ip("link", "add", host, "type", "veth", "peer", "name", peer)
                self._created.append(("link", host))
                _ip("link", "set", peer, "netns", ns)
                _ip("-n", ns, "link", "set", peer, "name", "eth0")
                _ip("-n", ns, "addr", "add", f"{self.address(k)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("link", "set", host, "master", self.bridge)
                _ip("link", "set", host, "up")
        except BaseException:
            self.close()
            raise

    def address(self, k: int) -> str:
        return f"{self.subnet}.{k}"

    def cut(self, k: int) -> None:
        _ip("link", "set", self.host_ends[k - 1], "down")

    def heal(self, k: int) -> None:
        _ip("link", "set", self.host_ends[k - 1], "up")

    def close(self) -> None:
        for kind, name in reversed(self._created):
            subprocess.run(["ip", kind, "del", name], capture_output=True, timeout=10)
        self._created.clear()


def _namespaces_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"rsprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=10)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    reason = _namespaces_unavailable()
    if reason is not None:
        pytest.skip(reason)
    lab = NetnsLab(3)
    try:
        yield lab
    finally:
        lab.close()


def test_partitioned_leader_is_replaced_and_rejoins_as_follower_losing_nothing(
        lab: NetnsLab, tmp_path: Path) -> None:
    plan = [ServerSpec(f"s{k}", f"s{k}.global", f"{lab.address(k)}:4646",
                       f"{lab.address(k)}:4647", tmp_path / "data" / f"s{k}")
            for k in (1, 2, 3)]
    position = {spec.id: k for k, spec in enumerate(plan, start=1)}
    # private addresses, no TLS: the lab is this machine's own namespaces
    with AgentProcesses(tmp_path, plan=plan,
                        extra=("--rpc-idle-timeout", "2", "--rpc-frame-timeout", "1",
                               "--insecure-rpc"),
                        wrap=lambda spec: ["ip", "netns", "exec",
                                           lab.namespaces[position[spec.id] - 1]]) as cluster:
        cluster.start()
        old_leader = cluster.wait_for_leader()
        majority = [s.id for s in plan if s.id != old_leader]
        acknowledged: dict[str, bytes] = {}
        state = {"cut": False, "after_cut": 0}

        async def load() -> None:
            stop = asyncio.Event()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
                async def writer(w: int) -> None:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        targets = majority if state["cut"] else [s.id for s in plan]
                        url = f"{cluster.url(targets[n % len(targets)])}/v1/kv/p{w}-{n}"
                        value = f"{w}:{n}".encode()
                        try:
                            async with session.put(url, data=value) as response:
                                ok = response.status == 200 and await response.read() == b"true"
                        except (aiohttp.ClientError, TimeoutError):
                            ok = False
                        if ok:
                            acknowledged[url.rsplit("/", 1)[1]] = value
                            if state["cut"]:
                                state["after_cut"] += 1
                        else:
                            await asyncio.sleep(RETRY_PAUSE)

                writers = [asyncio.ensure_future(writer(w)) for w in range(6)]
                try:
                    await until_async(lambda: len(acknowledged) >= 100, 30.0)
                    lab.cut(position[old_leader])
                    state["cut"] = True
                    await until_async(lambda: state["after_cut"] >= 100, 45.0)
                finally:
                    stop.set()
                    await asyncio.gather(*writers)

        asyncio.run(load())
        new_leader = cluster.wait_for_leader(majority)
        assert new_leader != old_leader
        new_term = int(cluster.stats(new_leader)["term"])

        lab.heal(position[old_leader])
        wait_until(lambda: cluster.agreed_leader([s.id for s in plan]) == new_leader, 30.0,
                   "the old leader following the new one")
        stats = cluster.stats(old_leader)
        assert stats["state"] == "Follower"
        assert int(stats["term"]) >= new_term
        urls = [cluster.url(s.id) for s in plan]
        wait_until(lambda: caught_up(urls), 30.0, "every server applied everything")
        for url in urls:
            assert asyncio.run(get_many(url, list(acknowledged))) == acknowledged
        assert f"{old_leader}: term=" in cluster.log(old_leader)

