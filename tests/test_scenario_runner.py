"""Playing scenarios: timing, references, requests, expectations, verdicts and outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from raftsim.scenario import load_scenario, run_scenario
from raftsim.scenario.command import RunOptions, run_command
from raftsim.scenario.golden import golden_path, read_golden
from raftsim.scenario.runner import json_mismatch
from raftsim.sim.trace import read_jsonl

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

FIRST_LEADER = """
title = "t"
seed = 1
[cluster]
servers = 5
[[step]]
when = {leader = "any"}
within = 5
"""


def _write(tmp_path: Path, text: str, name: str = "case") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(*files: Path, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_command(RunOptions(files=[str(f) for f in files], **options), out, err)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------- verdicts

def test_a_wrong_expectation_fails_naming_step_expected_actual_and_time(
        tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + '[[step]]\nexpect = {leader = "s2"}\n', "wrong")
    code, out, err = _run(path)
    assert code == 1
    assert err == ""
    lines = out.splitlines()
    assert "    0.227s    --  expectation FAILED: s2 leads: leader: expected s2, actual s1" \
        in lines
    assert lines[-2:] == [
        "FAIL wrong: step 2 (expect) at t=0.227s: leader: expected s2, actual s1",
        "1 scenario: 0 passed, 1 failed (wrong)",
    ]


def test_a_failure_stops_the_run_and_lists_every_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
expect = {term = 7, kv = {x = "1"}, on = ["s1", "s2"]}
[[step]]
say = "never said"
""")
    result = run_scenario(load_scenario(path))
    assert not result.passed
    assert result.failure is not None
    assert (result.failure.step, result.failure.kind) == (2, "expect")
    assert result.failure.message == (
        "term: expected 7 on s1, s2, actual s1=2, s2=2; "
        "kv.x: expected '1' on s1, s2, actual s1=(missing), s2=(missing)")
    assert result.steps_run == 1
    assert not any(r["kind"] == "say" for r in result.records)


def test_eventually_waits_for_the_condition_then_reports_the_actual_value(
        tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
crash = "leader"
[[step]]
expect = {leader = "any", eventually = 5}
[[step]]
expect = {leader = "none", eventually = 0.5}
""")
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert result.failure.step == 4
    assert result.failure.message.startswith("leader: expected none, actual s")
    # waited the whole half second before failing
    expects = [r for r in result.records if r["kind"] == "expect"]
    assert expects[0]["ok"] and not expects[1]["ok"]
    assert expects[1]["t"] == pytest.approx(expects[0]["t"] + 0.5, abs=1e-6)


def test_when_fires_in_the_instant_the_condition_holds(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + '[[step]]\nsay = "now"\n')
    result = run_scenario(load_scenario(path))
    became = next(r for r in result.records if r["kind"] == "role" and r["role"] == "leader")
    said = next(r for r in result.records if r["kind"] == "say")
    assert said["t"] == became["t"]
    # before any AppendEntries of the new leader arrived anywhere
    after = result.records[result.records.index(became):result.records.index(said)]
    assert not any(r["kind"] == "deliver" for r in after)


def test_a_step_due_in_the_past_fails(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + '[[step]]\nat = 0.1\nsay = "late"\n')
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert str(result.failure) == (
        "step 2 (say) at t=0.227s: it is due at t=0.1s (at = 0.1), but the steps before "
        "it ran until t=0.227s; give it a later 'at', or use 'after'")


def test_when_that_never_holds(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
when = {leader = "s5"}
within = 1.5
say = "never"
""")
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert str(result.failure) == (
        "step 2 (say) at t=1.727s: waited 1.5s for 'when' (s5 leads) but it did not hold: "
        "leader: expected s5, actual s1")


def test_acting_on_a_role_nobody_has_fails(tmp_path: Path) -> None:
    path = _write(tmp_path, 'title = "t"\n[[step]]\ncrash = "leader"\n')
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert str(result.failure) == "step 1 (crash) at t=0.000s: there is no leader at the moment"


