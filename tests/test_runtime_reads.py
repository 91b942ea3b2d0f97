"""Linearizable reads on a server whose state machine lags its commit index: with group
commit a leader applies committed entries in slices, and a read confirmed at an index
waits for the state machine to reach it."""

from __future__ import annotations

import asyncio

from raftsim.api import SimApi
from raftsim.runtime.kv import encode_put
from raftsim.sim.cluster import Cluster

#: small writes, so group commit packs thousands into each log entry (64 KiB): applying
#: one such entry takes milliseconds, and a flush applies about one entry, so the whole
#: backlog takes far longer to apply (about half a second here) than the read may wait,
#: and far longer than the few loop turns the read's HTTP request takes to arrive
WRITES = 500_000
#: far shorter than applying the backlog takes, far longer than one loop turn
READ_TIMEOUT = 0.1


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
            if len(outcomes) == WRITES:
                drained.set_result(None)

        for n in range(WRITES):
            server.submit(encode_put(f"k{n % 1000}", b"v%d" % n), done)
        response = await api.request("s1", "GET", f"/v1/kv/k{(WRITES - 1) % 1000}")
        await drained  # every write is applied before the cluster closes
        assert outcomes == [True] * WRITES
        return response.status, response.text

    try:
        status, text = cluster.run(scenario())
    finally:
        api.close()
        cluster.close()
    assert status == 500
    assert text.startswith("timed out"), text
