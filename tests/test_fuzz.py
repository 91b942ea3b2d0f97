"""``raftsim fuzz`` (raftsim/check/fuzz.py and its helpers): every bug switch is found and
turned into a scenario file that ``raftsim run`` fails on; a campaign without switches is
clean; a seed always gives the same verdict and trace digest; the schedule a seed
generates, the script it resolves to and ``raftsim run`` of that script behave the same,
record for record.

The 500-seed campaigns are benchmarks (docs/testing.md); here each campaign stops at its
first failing seed, a handful in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from raftsim.check.fuzz import (
    FuzzOptions,
    FuzzUsageError,
    parse_shard,
    play_case,
    reproduce,
    run_campaign,
    run_seed,
)
from raftsim.check.history import KvHistory, KvOp, kv_op_of_request, resolve_unknown
from raftsim.check.linearizability import Event
from raftsim.check.outcome import play_schedule
from raftsim.check.player import SchedulePlayer, scenario_of
from raftsim.check.reproducer import ReductionBudget, _pin_statuses
from raftsim.check.schedule import DISK_NEMESES, NEMESES, generate_case
from raftsim.check.tomlwrite import scenario_toml
from raftsim.cli import main
from raftsim.core.bugs import BUGS
from raftsim.core.messages import Entry
from raftsim.runtime.kv import encode_put
from raftsim.scenario import load_scenario, run_scenario

#: what each switch is caught as (the first violation the campaign meets)
CAUGHT_AS = {
    "commit-prior-term": {"current-term-commit", "leader-completeness",
                          "state-machine-safety", "linearizability"},
    "forget-vote": {"vote-once", "election-safety"},
    "no-log-check": {"leader-completeness", "state-machine-safety", "log-matching",
                     "durability"},
    "config-before-noop": {"single-uncommitted-config", "election-safety",
                           "state-machine-safety"},
    "no-truncate": {"log-matching", "state-machine-safety", "leader-completeness"},
    "stale-read": {"linearizability"},
    # a server that carries on after a failed fsync: it appends (and acknowledges)
    # while its disk may not hold what it says
    "ack-after-failed-fsync": {"fail-stop"},
}


def _fuzz(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["fuzz", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


# ---------------------------------------------------------------------- bug switches

@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_bug_switch_is_found_and_raftsim_run_fails_on_the_reproducer(
        bug: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _fuzz(capsys, "--bug", bug, "--seeds", "60", "--out", str(tmp_path))
    assert code == 1
    assert report["violations"] == 1 and report["errors"] == 0
    assert report["invariant"] in CAUGHT_AS[bug], report
    assert report["bugs"] == [bug]
    path = Path(str(report["reproducer"]))
    assert path == tmp_path / f"seed-{report['seed']}.toml"
    assert report["reproducer_verified"] is True, report["reproducer_check"]
    scenario = load_scenario(path)
    assert scenario.bugs == (bug,)
    assert len(scenario.steps) < 200
    assert main(["run", "--quiet", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {path.stem}" in out


def test_a_campaign_without_bug_switches_is_clean(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _fuzz(capsys, "--seeds", "24", "--start", "100", "--out", str(tmp_path))
    assert code == 0
    assert report["seeds"] == 24 and report["violations"] == 0 and report["errors"] == 0
    assert report["seed"] is None and report["reproducer"] is None
    assert float(report["seeds_per_minute"]) > 0 and float(report["wall_seconds"]) > 0
    assert not any(tmp_path.iterdir())


def test_the_text_report_names_seed_invariant_event_and_reproducer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "--bug", "no-log-check", "--seeds", "20", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    found = re.search(r"VIOLATION at seed (\d+): (\S+)", captured.out)
    assert found is not None and found.group(2) in CAUGHT_AS["no-log-check"]
    seed = found.group(1)
    assert "first violating event: {" in captured.out
    assert f"reproducer: {tmp_path}/seed-{seed}.toml" in captured.out
    assert "raftsim run fails on it" in captured.out
    assert f"replay: raftsim run {tmp_path}/seed-{seed}.toml" in captured.out


# ---------------------------------------------------------------------- determinism

@pytest.mark.parametrize(("seed", "bugs"), [(3, ()), (7, ()), (0, ("no-truncate",))])
def test_the_same_seed_gives_the_same_verdict_and_trace_digest(
        seed: int, bugs: tuple[str, ...]) -> None:
    options = FuzzOptions(bugs=bugs)
    first, second = run_seed(seed, options), run_seed(seed, options)
    assert first.verdict == second.verdict
    assert (first.invariant, first.message, first.t) == (second.invariant, second.message,
                                                         second.t)
    assert first.digest == second.digest and len(first.digest) == 64
    assert run_seed(seed + 1, options).digest != first.digest


def test_a_seed_names_its_schedule_and_every_step_is_a_scenario_step() -> None:
    case = generate_case(11)
    assert case == generate_case(11)
    assert case.steps != generate_case(12).steps
    assert set(case.nemeses) <= set(NEMESES) | set(DISK_NEMESES)
    assert len(case.clients_of) == len(case.steps)
    scenario = scenario_of(case.steps, cluster=case.cluster, seed=11)  # the loader agrees
    assert len(scenario.steps) == len(case.steps)
    times = [step["at"] for step in case.steps]
    assert times == sorted(times) and times[-1] == case.duration
    assert generate_case(11, servers=3, duration=10.0).cluster["servers"] == 3


@pytest.mark.parametrize("seed", [2, 30])  # 30: every kind of disk fault
def test_the_resolved_script_replays_the_run_exactly_and_raftsim_run_agrees(
        tmp_path: Path, seed: int) -> None:
    """The generated schedule (with "leader", bindings and busy clients), the script it
    resolves to, and `raftsim run` of that script as a file: the same trace."""
    case = generate_case(seed)
    run = play_schedule(case.steps, cluster=case.cluster, seed=seed,
                        clients_of=case.clients_of, trace_messages=True)
    script = _pin_statuses(run.played)
    assert all("leader" not in json.dumps(step) for step in script)
    replay = play_schedule(script, cluster=case.cluster, seed=seed, trace_messages=True)
    assert replay.digest == run.digest
    path = tmp_path / "script.toml"
    path.write_text(scenario_toml(title="t", description="", seed=seed, bugs=[],
                                  cluster=case.cluster, steps=script), encoding="utf-8")
    result = run_scenario(load_scenario(path))
    assert result.failure is None
    scenario = scenario_of(script, cluster=case.cluster, seed=seed)
    player = SchedulePlayer(scenario, trace_messages=True)
    player.begin()
    try:
        for step, table in zip(scenario.steps, script, strict=True):
            player.play(step, table)
        player.end()
        recorder = player.cluster.recorder
        assert recorder is not None
        assert recorder.digest() == result.digest
    finally:
        player.close()


def test_the_fuzzer_injects_every_disk_fault_in_about_a_third_of_the_seeds() -> None:
    cases = [generate_case(seed) for seed in range(120)]
    with_disk = [c for c in cases if set(c.nemeses) & set(DISK_NEMESES)]
    assert 0.2 * len(cases) <= len(with_disk) <= 0.5 * len(cases)
    assert all(c.cluster.get("disk") == "crashdisk" for c in with_disk)
    assert all("disk" not in c.cluster for c in cases if c not in with_disk)
    kinds = {key for c in with_disk for step in c.steps for key in step}
    assert {"fail_fsync", "disk_full", "torn_write", "corrupt", "slow_disk"} <= kinds
    for case in with_disk[:5]:  # every step is a scenario step the loader accepts
        scenario_of(case.steps, cluster=case.cluster, seed=case.seed)


def test_workers_and_one_process_report_the_same_lowest_failing_seed() -> None:
    one = run_campaign(FuzzOptions(seeds=8, bugs=("no-truncate",), start=1))
    two = run_campaign(FuzzOptions(seeds=8, bugs=("no-truncate",), start=1, workers=2))
    assert one.first_failure is not None and two.first_failure is not None
    assert one.first_failure.seed == two.first_failure.seed
    assert one.first_failure.digest == two.first_failure.digest
    assert [r.seed for r in one.results] == [r.seed for r in two.results]


def test_a_clean_campaign_over_two_workers_gives_the_same_results() -> None:
    one = run_campaign(FuzzOptions(seeds=4, start=40))
    two = run_campaign(FuzzOptions(seeds=4, start=40, workers=2))
    assert [(r.seed, r.verdict, r.digest) for r in one.results] == \
        [(r.seed, r.verdict, r.digest) for r in two.results]


def test_shards_split_the_seed_range_between_them() -> None:
    assert FuzzOptions(seeds=10, start=5, shard=(2, 3)).seed_list() == [6, 9, 12]
    slices = [FuzzOptions(seeds=10, start=5, shard=(i, 3)).seed_list() for i in (1, 2, 3)]
    assert sorted(s for part in slices for s in part) == list(range(5, 15))
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="I/N"):
            parse_shard(bad)


# ---------------------------------------------------------------------- the command

@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "0/2"], "--shard: expected I/N with 1 <= I <= N"),
    (["--shard", "half"], "--shard: expected I/N"),
    (["--bug", "nope"], "unknown bug switch 'nope'"),
    (["--seeds", "0"], "--seeds: must be at least 1"),
    (["--workers", "0"], "--workers: must be at least 1"),
    (["--duration", "2"], "--duration: must be more than 3 virtual seconds"),
    (["--start", "-1"], "--start: must not be negative"),
    (["--seeds", "many"], "--seeds: expected a whole number"),
])
def test_bad_arguments_exit_2_with_a_clear_message(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fuzz", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_options_are_checked_when_built_in_code_too() -> None:
    with pytest.raises(FuzzUsageError, match="--shard"):
        FuzzOptions(shard=(3, 2))
    with pytest.raises(FuzzUsageError, match="unknown bug switch"):
        FuzzOptions(bugs=("nope",))


def test_list_bugs_prints_every_switch_with_its_sentence(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "--list-bugs"]) == 0
    out = capsys.readouterr().out
    for name, sentence in BUGS.items():
        assert any(line.startswith(name) and line.endswith(sentence)
                   for line in out.splitlines())


def test_a_linearizability_reproducer_pins_the_stale_read(tmp_path: Path) -> None:
    options = FuzzOptions(bugs=("stale-read",), out=tmp_path,
                          reduce=ReductionBudget(runs=60))
    failure = run_campaign(FuzzOptions(seeds=20, bugs=("stale-read",))).first_failure
    assert failure is not None and failure.invariant == "linearizability"
    rep = reproduce(failure, options)
    assert rep.verified, rep.verify_message
    text = rep.path.read_text()
    assert "Pinned: the read of" in text and "a linearizable store could answer" in text
    assert "(in the background)" in rep.verify_message
    # pause is SIGSTOP (a paused leader answers nothing: tests/test_sim_pause.py), so the
    # stale read comes from a leader that cannot hear it was deposed (cut off, CheckQuorum
    # off); the reducer may leave other steps in within its budget
    scenario = load_scenario(rep.path)
    kinds = {step.kind for step in scenario.steps}
    assert kinds & {"isolate", "partition", "cut"}, kinds


# ---------------------------------------------------------------------- the history

def test_requests_map_to_register_operations() -> None:
    assert kv_op_of_request("GET", "/v1/kv/a%2Fb", b"") == KvOp("read", "a/b")
    assert kv_op_of_request("GET", "/v1/kv/a?stale", b"") is None
    assert kv_op_of_request("PUT", "/v1/kv/a", b"1") == KvOp("write", "a", "1")
    assert kv_op_of_request("PUT", "/v1/kv/a?cas=0", b"1") == KvOp("cas", "a", (None, "1"))
    # a CAS on an index: compared with the value that index was read with...
    assert kv_op_of_request("PUT", "/v1/kv/a?cas=7", b"1", {("a", 7): "0"}) == \
        KvOp("cas", "a", ("0", "1"))
    # ...or, when nobody read it, a write that may or may not happen: never dropped
    assert kv_op_of_request("PUT", "/v1/kv/a?cas=7", b"1") == \
        KvOp("write", "a", "1", conditional=True)
    assert kv_op_of_request("PUT", "/v1/kv/a?cas=x", b"1") is None  # refused: 400
    assert kv_op_of_request("DELETE", "/v1/kv/a", b"") == KvOp("delete", "a")
    assert kv_op_of_request("GET", "/v1/status/leader", b"") is None


def test_answers_become_outcomes() -> None:
    history = KvHistory()
    cases = [(KvOp("read", "k"), 200, b"v", ("ok", "v")),
             (KvOp("read", "k"), 404, b"", ("ok", None)),
             (KvOp("read", "k"), 500, b"no leader", ("fail", None)),
             (KvOp("write", "k", "v"), 200, b"true", ("ok", None)),
             (KvOp("write", "k", "v"), 0, b"", ("fail", None)),
             (KvOp("write", "k", "v"), 500, b"timeout", ("info", None)),
             (KvOp("cas", "k", (None, "v")), 200, b"false", ("ok", False)),
             (KvOp("cas", "k", ("u", "v")), 200, b"true", ("ok", True)),
             (KvOp("cas", "k", ("u", "v")), 500, b"timeout", ("info", None)),
             (KvOp("delete", "k"), 500, b"timeout", ("info", None)),
             (KvOp("write", "k", "v", conditional=True), 200, b"true", ("ok", None)),
             (KvOp("write", "k", "v", conditional=True), 200, b"false", ("fail", None)),
             (KvOp("write", "k", "v", conditional=True), 500, b"timeout", ("info", None))]
    for n, (op, status, body, expected) in enumerate(cases):
        history.invoke(f"c{n}", op, float(n))
        history.complete(f"c{n}", status, body, n + 0.5)
        last = history.events[-1]
        assert (last.type, last.value) == expected
    with pytest.raises(ValueError, match="outstanding"):
        history.invoke("c", KvOp("read", "k"), 9.0)
        history.invoke("c", KvOp("read", "k"), 9.0)


def test_unknown_outcomes_are_settled_by_the_committed_log() -> None:
    events = [Event("invoke", "a", "write", "k", "1", 0.0),
              Event("invoke", "b", "write", "k", "2", 0.1),
              Event("info", "a", "write", "k", None, 0.5),
              Event("info", "b", "write", "k", None, 0.6),
              Event("invoke", "c", "read", "k", None, 1.0),
              Event("ok", "c", "read", "k", "1", 1.1)]
    committed = [(Entry(2, 1, data=encode_put("k", b"1")), 0.3)]
    settled = resolve_unknown(events, committed)
    assert [(e.client, e.type, e.time) for e in settled] == [
        ("a", "invoke", 0.0), ("b", "invoke", 0.1), ("a", "ok", 0.3), ("b", "fail", 0.6),
        ("c", "invoke", 1.0), ("c", "ok", 1.1)]


def test_a_committed_cas_that_failed_is_settled_as_not_having_happened() -> None:
    """An unknown-outcome conditional write whose command was committed but did not
    swap (its index was stale) did not happen."""
    events = [Event("invoke", "a", "write", "k", "2", 0.0),
              Event("info", "a", "write", "k", None, 0.5)]
    committed = [(Entry(2, 1, data=encode_put("k", b"1")), 0.1),
                 (Entry(2, 2, data=encode_put("k", b"2", 5)), 0.2)]
    settled = resolve_unknown(events, committed)
    assert [(e.type, e.time) for e in settled] == [("invoke", 0.0), ("fail", 0.5)]


def test_the_fuzz_clients_send_index_cas_and_deletes_and_the_history_keeps_them() -> None:
    """Over a few seeds: CAS on a modify index a client read (in the history as a CAS
    expecting the value read there) and deletes, answered or not."""
    cas_ops, deletes, unknown = 0, 0, 0
    for seed in range(3):
        run = play_case(generate_case(seed))
        paths = [p.step["api"]["path"] for p in run.played
                 if p.skipped is None and "api" in p.step]
        assert all("read-index" not in path for path in paths)
        index_cas = [path for path in paths if "?cas=" in path and not path.endswith("=0")]
        assert index_cas, f"seed {seed} sent no index CAS"
        invokes = [e for e in run.history.events if e.type == "invoke"]
        cas_ops += sum(1 for e in invokes if e.f == "cas" and isinstance(e.value, tuple)
                       and e.value[0] is not None)
        deletes += sum(1 for e in invokes if e.f == "delete")
        unknown += sum(1 for e in run.history.events if e.type == "info")
    assert cas_ops > 0 and deletes > 0 and unknown > 0


def test_a_seed_played_twice_through_play_case_is_identical() -> None:
    case = generate_case(5)
    first, second = play_case(case), play_case(case)
    assert first.digest == second.digest
    assert [p.step for p in first.played] == [p.step for p in second.played]
    assert [e.type for e in first.events] == [e.type for e in second.events]
