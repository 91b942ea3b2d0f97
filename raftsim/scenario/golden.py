"""Golden traces: a scenario's trace digest, stored beside it, so any change in behaviour
shows up as a changed digest (etcd-io/raft's data-driven tests, rewritten by a flag).

``scenarios/first-election.toml`` keeps its golden in ``scenarios/first-election.golden``,
a two-key TOML file: the sha256 of the trace's JSON Lines and the number of records.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


class GoldenError(Exception):
    """A golden file that exists but cannot be read."""


@dataclass(frozen=True, slots=True)
class Golden:
    sha256: str
    records: int

    def short(self) -> str:
        return f"{self.sha256[:12]} ({self.records} records)"


def golden_path(scenario_path: Path) -> Path:
    return scenario_path.with_suffix(".golden")


def read_golden(path: Path) -> Golden | None:
    """The stored golden, or None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"{path}: cannot read it: {exc}") from None
    try:
        data = tomllib.loads(text)
        sha256, records = data["sha256"], data["records"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise GoldenError(f"{path}: not a golden file ({exc}); rewrite it with "
                          "--rewrite-golden") from None
    if not isinstance(sha256, str) or not isinstance(records, int):
        raise GoldenError(f"{path}: sha256 must be a string and records a number; rewrite "
                          "it with --rewrite-golden")
    return Golden(sha256, records)


def write_golden(path: Path, golden: Golden, scenario_path: Path) -> None:
    path.write_text(
        f"# The golden trace of {scenario_path.name}: the sha256 of its trace (JSON Lines)\n"
        f"# and its record count. After an intended change in behaviour, refresh it with\n"
        f"#   raftsim run --rewrite-golden {scenario_path.as_posix()}\n"
        f'sha256 = "{golden.sha256}"\n'
        f"records = {golden.records}\n",
        encoding="utf-8")
