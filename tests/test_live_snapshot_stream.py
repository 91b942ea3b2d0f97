"""Large state between live servers: a streamed InstallSnapshot larger than the old
32 MiB frame limit, and byte-based flow control with 512 KiB values under load.

The 200 MiB version of the catch-up is ``raftsim bench snapshot`` (too slow for the
suite); this one ships 40 MiB, already more than one frame could ever carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp

from raftsim.core.settings import NodeSettings
from raftsim.live.agent import LIVE_SETTINGS
from raftsim.runtime.kv import MAX_VALUE_BYTES
from raftsim.wire import MAX_FRAME_BYTES
from tests.livecluster import (
    AgentProcesses,
    ThreadedCluster,
    caught_up,
    get_many,
    put_many,
    wait_until,
)

#: 80 values of 512 KiB: a 40 MiB snapshot
VALUES = 80


def value_of(n: int) -> bytes:
    return n.to_bytes(4, "big") * (MAX_VALUE_BYTES // 4)


def test_a_follower_40_mib_behind_catches_up_by_a_streamed_snapshot(tmp_path: Path) -> None:
    # no trailing logs: the lagging server must need the snapshot, not the log
    extra = ["--rpc-idle-timeout", "2", "--snapshot-threshold", "16", "--trailing-logs", "0"]
    with AgentProcesses(tmp_path, fsync="never", extra=extra) as cluster:
        lagging = cluster.plan[-1].id
        for spec in cluster.plan[:-1]:
            cluster.start(spec.id)
        leader = cluster.wait_for_leader([s.id for s in cluster.plan[:-1]])
        items = [(f"k{n}", value_of(n)) for n in range(VALUES)]
        asyncio.run(put_many([cluster.url(leader)], items, concurrency=4))
        # The leader writes its snapshot file in a worker thread while it goes on
        # committing, so its latest compaction may still be on its way.
        wait_until(lambda: int(cluster.stats(leader)["last_snapshot_index"]) > VALUES - 16,
                   60.0, "the leader's compaction")
        cluster.start(lagging)
        wait_until(lambda: caught_up([cluster.url(s.id) for s in cluster.plan]), 60.0,
                   "the lagging server caught up")
        assert f"{lagging}: installed a snapshot" in cluster.log(lagging)
        for sid in (leader, lagging):
            assert "over the limit" not in cluster.log(sid)
            assert "bad frame" not in cluster.log(sid)
        got = asyncio.run(get_many(cluster.url(lagging), [k for k, _ in items]))
        assert got == dict(items)


def measured(send: Callable[[str, bytes, object], None],
             largest: list[int]) -> Callable[[str, bytes, object], None]:
    """``send``, noting the largest frame it was given in ``largest[0]``."""

    def send_and_measure(target: str, data: bytes, meta: object = None) -> None:
        largest[0] = max(largest[0], len(data))
        send(target, data, meta)

    return send_and_measure


def test_512_kib_values_under_load_never_overflow_a_frame_or_a_send_buffer(
        tmp_path: Path) -> None:
    """Every write is committed or refused with 429; no frame over the wire's limit (the
    receiver would close the connection), no send dropped for a full buffer."""
    settings = NodeSettings(heartbeat_interval=LIVE_SETTINGS.heartbeat_interval,
                            election_timeout_min=LIVE_SETTINGS.election_timeout_min,
                            election_timeout_max=LIVE_SETTINGS.election_timeout_max,
                            max_uncommitted_bytes=3 * MAX_VALUE_BYTES)
    with ThreadedCluster(tmp_path, snapshot_threshold=32, settings=settings) as cluster:
        largest = [0]
        for agent in cluster.agents.values():
            assert agent.transport is not None
            agent.transport.send = measured(agent.transport.send, largest)  # type: ignore[method-assign]
        leader = cluster.wait_for_leader()
        url = f"http://{cluster.configs[leader].http}"
        answers: dict[str, tuple[int, bytes]] = {}

        async def load() -> None:
            keys = [f"k{n}" for n in range(120)]
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                async def worker() -> None:
                    while keys:
                        key = keys.pop()
                        async with session.put(f"{url}/v1/kv/{key}",
                                               data=value_of(len(keys))) as response:
                            answers[key] = (response.status, await response.read())

                await asyncio.gather(*(worker() for _ in range(24)))

        asyncio.run(load())
        statuses = {status for status, _ in answers.values()}
        assert statuses <= {200, 429}, answers
        refused = [body for status, body in answers.values() if status == 429]
        assert refused, "with 24 writers of 512 KiB the uncommitted limit is reached"
        assert all(b"retry" in body for body in refused)
        committed = sorted(k for k, (status, body) in answers.items() if status == 200)
        assert all(answers[k][1] == b"true" for k in committed)
        urls = [f"http://{c.http}" for c in cluster.configs.values()]
        wait_until(lambda: caught_up(urls), 30.0, "every server caught up")
        for sid in cluster.agents:
            found = asyncio.run(get_many(urls[list(cluster.agents).index(sid)], committed))
            assert all(found[k] is not None for k in committed)
        for agent in cluster.agents.values():
            transport = agent.transport
            assert transport is not None
            assert transport.dropped == 0
        assert 0 < largest[0] <= MAX_FRAME_BYTES
