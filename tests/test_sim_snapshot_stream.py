"""A follower 200 MiB of KV state behind catches up by a streamed InstallSnapshot, in the
simulated world (virtual time), with no frame over the wire's limit."""

from __future__ import annotations

import asyncio

from raftsim.runtime.kv import MAX_VALUE_BYTES, encode_put
from raftsim.sim.cluster import Cluster
from raftsim.wire import MAX_FRAME_BYTES

#: 400 values of 512 KiB: 200 MiB of state
VALUES = 400
#: writes proposed at once: within the leader's uncommitted-bytes limit (64 MiB)
WAVE = 50


def test_a_follower_200_mib_behind_catches_up_by_a_streamed_snapshot() -> None:
    with Cluster(3, seed=7, snapshot_threshold=64, trace_messages=False) as cluster:
        largest = [0]

        def measure(sid: str) -> None:
            """Record the size of every frame ``sid`` sends from now on (until it is
            restarted: a restart gives it a new transport)."""
            transport = cluster.servers[sid].transport
            send = transport.send

            def measured_send(target: str, data: bytes, meta: object = None) -> None:
                largest[0] = max(largest[0], len(data))
                send(target, data, meta)

            transport.send = measured_send  # type: ignore[method-assign]

        for sid in cluster.ids:
            measure(sid)
        leader = cluster.wait_for_leader()
        lagging = next(sid for sid in cluster.ids if sid != leader)
        cluster.crash(lagging)
        server = cluster.servers[leader]
        value = bytes(MAX_VALUE_BYTES)

        async def wave(first: int) -> list[bool]:
            return await asyncio.gather(*(
                server.propose(encode_put(f"k{n}", value[:-4] + n.to_bytes(4, "big")),
                               timeout=60.0)
                for n in range(first, min(first + WAVE, VALUES))))

        for first in range(0, VALUES, WAVE):
            assert all(cluster.run(wave(first)))
        node = server.node
        assert node is not None and node.snapshot is not None
        assert len(node.snapshot.data) > 190 * 1024 * 1024  # the rest is in the log
        cluster.restart(lagging)
        measure(lagging)
        caught_up = cluster.run_until(
            lambda: cluster.servers[lagging].kv.applied_index == node.commit_index, 120.0)
        assert caught_up, "the lagging server never caught up"
        behind = cluster.servers[lagging]
        assert len(behind.kv.items) == VALUES
        assert behind.kv.digest() == server.kv.digest()
        # the leader's frames (values of MAX_VALUE_BYTES) were measured; none too big
        assert MAX_VALUE_BYTES < largest[0] <= MAX_FRAME_BYTES
        assert cluster.recorder is not None
        records = cluster.recorder.records
        assert not [r for r in records if r.get("kind") == "bad-frame"]
        installed = [r for r in records
                     if r.get("kind") == "snapshot-installed" and r.get("server") == lagging]
        assert installed