@pytest.mark.parametrize(("steps", "message"), [
    ('restart = "s2"', "cannot restart s2: it is running (crash it first)"),
    ('resume = "s2"', "cannot resume s2: it is not paused"),
])
def test_impossible_faults_fail(tmp_path: Path, steps: str, message: str) -> None:
    result = run_scenario(load_scenario(_write(tmp_path, f'title = "t"\n[[step]]\n{steps}\n')))
    assert result.failure is not None
    assert result.failure.message == message


# ---------------------------------------------------------------------- references

def test_as_binds_before_the_action_except_for_expect(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
as = "first"
say = "$first leads; $$5 for a coffee"
[[step]]
crash = "follower"
as = "gone"
[[step]]
say = "$gone crashed"
[[step]]
expect = {leader = "$first", eventually = 1}
as = "still"
[[step]]
say = "$still still leads"
[[step]]
write = {key = "who", value = "$still"}
[[step]]
expect = {kv = {who = "$first"}, on = ["$first"]}
""")
    result = run_scenario(load_scenario(path))
    assert result.passed, result.failure
    said = [r["text"] for r in result.records if r["kind"] == "say"]
    assert said == ["s1 leads; $5 for a coffee", "s2 crashed", "s1 still leads"]


def test_partition_resolves_references_when_it_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
as = "old"
[[step]]
partition = [["leader", "s2"], ["s3", "s4", "s5"]]
[[step]]
when = {leader = "any", leader_not = "$old"}
within = 3
[[step]]
expect = {on = ["s3", "s4", "s5"], term_at_least = 3}
""")
    result = run_scenario(load_scenario(path))
    assert result.passed, result.failure
    fault = next(r for r in result.records if r["kind"] == "fault"
                 and r["fault"] == "partition")
    assert fault["groups"] == [["s1", "s2"], ["s3", "s4", "s5"]]


# ---------------------------------------------------------------------- requests

def test_requests_go_through_the_api_and_their_answers_are_judged(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
write = {key = "k", value = "v", via = "s3"}
[[step]]
read = {key = "k", via = "s4", value = "v"}
[[step]]
read = {key = "nope", via = "s4", status = 404}
[[step]]
api = {server = "s2", path = "/v1/agent/self", json = {stats = {raft = {state = "Follower"}}}}
[[step]]
crash = "s5"
[[step]]
api = {server = "s5", path = "/v1/agent/self", status = 0}
[[step]]
read = {key = "k", via = "s2", value = "w"}
""")
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert str(result.failure) == "step 8 (read) at t=0.281s: value: expected 'w', actual 'v'"
    api = [(r["server"], r["method"], r["path"], r["status"]) for r in result.records
           if r["kind"] == "api"]
    assert api == [("s3", "PUT", "/v1/kv/k", 200), ("s4", "GET", "/v1/kv/k", 200),
                   ("s4", "GET", "/v1/kv/nope", 404), ("s2", "GET", "/v1/agent/self", 200),
                   ("s5", "GET", "/v1/agent/self", 0), ("s2", "GET", "/v1/kv/k", 200)]
    client = [r["text"] for r in result.records if r["kind"] == "client"]
    assert client[:2] == ["answered 200: true", "answered 200: v"]
    assert "refused the connection: it is not running" in client


def test_a_wrong_status_names_what_came_back(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
remove = {server = "s5", via = "s2", status = 500}
""")
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert result.failure.message == "status: expected 500, actual 200"
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
remove = {server = "s5", by = "address", text = "nothing"}
""")
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert result.failure.message == "text: expected 'nothing', actual ''"
    assert any(r["kind"] == "api" and r["path"] == "/v1/operator/raft/peer?address="
               "127.0.0.5%3A4647" for r in result.records)


def test_background_requests_are_judged_when_they_answer(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
api = {server = "s2", path = "/v1/no/such/thing", background = true}
[[step]]
say = "the request is on its way"
""")
    result = run_scenario(load_scenario(path))
    assert result.failure is not None
    assert (result.failure.step, result.failure.kind) == (2, "api")
    assert result.failure.message == "(in the background) status: expected 200, actual 404 " \
                                     "(404 page not found)"


