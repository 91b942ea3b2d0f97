"""Linearizable reads on a server whose state machine lags its commit index: with group
commit a leader applies committed entries in slices, and a read confirmed at an index
waits for the state machine to reach it."""

from __future__ import annotations

import asyncio

from raftsim.api import SimApi
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster

#: entries and their size: enough committed bytes that applying them takes many
#: event-loop turns (a group-commit flush applies about 64 KiB)
BACKLOG_ENTRIES = 400
VALUE = b"v" * 60_000
#: far shorter than applying the backlog takes (a leader applies its own writes from the
#: commands it decoded at submit, so ~2 entries a turn cost little: ~3 ms for the
#: backlog on this machine), far longer than one loop turn
READ_TIMEOUT = 0.0005
#: ``asyncio.sleep`` of this yields for one event-loop turn
ONE_TURN = 0


def test_a_read_that_times_out_waiting_for_the_state_machine_is_500_timed_out() -> None:
    """Real time (a state machine lags only for real work): a single-voter leader
    commits a large backlog at once and a read arrives behind it. The read is confirmed
    at once; applying up to its index takes longer than the request may wait. The
    answer names the timeout (500 ``timed out …``), it is not an internal error."""
    loop = asyncio.new_event_loop()
    cluster = Cluster(1, seed=1, loop=loop, group_commit=True, trace=False)
    api = SimApi(cluster, request_timeout=READ_TIMEOUT)
    server = cluster.servers["s1"]

    async def scenario() -> tuple[int, str]:
        await server.wait_for_leader(5.0)
        outcomes: list[bool | Exception] = []
        drained: asyncio.Future[None] = loop.create_future()

        def done(outcome: bool | Exception) -> None:
            outcomes.append(outcome)
            if len(outcomes) == BACKLOG_ENTRIES:
                drained.set_result(None)

        for n in range(BACKLOG_ENTRIES):
            server.submit(encode_put(f"k{n}", VALUE), done)
        # A flush proposes in slices (backpressure): wait, one event-loop turn at a time,
        # until every write is committed and most still wait to be applied.
        node = server.node
        assert node is not None
        while node.commit_index < node.log.last_index or node.log.last_index < BACKLOG_ENTRIES:
            await asyncio.sleep(ONE_TURN)
        assert server.apply_backlog > BACKLOG_ENTRIES // 2
        response = await api.request("s1", "GET", f"/v1/kv/k{BACKLOG_ENTRIES - 1}")
        await drained  # every write is applied before the cluster closes
        assert outcomes == [True] * BACKLOG_ENTRIES
        return response.status, response.text

    try:
        status, text = cluster.run(scenario())
    finally:
        api.close()
        cluster.close()
    assert status == 500
    assert text.startswith("timed out waiting for the state machine to apply"), text
