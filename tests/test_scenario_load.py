"""Scenario files: what the loader accepts, and the exact words it uses to refuse the rest.

Every refusal names the file, the step (1-based) and the key, and says what is allowed;
``raftsim run`` prints it and exits 2 without running anything.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftsim.core.bugs import BUGS
from raftsim.scenario import ScenarioError, load_scenario
from raftsim.scenario.command import RunOptions, run_command
from raftsim.scenario.load import ACTION_KEYS, CONDITION_KEYS
from raftsim.scenario.model import Condition, Cut, Expect, Partition, Request, ServerFault

ACTIONS = ", ".join(ACTION_KEYS)
CONDITIONS = ", ".join(CONDITION_KEYS)
SELECTOR_HINT = ('"leader", "follower", a set such as "voters except $old" (from voters, '
                 'followers, servers) or a $name bound by an earlier step\'s \'as\'')

# (id, file text, the error after "<path>: ")
INVALID = [
    ("unknown top-level key",
     'title = "t"\ntitel = "x"\n[[step]]\nsay = "hi"\n',
     "key 'titel': unknown key; allowed: title, description, seed, bugs, cluster, step"),
    ("unknown step key",
     'title = "t"\n[[step]]\nsay = "hi"\ndelay = 1\n',
     f"step 1: key 'delay': unknown step key; a step has one action key ({ACTIONS}) and "
     "optionally at, after, when, within, as"),
    ("unknown step kind",
     'title = "t"\n[[step]]\nsay = "hi"\n[[step]]\nexplode = "s1"\n',
     f"step 2: key 'explode': unknown step key; a step has one action key ({ACTIONS}) and "
     "optionally at, after, when, within, as"),
    ("wrong type",
     'title = "t"\n[[step]]\ncrash = 5\n',
     "step 1: key 'crash': must be a string, got the integer 5"),
    ("wrong type in a table",
     'title = "t"\n[[step]]\nwrite = {key = "x", value = 1}\n',
     "step 1: key 'write.value': must be a string, got the integer 1"),
    ("unknown server",
     'title = "t"\n[[step]]\ncrash = "s9"\n',
     "step 1: key 'crash': unknown server 's9'; use one of s1, s2, s3, s4, s5, "
     f"{SELECTOR_HINT}"),
    ("unknown server in a partition",
     'title = "t"\n[cluster]\nservers = 3\n[[step]]\npartition = [["s1"], ["s2", "s4"]]\n',
     "step 1: key 'partition[1][1]': unknown server 's4'; use one of s1, s2, s3, "
     f"{SELECTOR_HINT}"),
    ("time going backwards",
     'title = "t"\n[[step]]\nat = 2.0\nsay = "a"\n[[step]]\nsay = "b"\n'
     '[[step]]\nat = 1.5\nsay = "c"\n',
     "step 3: key 'at': time cannot go backwards: at = 1.5 is earlier than t=2, which the "
     "steps before step 3 reach at the soonest (use a later 'at', or 'after')"),
    ("time going backwards after a delay",
     'title = "t"\n[[step]]\nat = 1\nsay = "a"\n[[step]]\nafter = 0.5\nsay = "b"\n'
     '[[step]]\nat = 1.2\nsay = "c"\n',
     "step 3: key 'at': time cannot go backwards: at = 1.2 is earlier than t=1.5, which "
     "the steps before step 3 reach at the soonest (use a later 'at', or 'after')"),
    ("two action keys in one step",
     'title = "t"\n[[step]]\ncrash = "s1"\nsay = "boom"\n',
     "step 1: key 'say': a step has exactly one action, but this one has both 'crash' and "
     "'say'; split it into two steps"),
    ("two timing keys in one step",
     'title = "t"\n[[step]]\nat = 1\nafter = 2\nsay = "x"\n',
     "step 1: key 'after': a step runs at one time: use one of 'at', 'after' or 'when', "
     "not both 'at' and 'after'"),
    ("within without when",
     'title = "t"\n[[step]]\nwithin = 2\nsay = "x"\n',
     "step 1: key 'within': only goes with 'when' (how long to wait for the condition)"),
    ("an empty step",
     'title = "t"\n[[step]]\n',
     f"step 1: is empty: give it one action ({ACTIONS}), or a time to wait for (at, "
     "after, or when)"),
    ("unknown bug name",
     'title = "t"\nbugs = ["commit-prior-term", "nope"]\n[[step]]\nsay = "hi"\n',
     f"key 'bugs[1]': unknown bug switch 'nope'; known switches: {', '.join(sorted(BUGS))}"),
    ("negative latency",
     'title = "t"\n[cluster]\nlatency = [-0.001, 0.005]\n[[step]]\nsay = "hi"\n',
     "key 'cluster.latency[0]': must not be negative, got -0.001"),
    ("negative latency in a step",
     'title = "t"\n[[step]]\nlatency = [0.01, -1]\n',
     "step 1: key 'latency[1]': must not be negative, got -1"),
    ("latency the wrong way round",
     'title = "t"\n[cluster]\nlatency = [0.5, 0.1]\n[[step]]\nsay = "hi"\n',
     "key 'cluster.latency': must be [min, max] with min <= max, got [0.5, 0.1]"),
    ("loss above 1",
     'title = "t"\n[cluster]\nloss = 1.5\n[[step]]\nsay = "hi"\n',
     "key 'cluster.loss': must be a probability between 0 and 1, got the number 1.5"),
    ("clock drift too wide",
     'title = "t"\n[cluster]\nclock_drift = 0.9\n[[step]]\nsay = "hi"\n',
     "key 'cluster.clock_drift': must be a number from 0 to 0.5 (each server's clock runs "
     "at a rate within 1 +- clock_drift), got the number 0.9"),
    ("loss above 1 in a step",
     'title = "t"\n[[step]]\nloss = 2\n',
     "step 1: key 'loss': must be a probability between 0 and 1, got the integer 2"),
    ("unbound $name",
     'title = "t"\n[[step]]\ncrash = "$old"\n',
     "step 1: key 'crash': $old is not bound by an earlier step; no name is bound yet "
     '(bind one with as = "name" on an earlier step)'),
    ("unbound $name in text",
     'title = "t"\n[[step]]\ncrash = "leader"\nas = "old"\n[[step]]\nsay = "$new leads"\n',
     "step 2: key 'say': $new is not bound by an earlier step; names bound so far: $old"),
    ("unknown expectation key",
     'title = "t"\n[[step]]\nexpect = {leeder = "s1"}\n',
     f"step 1: key 'expect.leeder': unknown expectation key; allowed: {CONDITIONS}, "
     "eventually"),
    ("unknown condition key in when",
     'title = "t"\n[[step]]\nwhen = {eventually = 1}\nsay = "x"\n',
     f"step 1: key 'when.eventually': unknown expectation key; allowed: {CONDITIONS}"),
    ("empty expectation",
     'title = "t"\n[[step]]\nexpect = {eventually = 2}\n',
     f"step 1: key 'expect': expects nothing; give at least one of {CONDITIONS}"),
    ("empty steps",
     'title = "t"\nstep = []\n',
     "key 'step': is empty; add at least one [[step]] table"),
    ("no steps at all",
     'title = "t"\n',
     "key 'step': is missing; add at least one [[step]] table"),
    ("zero servers",
     'title = "t"\n[cluster]\nservers = 0\n[[step]]\nsay = "hi"\n',
     "key 'cluster.servers': must be at least 1 server, got 0"),
    ("duplicate server ids",
     'title = "t"\n[cluster]\nservers = ["a", "b", "a"]\n[[step]]\nsay = "hi"\n',
     "key 'cluster.servers': names 'a' twice"),
    ("a reserved server id",
     'title = "t"\n[cluster]\nservers = ["leader", "b"]\n[[step]]\nsay = "hi"\n',
     "key 'cluster.servers[0]': 'leader' cannot be a server id: leader, follower, any, "
     "none, voters, followers, servers and names starting with $ mean something else in "
     "steps"),
    ("a set word as a server id",
     'title = "t"\n[cluster]\nservers = ["voters", "b"]\n[[step]]\nsay = "hi"\n',
     "key 'cluster.servers[0]': 'voters' cannot be a server id: leader, follower, any, "
     "none, voters, followers, servers and names starting with $ mean something else in "
     "steps"),
    ("missing title",
     '[[step]]\nsay = "hi"\n',
     "key 'title': is missing; every scenario needs a title"),
    ("unknown cluster key",
     'title = "t"\n[cluster]\nheartbeats = 0.1\n[[step]]\nsay = "hi"\n',
     "key 'cluster.heartbeats': unknown key; allowed: servers, nonvoters, names, heartbeat, "
     "election_timeout, latency, loss, duplication, reorder, pre_vote, check_quorum, "
     "snapshot_threshold, max_entries_per_message, clock_drift, lease_reads, disk"),
    ("election timeout not above the heartbeat",
     'title = "t"\n[cluster]\nheartbeat = 0.2\n[[step]]\nsay = "hi"\n',
     "key 'cluster.election_timeout': its min (0.15) must be greater than the heartbeat "
     "(0.2)"),
    ("heal = false",
     'title = "t"\n[[step]]\nheal = false\n',
     "step 1: key 'heal': must be true (heal = true), got false"),
    ("a server in two partition groups",
     'title = "t"\n[[step]]\npartition = [["s1", "s2"], ["s2", "s3"]]\n',
     "step 1: key 'partition': puts 's2' in more than one group"),
    ("a cut without its target",
     'title = "t"\n[[step]]\ncut = {from = "s1"}\n',
     "step 1: key 'cut.to': is missing; a cut is {from = \"s1\", to = \"s2\"}"),
    ("an api path without a slash",
     'title = "t"\n[[step]]\napi = {server = "s1", path = "v1/status/leader"}\n',
     "step 1: key 'api.path': must start with '/', got 'v1/status/leader'"),
    ("a write without a key",
     'title = "t"\n[[step]]\nwrite = {value = "1"}\n',
     "step 1: key 'write.key': is missing"),
    ("a bad status",
     'title = "t"\n[[step]]\nremove = {server = "s2", status = 999}\n',
     "step 1: key 'remove.status': must be an HTTP status (100-599), or 0 for a refused "
     "connection; got 999"),
    ("remove by something else",
     'title = "t"\n[[step]]\nremove = {server = "s2", by = "name"}\n',
     "step 1: key 'remove.by': must be \"id\" or \"address\", got 'name'"),
    ("a date in expected json",
     'title = "t"\n[[step]]\napi = {path = "/v1/agent/self", json = {when = 1979-05-27}}\n',
     "step 1: key 'api.json.when': a date value has no JSON equivalent; use a string, "
     "number, boolean, array or table"),
    ("a bad name for as",
     'title = "t"\n[[step]]\ncrash = "leader"\nas = "old one"\n',
     "step 1: key 'as': 'old one' is not a name: use letters, digits, _ and -, starting "
     "with a letter or _ (then refer to it as \"$old one\")"),
    ("an unknown role",
     'title = "t"\n[[step]]\nexpect = {role = "boss"}\n',
     "step 1: key 'expect.role': must be one of leader, follower, candidate, "
     "pre-candidate, got 'boss'"),
    ("negative eventually",
     'title = "t"\n[[step]]\nexpect = {leader = "any", eventually = -1}\n',
     "step 1: key 'expect.eventually': must be greater than 0 seconds, got -1"),
    ("an unknown nonvoter",
     'title = "t"\n[cluster]\nservers = 3\nnonvoters = ["s4"]\n[[step]]\nsay = "hi"\n',
     "key 'cluster.nonvoters[0]': unknown server 's4'; servers are s1, s2, s3"),
    ("a time too far away",
     'title = "t"\n[[step]]\nafter = 1e9\nsay = "later"\n',
     "step 1: key 'after': must be at most 3600 seconds (an hour of virtual time), got "
     "1000000000.0"),
    ("a negative seed",
     'title = "t"\nseed = -1\n[[step]]\nsay = "hi"\n',
     "key 'seed': must be at least 0, got -1"),
    # the language of issue 14: sets, as tables, kept values, status sets, entry checks
    ('an empty as table',
     'title = "t"\n[[step]]\nsay = "hi"\nas = {}\n',
     ("step 1: key 'as': is an empty table; bind at least one name, e.g. as ="
      ' {old = "leader", buddy = "follower"}')),
    ('a bad name in an as table',
     'title = "t"\n[[step]]\nsay = "hi"\nas = {"1x" = "leader"}\n',
     ("step 1: key 'as.1x': '1x' is not a name: use letters, digits, _ and -,"
      ' starting with a letter or _ (then refer to it as "$1x")')),
    ('an unknown server in a set',
     'title = "t"\n[[step]]\ncrash = "voters except s9"\n',
     ("step 1: key 'crash': unknown server 's9'; use one of s1, s2, s3, s4, s"
      '5, '
      f"{SELECTOR_HINT}")),
    ('an empty status list',
     'title = "t"\n[[step]]\nwrite = {key = "x", value = "1", status = []}\n',
     ("step 1: key 'write.status': is an empty list; give the statuses accept"
      'ed, e.g. status = [200, 500]')),
    ('a bad status in a list',
     'title = "t"\n[[step]]\nwrite = {key = "x", value = "1", status = [200, 999]}\n',
     ("step 1: key 'write.status[1]': must be an HTTP status (100-599), or 0 "
      'for a refused connection; got 999')),
    ('not a comparison',
     'title = "t"\n[[step]]\napi = {path = "/v1/agent/self", compare = {Index = "bigger"}}\n',
     ("step 1: key 'api.compare.Index': 'bigger' is not a comparison; write a"
      'n operator (>=, <=, !=, ==, >, <) and a number or a kept $name, e.g. "'
      '> $before"')),
    ('a comparison with a server',
     ('title = "t"\n[[step]]\nsay = "hi"\nas = "old"\n[[step]]\napi = {path = "/v1'
      '/agent/self", compare = {Index = "> $old"}}\n'),
     ("step 2: key 'api.compare.Index': $old names a server, not a value kept"
      ' from an answer (bind one with keep)')),
    ('a comparison with an unbound name',
     'title = "t"\n[[step]]\napi = {path = "/v1/agent/self", compare = {Index = "> $before"}}\n',
     ("step 1: key 'api.compare.Index': $before is not bound by an earlier st"
      'ep; no name is bound yet (bind one with as = "name" on an earlier step'
      ')')),
    ('a bad JSON path to keep',
     'title = "t"\n[[step]]\napi = {path = "/v1/agent/self", keep = {before = "stats..raft"}}\n',
     ("step 1: key 'api.keep.before': 'stats..raft' is not a JSON path; write"
      ' field names joined by dots, with [n] for a list element, e.g. "Index"'
      ' or "Servers[0].ID" ("." is the whole answer)')),
    ('a kept value used as a server',
     ('title = "t"\n[[step]]\napi = {path = "/v1/agent/self", keep = {t = "stat'
      's.raft.term"}}\n[[step]]\ncrash = "$t"\n'),
     ("step 2: key 'crash': $t is a value kept from an answer, not a server; "
      "bind servers with 'as'")),
    ('a server used as a number',
     'title = "t"\n[[step]]\nsay = "hi"\nas = "old"\n[[step]]\nexpect = {term = "$old"}\n',
     ("step 2: key 'expect.term': $old names a server; a number here may only"
      ' be a value kept from an answer (keep = {name = "Index"})')),
    ('an entry check that says nothing',
     'title = "t"\n[[step]]\nexpect = {entry = {index = 3}}\n',
     ("step 1: key 'expect.entry': says nothing about the entry; give its ter"
      'm, kind or key (and value)')),
    ('an unknown entry kind',
     'title = "t"\n[[step]]\nexpect = {entry = {index = 3, kind = "write"}}\n',
     "step 1: key 'expect.entry.kind': must be one of command, noop, configuration, got 'write'"),
    ('a key on a noop entry',
     'title = "t"\n[[step]]\nexpect = {entry = {index = 3, kind = "noop", key = "x"}}\n',
     "step 1: key 'expect.entry': key and value describe a KV command; a noop entry has neither"),
    ('an entry value without a key',
     'title = "t"\n[[step]]\nexpect = {entry = {index = 3, term = 2, value = "1"}}\n',
     "step 1: key 'expect.entry.value': goes with 'key' (the KV command's key)"),
]


def _run(*files: str, **options: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_command(RunOptions(files=list(files), **options),  # type: ignore[arg-type]
                       out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in INVALID],
                         ids=[i for i, _, _ in INVALID])
def test_invalid_file_exits_2_naming_file_step_and_key(tmp_path: Path, text: str,
                                                       message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    code, out, err = _run(str(path))
    assert code == 2
    assert out == ""  # nothing ran
    assert err == f"raftsim run: invalid scenario: {path}: {message}\n"


def test_there_are_at_least_fifteen_kinds_of_mistake() -> None:
    assert len({name for name, _, _ in INVALID}) >= 15


def test_bad_toml_syntax(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('title = "unterminated\n[[step]]\nsay = "x"\n', encoding="utf-8")
    code, _, err = _run(str(path))
    assert code == 2
    assert err.startswith(f"raftsim run: invalid scenario: {path}: not valid TOML: ")
    assert "line 1" in err


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    code, _, err = _run(str(missing))
    assert (code, err) == (2, f"raftsim run: invalid scenario: {missing}: no such file\n")
    code, _, err = _run(str(tmp_path))
    assert (code, err) == (2, f"raftsim run: invalid scenario: {tmp_path}: is a directory, "
                              "not a scenario file\n")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'title = "caf\xe9"\n')
    code, _, err = _run(str(path))
    assert (code, err) == (2, f"raftsim run: invalid scenario: {path}: not UTF-8 text "
                              "(byte 12)\n")


def test_every_file_is_checked_before_anything_runs(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('title = "t"\n[[step]]\nsay = "hi"\n', encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "t"\n[[step]]\ncrash = "s9"\n', encoding="utf-8")
    worse = tmp_path / "worse.toml"
    worse.write_text('title = 1\n[[step]]\nsay = "x"\n', encoding="utf-8")
    code, out, err = _run(str(good), str(bad), str(worse))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"raftsim run: invalid scenario: {bad}: step 1: key 'crash': unknown server 's9'; "
        f"use one of s1, s2, s3, s4, s5, {SELECTOR_HINT}",
        f"raftsim run: invalid scenario: {worse}: key 'title': must be a string, got the "
        "integer 1",
    ]


@pytest.mark.parametrize(("options", "message"), [
    ({"bugs": ["nope"]}, "unknown bug switch 'nope' for --bug; known switches: "
                         + ", ".join(sorted(BUGS))),
    ({"check_golden": True, "seed": 3}, "--check-golden is about a file's own run: drop "
                                        "--seed and --bug"),
    ({"rewrite_golden": True, "bugs": ["stale-read"]},
     "--rewrite-golden is about a file's own run: drop --seed and --bug"),
    ({"check_golden": True, "rewrite_golden": True},
     "use --check-golden or --rewrite-golden, not both"),
])
def test_command_line_mistakes(tmp_path: Path, options: dict[str, object],
                               message: str) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('title = "t"\n[[step]]\nsay = "hi"\n', encoding="utf-8")
    code, out, err = _run(str(path), **options)
    assert (code, out, err) == (2, "", f"raftsim run: error: {message}\n")


def test_output_paths_are_checked_first(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('title = "t"\n[[step]]\nsay = "hi"\n', encoding="utf-8")
    nowhere = tmp_path / "no" / "such" / "t.jsonl"
    code, out, err = _run(str(path), trace=str(nowhere))
    assert (code, out) == (2, "")
    assert err == (f"raftsim run: error: --trace {nowhere}: directory {nowhere.parent} does "
                   "not exist\n")
    code, _, err = _run(str(path), html=str(tmp_path))
    assert code == 2
    assert err == f"raftsim run: error: --html {tmp_path}: is a directory; give a file name\n"


# ---------------------------------------------------------------------- the real CLI

CLI_MISTAKES = [
    ("missing.toml", None, "no such file"),
    ("syntax.toml", 'title = "t"\n[[step\n', "not valid TOML"),
    ("value.toml", 'title = "t"\n[cluster]\nloss = -0.5\n[[step]]\nsay = "x"\n',
     "key 'cluster.loss': must be a probability between 0 and 1, got the number -0.5"),
    ("step.toml", 'title = "t"\n[[step]]\nexpect = {leader = "s7"}\n',
     "step 1: key 'expect.leader': unknown server 's7'"),
]


@pytest.mark.parametrize(("name", "text", "message"), CLI_MISTAKES,
                         ids=[n for n, _, _ in CLI_MISTAKES])
def test_cli_reports_mistakes_without_a_traceback(tmp_path: Path, name: str,
                                                  text: str | None, message: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "raftsim.cli", "run", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "error"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert str(path) in proc.stderr


@pytest.mark.parametrize("args", [["run"], ["run", "x.toml", "--seed", "abc"],
                                  ["run", "x.toml", "--check-golden", "--rewrite-golden"],
                                  ["run", "x.toml", "--colour"]])
def test_cli_argument_mistakes_exit_2_without_a_traceback(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "raftsim.cli", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("usage: raftsim")
    assert "error: " in proc.stderr


# ---------------------------------------------------------------------- what is accepted

def test_defaults_and_shorthands(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("""
title = "t"
[cluster]
servers = ["a", "b", "c"]
names = {d = "delta.global"}
[[step]]
crash = "leader"
as = "old"
[[step]]
partition = [["$old"], ["b", "c"]]
[[step]]
cut = {from = "b", to = "follower"}
[[step]]
add = {server = "d", voter = false}
[[step]]
remove = "d"
[[step]]
when = {leader = "any", on = "d"}
expect = {leader_not = "$old", voters = ["a", "b", "c"], eventually = 3}
""", encoding="utf-8")
    scenario = load_scenario(path)
    assert (scenario.title, scenario.description, scenario.seed, scenario.bugs) == (
        "t", "", 0, ())
    assert scenario.cluster.servers == ("a", "b", "c")
    assert scenario.cluster.names == {"d": "delta.global"}
    assert scenario.all_servers == ("a", "b", "c", "d")
    steps = scenario.steps
    assert [s.kind for s in steps] == ["crash", "partition", "cut", "add", "remove",
                                       "expect"]
    assert steps[0].action == ServerFault("crash", "leader") and steps[0].bind == "old"
    assert steps[1].action == Partition((("$old",), ("b", "c")))
    assert steps[2].action == Cut("b", "follower")
    add = steps[3].action
    assert isinstance(add, Request) and (add.subject, add.voter, add.via) == ("d", False,
                                                                               "leader")
    remove = steps[4].action
    assert isinstance(remove, Request) and (remove.subject, remove.by,
                                            remove.answer.status) == ("d", "id", 200)
    expect = steps[5].action
    assert expect == Expect(Condition(leader_not="$old", voters=("a", "b", "c")), 3.0)
    assert steps[5].timing.when == Condition(leader="any", on=("d",))
    assert steps[5].timing.within == 10.0


def test_scenario_error_fields() -> None:
    error = ScenarioError("x.toml", "is wrong", step=3, key="crash")
    assert (error.path, error.step, error.key, error.problem) == ("x.toml", 3, "crash",
                                                                  "is wrong")
    assert str(error) == "x.toml: step 3: key 'crash': is wrong"