def test_add_starts_the_new_server(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[cluster]
""".replace("[cluster]\n", "") + """
[[step]]
add = {server = "s6", voter = false}
as = "new"
[[step]]
expect = {on = ["$new"], commit_at_least = 3, nonvoters = ["s6"], eventually = 1}
""")
    scenario = load_scenario(path)
    assert scenario.all_servers == ("s1", "s2", "s3", "s4", "s5", "s6")
    result = run_scenario(scenario)
    assert result.passed, result.failure
    assert result.servers == ["s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.mark.parametrize(("expected", "actual", "problem"), [
    ({"a": 1}, {"a": 1, "b": 2}, None),
    ({"a": {"b": [1, {"c": True}]}}, {"a": {"b": [1, {"c": True, "d": 0}]}, "x": 0}, None),
    ({"a": 1}, {"b": 1}, "json.a: expected 1, actual (missing)"),
    ({"a": [1, 2]}, {"a": [1]}, "json.a: expected 2 elements, actual 1: [1]"),
    ([{"ID": "s1"}, {"ID": "s2"}], [{"ID": "s1"}, {"ID": "s3"}],
     'json[1].ID: expected "s2", actual "s3"'),
    ({"a": True}, {"a": 1}, "json.a: expected true, actual 1"),
    ({"a": 1}, {"a": 1.0}, None),
    ({"a": {}}, {"a": []}, "json.a: expected an object, actual []"),
    ("x", "x", None),
])
def test_json_partial_match(expected: Any, actual: Any, problem: str | None) -> None:
    assert json_mismatch(expected, actual) == problem


# ---------------------------------------------------------------------- determinism

def test_the_same_file_twice_gives_the_same_trace() -> None:
    scenario = load_scenario(SCENARIOS / "minority-partition.toml")
    first, second = run_scenario(scenario), run_scenario(scenario)
    assert first.passed and second.passed
    assert first.digest == second.digest
    assert first.records == second.records
    other = run_scenario(scenario, seed=scenario.seed + 1)
    assert other.digest != first.digest


def test_figure_8_fails_with_the_commit_rule_switched_off() -> None:
    scenario = load_scenario(SCENARIOS / "figure-8.toml")
    result = run_scenario(scenario, bugs=("commit-prior-term",))
    assert result.failure is not None
    # the invariant checker (if any) notices during step 19's wait, else step 20 does
    assert result.failure.step in (19, 20)
    assert ("commit_below: expected < 3 on s1, s2, s3, actual s1=3" in result.failure.message
            or "safety invariant" in result.failure.message)


# ---------------------------------------------------------------------- invariants

def test_every_run_is_watched_by_the_invariant_checker() -> None:
    """The checker is part of every run (no optional import): with the commit rule
    switched off, figure-8 fails on the broken invariant, named before the step that
    was running when it broke."""
    result = run_scenario(load_scenario(SCENARIOS / "figure-8.toml"),
                          bugs=("commit-prior-term",))
    assert result.failure is not None
    assert result.failure.message.startswith("safety invariant 'current-term-commit' broke")
    assert [v.invariant for v in result.violations][:1] == ["current-term-commit"]


# ---------------------------------------------------------------------- the command

def test_narration_tells_the_story(tmp_path: Path) -> None:
    code, out, err = _run(SCENARIOS / "first-election.toml")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"== {SCENARIOS / 'first-election.toml'}: First election (seed 1)"
    text = "\n".join(lines)
    for sentence in ("s1  heard from no leader for an election timeout and starts an election",
                     "s3  voted for s1 in term 2",
                     "s1  became LEADER of term 2",
                     "s1  committed everything up to index 2",
                     "s2  API GET /v1/status/leader -> 200",
                     "--  expectation held: s1 leads; role is leader on s1",
                     "Raft keeps several servers in agreement"):
        assert sentence in text
    assert lines[-2].startswith("PASS first-election: 8 checks held (5 expect, ")
    assert lines[-1] == "1 scenario: 1 passed"
    assert "AppendEntries" not in text  # message traffic is for the diagram, not the story


def test_quiet_prints_only_verdicts(tmp_path: Path) -> None:
    code, out, _ = _run(SCENARIOS / "first-election.toml", SCENARIOS / "split-vote.toml",
                        quiet=True)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("PASS first-election: ")
    assert lines[1].startswith("PASS split-vote: ")
    assert lines[2] == "2 scenarios: 2 passed"


def test_trace_and_html_files(tmp_path: Path) -> None:
    trace, page = tmp_path / "t.jsonl", tmp_path / "t.html"
    code, out, _ = _run(SCENARIOS / "split-vote.toml", quiet=True, trace=str(trace),
                        html=str(page))
    assert code == 0
    records = read_jsonl(trace)
    result = run_scenario(load_scenario(SCENARIOS / "split-vote.toml"))
    assert records == json.loads(json.dumps(result.records))
    html = page.read_text(encoding="utf-8")
    assert "<title>A split vote, resolved by randomized timeouts" in html
    assert result.digest in html
    assert f"trace written to {trace}" in out and f"timeline written to {page}" in out


def test_several_files_write_into_directories(tmp_path: Path) -> None:
    traces, pages = tmp_path / "traces", tmp_path / "pages"
    code, _, _ = _run(SCENARIOS / "first-election.toml", SCENARIOS / "split-vote.toml",
                      quiet=True, trace=str(traces), html=str(pages))
    assert code == 0
    assert sorted(p.name for p in traces.iterdir()) == ["first-election.jsonl",
                                                       "split-vote.jsonl"]
    assert sorted(p.name for p in pages.iterdir()) == ["first-election.html",
                                                      "split-vote.html"]


def test_golden_check_and_rewrite(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER, "gold")
    code, out, _ = _run(path, quiet=True, check_golden=True)
    assert code == 1
    assert out.splitlines()[:2] == [
        out.splitlines()[0].replace("PASS", "FAIL", 1),
        f"  golden: {golden_path(path)} does not exist; create it with raftsim run "
        f"--rewrite-golden {path}"]
    assert out.splitlines()[0].startswith("FAIL gold: ")
    code, out, _ = _run(path, quiet=True, rewrite_golden=True)
    assert code == 0
    golden = read_golden(golden_path(path))
    assert golden is not None
    assert f"golden rewritten: {golden_path(path)} = {golden.short()}" in out
    code, out, _ = _run(path, quiet=True, check_golden=True)
    assert code == 0 and f"golden digest matches: {golden.short()}" in out
    # any change in behaviour changes the digest
    path.write_text(FIRST_LEADER + '[[step]]\nsay = "one more line"\n', encoding="utf-8")
    code, out, _ = _run(path, quiet=True, check_golden=True)
    assert code == 1
    assert f"golden digest differs: {golden_path(path)} has {golden.short()}, this run made" \
        in out
    # a failing run never becomes the reference
    path.write_text(FIRST_LEADER + '[[step]]\nexpect = {leader = "none"}\n', encoding="utf-8")
    code, out, _ = _run(path, quiet=True, rewrite_golden=True)
    assert code == 1
    assert f"golden not rewritten: a failing run is no reference ({golden_path(path)} is " \
           "unchanged)" in out
    assert read_golden(golden_path(path)) == golden


# ---------------------------------------------------------------------- issue 14's language

def _result(tmp_path: Path, steps: str, name: str = "lang") -> Any:
    return run_scenario(load_scenario(_write(tmp_path, FIRST_LEADER + steps, name)))


def test_sets_and_as_tables_name_servers_by_role(tmp_path: Path) -> None:
    # s1 leads with seed 1: "followers" is s2, the next follower after it s3
    result = _result(tmp_path, """
[[step]]
as = {old = "leader", buddy = "followers", other = "followers except $buddy"}
say = "$old $buddy $other"
[[step]]
partition = [["$old", "$buddy"], ["servers except $old, $buddy"]]
[[step]]
expect = {on = ["voters except $old, $buddy"], role = "follower"}
""")
    assert result.passed, str(result.failure)
    assert [r["text"] for r in result.records if r["kind"] == "say"] == ["s1 s2 s3"]
    partition = [r for r in result.records if r.get("fault") == "partition"]
    assert partition[0]["groups"] == [["s1", "s2"], ["s3", "s4", "s5"]]
    expects = [r["text"] for r in result.records if r["kind"] == "expect"]
    assert expects == ["role is follower on s3, s4, s5"]


def test_a_kept_value_is_compared_later(tmp_path: Path) -> None:
    steps = """
[[step]]
expect = {on = ["s1"], commit_at_least = 2, eventually = 0.5}
[[step]]
api = {server = "s1", path = "/v1/agent/self", keep = {before = "stats.raft.commit_index"}}
[[step]]
write = {key = "x", value = "1"}
[[step]]
say = "commit index was $before"
[[step]]
api = {server = "s1", path = "/v1/agent/self", compare = {"stats.raft.commit_index" = "%s"}}
[[step]]
expect = {on = ["s1"], commit_at_least = "$before"}
"""
    grew = _result(tmp_path, steps % "> $before", "grew")
    assert grew.passed, str(grew.failure)
    assert "commit index was 2" in [r["text"] for r in grew.records if r["kind"] == "say"]
    same = _result(tmp_path, steps % "== $before", "same")
    assert same.failure is not None
    assert same.failure.step == 6
    assert same.failure.message == ('compare.stats.raft.commit_index: expected == $before '
                                    '("2"), actual "3"')


def test_a_status_set_accepts_any_of_its_statuses(tmp_path: Path) -> None:
    ok = _result(tmp_path, '[[step]]\nwrite = {key = "x", value = "1", status = [500, 200]}\n',
                 "either")
    assert ok.passed, str(ok.failure)
    bad = _result(tmp_path, '[[step]]\nwrite = {key = "x", value = "1", status = [500, 404]}\n',
                  "neither")
    assert bad.failure is not None
    assert bad.failure.message == "status: expected one of 500, 404, actual 200 (true)"


def test_entry_checks_the_content(tmp_path: Path) -> None:
    steps = """
[[step]]
write = {key = "x", value = "1"}
[[step]]
expect = {entry = {index = 2, kind = "noop"}, eventually = 0.5}
[[step]]
expect = {entry = {index = 3, term = 2, key = "x", value = "%s"}, eventually = 0.5}
"""
    right = _result(tmp_path, steps % "1", "right")
    assert right.passed, str(right.failure)
    wrong = _result(tmp_path, steps % "2", "wrong")
    assert wrong.failure is not None
    assert wrong.failure.message.startswith(
        "entry: expected an entry (term 2 command 'x' = '2') at index 3 on s1, s2, s3, s4, "
        "s5, actual at index 3: s1=term 2 command 'x' = '1', ")


def test_the_trace_has_whole_answer_bodies(tmp_path: Path) -> None:
    result = _result(tmp_path, '[[step]]\napi = {server = "s2", path = "/v1/agent/self"}\n')
    assert result.passed, str(result.failure)
    answers = [r["text"] for r in result.records if r["kind"] == "client"]
    assert len(answers) == 1 and len(answers[0]) > 600  # not cut at 160 characters
    body = json.loads(answers[0].removeprefix("answered 200: "))
    assert body["stats"]["raft"]["state"] == "Follower"


def test_the_verdict_counts_every_check(tmp_path: Path) -> None:
    path = _write(tmp_path, FIRST_LEADER + """
[[step]]
write = {key = "x", value = "1"}
[[step]]
when = {kv = {x = "1"}}
[[step]]
read = {key = "x", value = "1"}
[[step]]
expect = {leader = "s1"}
""", "counted")
    result = run_scenario(load_scenario(path))
    # the first 'when', the second, two answers, one expect
    assert (result.checks, result.expectations) == (5, 1)
    code, out, _ = _run(path, quiet=True)
    assert code == 0
    assert out.splitlines()[0].startswith(
        "PASS counted: 5 checks held (1 expect, the rest 'when' conditions and answers)")
