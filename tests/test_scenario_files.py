"""Every file in scenarios/ passes, and its trace is exactly the golden one beside it.

The scenarios run in virtual time, in process (fast); one run goes through the real
command line in a subprocess, with a random hash seed, so nothing hash-order dependent
or wall-clock can hide in a trace.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from raftsim.scenario import load_scenario, run_scenario
from raftsim.scenario.golden import golden_path, read_golden
from raftsim.scenario.runner import ScenarioRunner

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.toml"))

#: what the scenario set must teach (issue 4), by file name
REQUIRED = ["first-election", "leader-crash", "split-vote", "log-repair", "figure-8",
            "minority-partition", "majority-partition", "rejoin-without-prevote",
            "rejoin-with-prevote", "remove-follower", "remove-leader",
            "remove-during-partition", "add-nonvoter", "leadership-transfer",
            "crash-restart-durable", "one-way-partition", "tour"]


def test_the_scenario_set_is_complete() -> None:
    names = [f.stem for f in FILES]
    assert len(names) >= 17
    for name in REQUIRED:
        assert name in names


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario_passes_and_matches_its_golden(path: Path) -> None:
    scenario = load_scenario(path)
    # written for a newcomer: a real title and a few sentences of explanation
    assert len(scenario.title) > 10
    assert len(scenario.description.split()) > 60
    result = run_scenario(scenario)
    assert result.passed, str(result.failure)
    assert result.expectations >= 1
    golden = read_golden(golden_path(path))
    assert golden is not None, f"no golden: run raftsim run --rewrite-golden {path}"
    assert (result.digest, len(result.records)) == (golden.sha256, golden.records), (
        f"the trace of {path.name} changed; if that is intended, run "
        f"raftsim run --rewrite-golden {path}")


def test_the_real_command_line_runs_them_all() -> None:
    env = {**os.environ, "PYTHONHASHSEED": str(random.randrange(1, 2**32)),
           "PYTHONWARNINGS": "error"}
    proc = subprocess.run(
        [sys.executable, "-m", "raftsim.cli", "run", "--quiet", "--check-golden",
         *[str(f) for f in FILES]],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{len(FILES)} scenarios: {len(FILES)} passed"
    assert sum(line.startswith("PASS ") for line in lines) == len(FILES)
    assert sum("golden digest matches" in line for line in lines) == len(FILES)


#: how many seeds every shipped scenario must pass for (issue 14: stories name servers by
#: role, so they hold whoever wins which election)
ANY_SEED_COUNT = 20


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario_passes_for_any_seed(path: Path) -> None:
    # in process, without message records (the same run, a lighter trace): 21 files x 20
    # seeds take about 7 s
    scenario = load_scenario(path)
    failed = []
    for seed in range(ANY_SEED_COUNT):
        result = ScenarioRunner(scenario, seed=seed, trace_messages=False).run()
        if not result.passed:
            failed.append(f"--seed {seed}: {result.failure}")
    assert not failed, "\n".join(failed)
