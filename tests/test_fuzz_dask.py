"""``raftsim fuzz --dask ADDRESS``: the same seeds on a Dask cluster (here a
``LocalCluster`` of two worker processes) give the same verdict, reproducer and JSON as
a local run; only the timings differ."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster

from raftsim.cli import main

#: what differs between any two runs: how long they took
TIMINGS = ("wall_seconds", "seeds_per_minute")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _fuzz(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["fuzz", "--json", *args])
    summary = json.loads(capsys.readouterr().out)
    for key in TIMINGS:
        summary.pop(key)
    return code, summary


def test_a_failing_campaign_on_dask_matches_the_local_one(
        scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--bug", "no-log-check", "--seeds", "6"]
    local_code, local = _fuzz(capsys, *common, "--out", str(tmp_path / "local"))
    dask_code, on_dask = _fuzz(capsys, *common, "--out", str(tmp_path / "dask"),
                               "--dask", scheduler)
    assert local_code == dask_code == 1
    assert on_dask.pop("reproducer") == str(tmp_path / "dask" / f"seed-{local['seed']}.toml")
    assert local.pop("reproducer") == str(tmp_path / "local" / f"seed-{local['seed']}.toml")
    assert on_dask == local
    name = f"seed-{local['seed']}.toml"
    assert (tmp_path / "dask" / name).read_text() == (tmp_path / "local" / name).read_text()


def test_a_clean_campaign_on_dask_matches_the_local_one(
        scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--seeds", "3", "--start", "40", "--out", str(tmp_path)]
    assert _fuzz(capsys, *common) == _fuzz(capsys, *common, "--dask", scheduler)


def test_a_bad_or_unreachable_scheduler_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "--seeds", "1", "--dask", "localhost:8786"]) == 2
    assert "--dask must be a scheduler address such as tcp://HOST:8786" in \
        capsys.readouterr().err
