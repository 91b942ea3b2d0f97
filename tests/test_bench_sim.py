"""``raftsim bench sim``, briefly: it runs and reports every figure, the floor included
(a stock asyncio loop on virtual time doing only msgpack and ``call_later`` per message).
Nothing here judges a timing."""

from __future__ import annotations

import pytest

from raftsim.bench.sim import _floor, run_sim_bench


def test_a_short_sim_benchmark_reports_the_floor_and_the_fractions_of_it() -> None:
    result = run_sim_bench(servers=3, idle_seconds=5.0, loaded_seconds=0.5, rate=100,
                           floor_messages=2_000).as_dict()
    assert result["floor_messages_per_second"] > 0
    assert result["loaded_commits"] > 0
    assert result["idle_fraction_of_floor"] == pytest.approx(
        result["idle_messages_per_second"] / result["floor_messages_per_second"], abs=1e-3)
    assert result["loaded_fraction_of_floor"] == pytest.approx(
        result["loaded_messages_per_second"] / result["floor_messages_per_second"], abs=1e-3)


def test_the_floor_delivers_exactly_what_it_was_asked_to() -> None:
    delivered, wall = _floor(1_000, 5)
    assert delivered == 1_000 and wall > 0


def test_each_figure_is_the_median_of_interleaved_rounds() -> None:
    result = run_sim_bench(servers=3, idle_seconds=5.0, loaded_seconds=0.5, rate=100,
                           floor_messages=2_000, repeats=3)
    assert result.repeats == 3
    assert len(result.idle_realtime_factor_runs) == 3
    assert len(result.floor_messages_per_second_runs) == 3
    assert result.idle_realtime_factor == pytest.approx(
        sorted(result.idle_realtime_factor_runs)[1], abs=0.2)
    assert result.loaded_messages_per_second == pytest.approx(
        sorted(result.loaded_messages_per_second_runs)[1], abs=0.2)
    assert result.floor_messages_per_second == pytest.approx(
        sorted(result.floor_messages_per_second_runs)[1], abs=0.2)


def test_no_rounds_is_refused() -> None:
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        run_sim_bench(repeats=0)


@pytest.mark.parametrize("repeats", ["0", "-1", "two"])
def test_bad_repeats_on_the_command_line_exit_2(
        repeats: str, capsys: pytest.CaptureFixture[str]) -> None:
    from raftsim.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["bench", "sim", "--repeats", repeats])
    assert exc.value.code == 2
    assert "--repeats" in capsys.readouterr().err
