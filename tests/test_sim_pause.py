"""Pause is SIGSTOP in the simulated world: a paused server handles nothing -- no HTTP
answers, no timers (its request timers included), no sends -- and on resume it handles
the frames that waited in its sockets, then whatever fell due meanwhile."""

from __future__ import annotations

import asyncio

from raftsim.api import SimApi
from raftsim.core.settings import NodeSettings
from raftsim.scenario.load import parse_scenario
from raftsim.scenario.runner import CLIENT_TIMEOUT, run_scenario
from raftsim.sim.cluster import Cluster
from raftsim.viz.narration import narrate_record

#: long enough for every timer of a server to fall due many times over
PAUSE = 3.0


def _follower(cluster: Cluster, leader: str) -> str:
    return next(sid for sid in cluster.ids if sid != leader)


def test_http_requests_wait_in_the_socket_and_are_answered_after_resume() -> None:
    with Cluster(3, seed=1) as cluster:
        api = SimApi(cluster)
        follower = _follower(cluster, cluster.wait_for_leader())
        cluster.pause(follower)
        asked = cluster.loop.create_task(api.request(follower, "GET", "/v1/kv/a?stale"))
        cluster.run_for(PAUSE)
        assert not asked.done(), "a paused server answered"
        resumed_at = cluster.now
        cluster.resume(follower)
        response = cluster.run(asked)
        assert response.status == 404
        assert cluster.now == resumed_at  # answered at once on resume, not before
        api.close()


def test_a_paused_server_sends_nothing_even_when_clients_write_through_it() -> None:
    """A write sent to a paused follower is not forwarded to the leader (a forward is a
    send) until the follower resumes; then it is, and committed."""
    with Cluster(3, seed=2) as cluster:
        recorder = cluster.recorder
        assert recorder is not None
        api = SimApi(cluster)
        follower = _follower(cluster, cluster.wait_for_leader())
        assert cluster.run(api.request(follower, "PUT", "/v1/kv/k", body=b"v")).status == 200
        cluster.pause(follower)
        paused = len(recorder.records)
        writes = [cluster.loop.create_task(api.request(follower, "PUT", f"/v1/kv/k{n}",
                                                       body=b"v")) for n in range(3)]
        cluster.run_for(PAUSE)
        by_follower = {r["kind"] for r in recorder.records[paused:]
                       if r["server"] == follower}
        # frames still arrive in its sockets (the network records them); it does nothing
        assert by_follower <= {"deliver"}, by_follower
        assert not any(w.done() for w in writes)
        cluster.resume(follower)
        answers = cluster.run(asyncio.gather(*writes))
        assert [a.status for a in answers] == [200, 200, 200]
        api.close()


def test_request_timers_do_not_run_while_paused_and_fire_on_resume_when_due() -> None:
    """The 5 s proposal timeout of a write that cannot commit: paused from 1 s after it
    was sent until 10 s after, it does not fire at 5 s; it fires the moment the server
    resumes, as a SIGSTOPped process's expired timers do after SIGCONT."""
    settings = NodeSettings(check_quorum=False)  # the cut-off leader keeps leading
    with Cluster(3, seed=3, settings=settings) as cluster:
        api = SimApi(cluster, request_timeout=5.0)
        leader = cluster.wait_for_leader()
        cluster.isolate(leader)
        sent_at = cluster.now
        write = cluster.loop.create_task(api.request(leader, "PUT", "/v1/kv/a", body=b"1"))
        cluster.run_for(1.0)
        assert not write.done()
        cluster.pause(leader)
        cluster.run_for(9.0)
        assert not write.done(), "the request timer ran while the server was paused"
        resumed_at = cluster.now
        assert resumed_at - sent_at > 5.0
        cluster.resume(leader)
        response = cluster.run(write)
        assert cluster.now == resumed_at
        assert response.status >= 500 and "timed out" in response.text
        api.close()


def test_the_core_timer_waits_and_buffered_frames_are_handled_on_resume() -> None:
    with Cluster(3, seed=4) as cluster:
        recorder = cluster.recorder
        assert recorder is not None
        api = SimApi(cluster)
        leader = cluster.wait_for_leader()
        follower = _follower(cluster, leader)
        node = cluster.servers[follower].node
        assert node is not None
        cluster.pause(follower)
        before = node.log.last_index
        term = node.term
        cluster.run(api.request(leader, "PUT", "/v1/kv/a", body=b"1"))
        cluster.run_for(PAUSE)  # many election timeouts: the paused follower never stands
        assert (node.log.last_index, node.term) == (before, term)
        cluster.resume(follower)  # the AppendEntries that waited in its socket, at once
        assert node.log.last_index > before
        api.close()


def test_a_scenario_read_of_a_paused_server_is_answered_when_it_resumes() -> None:
    """The same through ``raftsim run``: the background read waits; the answer (and
    its ``api`` record) comes at the resume."""
    scenario = parse_scenario({
        "title": "t", "seed": 1, "cluster": {"servers": 3},
        "step": [
            {"when": {"leader": "any"}, "pause": "follower", "as": "f"},
            {"read": {"key": "a", "via": "$f", "stale": True, "background": True,
                      "status": 404}},
            {"after": PAUSE, "resume": "$f"},
            {"after": 0.5, "say": "done"},
        ]}, "pause.toml")
    result = run_scenario(scenario)
    assert result.passed, result.failure
    resumed = next(r["t"] for r in result.records
                   if r["kind"] == "fault" and r.get("fault") == "resume")
    answered = next(r["t"] for r in result.records if r["kind"] == "api")
    assert answered == resumed


def test_a_scenario_step_waiting_on_a_paused_server_gives_up_after_the_client_timeout(
        ) -> None:
    scenario = parse_scenario({
        "title": "t", "seed": 1, "cluster": {"servers": 3},
        "step": [
            {"when": {"leader": "any"}, "pause": "follower", "as": "f"},
            {"write": {"key": "a", "value": "1", "via": "$f", "status": 0}},
        ]}, "pause.toml")
    result = run_scenario(scenario)
    assert result.passed, result.failure
    said = [r["text"] for r in result.records if r["kind"] == "client"]
    assert said == [f"gave no answer: no answer within {CLIENT_TIMEOUT:g}s"]


def test_the_narration_says_what_a_pause_and_a_resume_mean() -> None:
    pause = narrate_record({"t": 1.0, "server": None, "term": 0, "kind": "fault",
                            "fault": "pause", "target": "s2"})
    resume = narrate_record({"t": 2.0, "server": None, "term": 0, "kind": "fault",
                             "fault": "resume", "target": "s2"})
    assert pause is not None and resume is not None
    assert "SIGSTOP" in pause and "no HTTP answers" in pause and "no timers" in pause
    assert "waits in its sockets" in pause
    assert "SIGCONT" in resume and "timers that fell due" in resume
