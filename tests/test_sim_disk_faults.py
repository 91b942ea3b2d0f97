"""Disk faults in the simulated world, as scenario steps: a failed fsync, a full disk, a
torn write, a latent corrupted record and a slow disk. With fail-stop the invariants hold
and the cluster keeps serving with a majority; the ``ack-after-failed-fsync`` bug switch
(a server that ignores a failed save) is caught; bad steps are refused with a message."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from raftsim.scenario import ScenarioError
from raftsim.scenario.load import parse_scenario
from raftsim.scenario.runner import RunResult, run_scenario
from raftsim.sim.trace import Record

CLUSTER = '[cluster]\nservers = 5\ndisk = "crashdisk"\n'


def scenario(steps: str, *, cluster: str = CLUSTER, bugs: str = "[]") -> Any:
    text = f'title = "disk"\nseed = 3\nbugs = {bugs}\n{cluster}\n{steps}'
    return parse_scenario(tomllib.loads(text), "disk.toml")


def run(steps: str, **kwargs: Any) -> RunResult:
    return run_scenario(scenario(steps, **kwargs))


def kinds(result: RunResult, kind: str, server: str | None = None) -> list[Record]:
    return [r for r in result.records
            if r["kind"] == kind and (server is None or r.get("server") == server)]


#: elect, write, fault the follower s?, write more through the others, restart it, and
#: check it caught up with everything
def _fault_then_recover(fault: str) -> str:
    return f"""
[[step]]
expect = {{ leader = "any", eventually = 5 }}
as = "boss"
[[step]]
write = {{ key = "a", value = "1" }}
[[step]]
{fault}
as = "victim"
[[step]]
write = {{ key = "b", value = "2" }}
[[step]]
write = {{ key = "c", value = "3" }}
[[step]]
after = 0.5
[[step]]
restart = "$victim"
[[step]]
expect = {{ kv = {{ a = "1", b = "2", c = "3" }}, logs_match = true, eventually = 5 }}
"""


@pytest.mark.parametrize(("step", "operation", "errno"), [
    ('fail_fsync = "follower"', "fsync", 5),
    ('disk_full = "follower"', "write", 28),
])
def test_a_failed_fsync_or_a_full_disk_stops_the_server_until_it_restarts(
        step: str, operation: str, errno: int) -> None:
    result = run(_fault_then_recover(step))
    assert result.passed, result.failure
    assert not result.violations
    failures = kinds(result, "storage-failure")
    assert len(failures) == 1
    failed = failures[0]
    assert failed["operation"] == operation and failed["errno"] == errno
    victim = failed["server"]
    # fail-stop: nothing from the victim between its failure and its restart
    later = [r for r in result.records if r["t"] > failed["t"]
             and r.get("server") == victim and r["kind"] != "fault"]
    assert later[0]["kind"] == "start"
    assert not [r for r in kinds(result, "send", victim) if failed["t"] < r["t"]
                < later[0]["t"]]


def test_a_torn_write_is_dropped_at_restart_as_a_torn_tail_beyond_the_commit_index(
        ) -> None:
    result = run(_fault_then_recover('torn_write = "follower"'))
    assert result.passed, result.failure
    assert not result.violations
    torn = kinds(result, "storage-failure")
    assert [r["operation"] for r in torn] == ["torn"]
    victim = torn[0]["server"]
    start = [r for r in kinds(result, "start", victim) if r["t"] > torn[0]["t"]][0]
    appended = [r for r in kinds(result, "append", victim) if r["t"] <= torn[0]["t"]]
    # recovery dropped only the torn record (never acknowledged: its save failed), so
    # everything the server acknowledged before is still there
    assert start["last_index"] >= appended[-1]["to"]
    assert not kinds(result, "refused-start")


def test_a_corrupted_committed_record_keeps_the_server_down_and_the_majority_serves(
        ) -> None:
    result = run("""
[[step]]
expect = { leader = "any", eventually = 5 }
[[step]]
write = { key = "a", value = "1" }
[[step]]
after = 0.3
[[step]]
corrupt = "follower"
as = "victim"
[[step]]
write = { key = "b", value = "2" }
[[step]]
crash = "$victim"
[[step]]
after = 0.2
[[step]]
restart = "$victim"
[[step]]
write = { key = "c", value = "3" }
[[step]]
read = { key = "a", value = "1" }
[[step]]
after = 1.0
""")
    assert result.passed, result.failure
    assert not result.violations
    [corrupted] = [r for r in result.records if r.get("fault") == "disk-corrupt"]
    assert corrupted["index"] >= 1
    [refused] = kinds(result, "refused-start")
    assert refused["server"] == corrupted["target"]
    assert "checksum" in refused["error"] and "commit index" in refused["error"]
    # it stays down: no start after the refusal
    assert not [r for r in kinds(result, "start", refused["server"])
                if r["t"] >= refused["t"]]


def test_a_corrupted_record_that_a_running_server_holds_goes_unnoticed_until_restart(
        ) -> None:
    result = run("""
