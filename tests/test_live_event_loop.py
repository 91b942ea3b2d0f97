"""Live servers run on uvloop where it is installed (a dependency on the platforms that
have it), on asyncio's own loop without it or with RAFTSIM_EVENT_LOOP=asyncio; a real
agent process says which in its log and serves writes on either."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftsim.live.agent import EVENT_LOOP_VARIABLE, event_loop_name, run_live
from raftsim.runtime.collector import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD
from tests.livecluster import AgentProcesses, http, wait_until


def uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """run_live tunes the process's collector; the rest of the test session keeps
    CPython's defaults."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_the_default_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_VARIABLE, raising=False)
    expected = "uvloop" if uvloop_installed() else "asyncio"
    assert event_loop_name() == expected
    assert run_live(loop_module()).startswith(expected)


def test_without_uvloop_live_servers_fall_back_to_asyncio(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert event_loop_name() == "asyncio"
    assert run_live(loop_module()).startswith("asyncio")


def test_the_variable_turns_uvloop_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "asyncio")
    assert event_loop_name() == "asyncio"


@pytest.mark.parametrize("choice", ["default", "asyncio"])
def test_an_agent_process_runs_and_serves_on_the_loop_it_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, choice: str) -> None:
    if choice == "asyncio":
        monkeypatch.setenv(EVENT_LOOP_VARIABLE, "asyncio")
    else:
        monkeypatch.delenv(EVENT_LOOP_VARIABLE, raising=False)
    expected = "uvloop" if choice == "default" and uvloop_installed() else "asyncio"
    with AgentProcesses(tmp_path, servers=1, fsync="never") as cluster:
        cluster.start()
        wait_until(lambda: "event loop " in cluster.log("s1"), 30.0, "the agent's log")
        assert f"s1: event loop {expected}" in cluster.log("s1")
        cluster.wait_for_leader()
        status, body = http("PUT", f"{cluster.url('s1')}/v1/kv/k", b"v")
        assert (status, body) == (200, b"true")


def test_a_live_process_runs_with_the_collector_tuned_for_a_server() -> None:
    """run_live (what ``raftsim agent`` runs in) tunes the cyclic collector first: young
    collections every YOUNG_THRESHOLD allocations, start-up objects frozen."""
    async def collector_settings() -> tuple[tuple[int, ...], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    threshold, frozen = run_live(collector_settings())
    assert threshold == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    assert frozen > 0
