"""The runtime's handles on the core's direct inputs (heartbeat now, report a peer
unreachable, cancel a transfer), in a simulated cluster."""

from __future__ import annotations

import pytest

from raftsim.core.node import ReplicationState
from raftsim.runtime.errors import RequestTimeout
from raftsim.runtime.kv import encode_delete
from raftsim.sim.cluster import Cluster


def test_cancel_transfer_answers_the_waiting_request_and_takes_writes_again() -> None:
    with Cluster(3, seed=2) as cluster:
        leader = cluster.wait_for_leader()
        server = cluster.servers[leader]
        down = next(s for s in cluster.ids if s != leader)
        cluster.crash(down)
        waiting = cluster.loop.create_task(server.transfer_leadership(down))
        cluster.run_for(0.01)
        server.cancel_transfer()
        cluster.run_for(0.001)
        assert waiting.done()
        with pytest.raises(RequestTimeout, match=f"transfer to {down} did not complete"):
            waiting.result()
        assert cluster.run(server.propose(encode_delete("k"))) is True


def test_heartbeat_sends_a_round_now() -> None:
    with Cluster(3, seed=3) as cluster:
        leader = cluster.wait_for_leader()
        recorder = cluster.recorder
        assert recorder is not None
        before = len(recorder.records)
        cluster.servers[leader].heartbeat()
        sent = [r for r in recorder.records[before:]
                if r.get("kind") == "send" and r.get("server") == leader]
        assert len(sent) == 2


def test_report_unreachable_sets_the_peer_back_to_probing() -> None:
    with Cluster(3, seed=4) as cluster:
        leader = cluster.wait_for_leader()
        cluster.run_for(0.2)
        server = cluster.servers[leader]
        peer = next(s for s in cluster.ids if s != leader)
        node = server.node
        assert node is not None
        assert node.progress[peer].state is ReplicationState.REPLICATE
        server.report_unreachable(peer)
        assert node.progress[peer].state is ReplicationState.PROBE
        cluster.run_for(0.2)
        assert node.progress[peer].state is ReplicationState.REPLICATE