[[step]]
expect = { leader = "any", eventually = 5 }
[[step]]
write = { key = "a", value = "1" }
[[step]]
after = 0.3
[[step]]
corrupt = "leader"
[[step]]
write = { key = "b", value = "2" }
[[step]]
read = { key = "a", value = "1" }
""")
    assert result.passed, result.failure
    assert not result.violations and not kinds(result, "refused-start")
    assert not kinds(result, "storage-failure")


SLOW = """
[[step]]
expect = { leader = "any", eventually = 5 }
as = "boss"
[[step]]
slow_disk = { server = "$boss", seconds = 0.1 }
[[step]]
write = { key = "a", value = "1" }
[[step]]
slow_disk = { server = "$boss", seconds = 0 }
[[step]]
write = { key = "b", value = "2" }
"""


def test_a_slow_disk_delays_what_follows_each_save_and_persists_before_sending() -> None:
    result = run(SLOW)
    assert result.passed, result.failure
    assert not result.violations
    records = result.records
    [slow, fast] = [k for k, r in enumerate(records) if r.get("fault") == "slow-disk"]
    leader = records[slow]["target"]
    appends = [r for r in records[slow:fast] if r["kind"] == "append"
               and r["server"] == leader]
    assert appends
    carried = 0
    for append in appends:
        # every AppendEntries carrying an entry of this save leaves 0.1 s after it
        for send in kinds(result, "send", leader):
            if (send.get("msg") == "AppendEntries" and send["n"]
                    and send["prev"] < append["to"] <= send["prev"] + send["n"]):
                assert send["t"] >= append["t"] + 0.1 - 1e-6, (send, append)
                carried += 1
    assert carried
    commits = [r for r in records[slow:fast] if r["kind"] == "commit"
               and r["server"] == leader and r["index"] >= appends[0]["to"]]
    assert commits and commits[0]["t"] >= appends[0]["t"] + 0.1 - 1e-9
    after = [r for r in records[fast:] if r["kind"] == "commit" and r["server"] == leader]
    assert after and after[0]["t"] - records[fast]["t"] < 0.1  # an instant disk again


def test_disk_fault_runs_are_deterministic() -> None:
    steps = SLOW + _fault_then_recover('torn_write = "follower"').replace(
        'as = "boss"', 'as = "boss2"').replace('as = "victim"', 'as = "v2"').replace(
        "$victim", "$v2")
    assert run(steps).digest == run(steps).digest


def test_the_checker_catches_a_server_that_carries_on_after_a_failed_fsync() -> None:
    steps = _fault_then_recover('fail_fsync = "follower"')
    result = run(steps, bugs='["ack-after-failed-fsync"]')
    assert "fail-stop" in {v.invariant for v in result.violations}
    assert not run(steps).violations


@pytest.mark.parametrize(("cluster", "steps", "message"), [
    ("[cluster]\nservers = 3\n", 'fail_fsync = "s1"',
     'needs a simulated disk that can fail; set disk = "crashdisk"'),
    ('[cluster]\ndisk = "ssd"\n', 'crash = "s1"', "must be one of memory, crashdisk"),
    (CLUSTER, 'corrupt = "s9"', "unknown server 's9'"),
    (CLUSTER, 'torn_write = 3', "must be a string"),
    (CLUSTER, 'slow_disk = "s1"', "must be a table"),
    (CLUSTER, 'slow_disk = { server = "s1" }', "'slow_disk.seconds': is missing"),
    (CLUSTER, 'slow_disk = { server = "s1", seconds = 61 }', "at most 60 seconds"),
    (CLUSTER, 'slow_disk = { server = "s1", seconds = -1 }', "slow_disk.seconds"),
    (CLUSTER, 'slow_disk = { server = "s1", seconds = 1, for = 2 }', "for"),
])
def test_bad_disk_steps_are_refused_with_a_clear_message(
        cluster: str, steps: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario(f"[[step]]\n{steps}\n", cluster=cluster)
    assert message in str(caught.value)


def test_the_disk_fault_example_in_the_docs_runs_as_it_says() -> None:
    text = (Path(__file__).parent.parent / "docs" / "scenarios.md").read_text()
    start = text.index('```toml\n[cluster]\nservers = 5\ndisk = "crashdisk"')
    body = text[start + len("```toml\n"):text.index("```", start + 8)]
    result = run_scenario(parse_scenario(tomllib.loads(f'title = "doc"\n{body}'),
                                         "doc.toml"))
    assert result.passed, result.failure
    assert not result.violations
    assert [r["operation"] for r in kinds(result, "storage-failure")] == ["fsync"]
    [refused] = kinds(result, "refused-start")
    [corrupted] = [r for r in result.records if r.get("fault") == "disk-corrupt"]
    assert refused["server"] == corrupted["target"] and corrupted["index"] > 1
