"""Scenario files: a cluster, a seed and an ordered list of steps, in TOML.

``load_scenario`` reads and checks a file (``ScenarioError`` names the file, step and
key of any mistake); ``run_scenario`` plays it in virtual time and judges it;
``run_command`` is ``raftsim run``. The format is documented in docs/scenarios.md.
"""

from raftsim.scenario.errors import ScenarioError
from raftsim.scenario.load import load_scenario, parse_scenario
from raftsim.scenario.model import Scenario
from raftsim.scenario.runner import Failure, RunResult, run_scenario

__all__ = ["Failure", "RunResult", "Scenario", "ScenarioError", "load_scenario",
           "parse_scenario", "run_scenario"]
