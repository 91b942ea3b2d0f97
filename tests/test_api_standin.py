"""StandIn: a cluster on a real-time loop in a thread, each server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from raftsim.api.standin import StandIn
from raftsim.sim.cluster import Cluster


def test_every_server_listens_on_its_own_port_and_forwards_to_the_leader() -> None:
    with StandIn(3, seed=3) as standin:
        leader = standin.leader()
        assert len(set(standin.ports.values())) == 3
        for sid in standin.cluster.ids:
            url = standin.url(sid) + "/v1/status/leader"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert json.loads(response.read()) == standin.cluster.addresses[leader]
                assert response.headers["X-Nomad-KnownLeader"] == "true"
        assert standin.wait_until(lambda c: c.leader() == leader, timeout=1.0)
    assert standin.loop.is_closed()


def test_a_cluster_on_a_real_time_loop_has_no_virtual_time() -> None:
    loop = asyncio.new_event_loop()
    cluster = Cluster(3, loop=loop)
    try:
        assert cluster.loop is loop
        with pytest.raises(RuntimeError, match="real-time loop"):
            cluster.run_for(1.0)
        with pytest.raises(RuntimeError, match="real-time loop"):
            cluster.wait_for_leader(1.0)
    finally:
        cluster.close()
    assert loop.is_closed()
