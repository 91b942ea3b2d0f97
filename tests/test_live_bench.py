"""``raftsim bench live`` end to end, briefly: every figure is there and positive."""

from __future__ import annotations

import pytest

from raftsim.bench.live import Load, percentile, run_live_bench


def test_a_short_live_benchmark_reports_every_figure() -> None:
    result = run_live_bench(seconds=0.3, compare="pysyncobj", windows=(200,))
    for key in ("inproc_ops_per_second_fsync_never", "inproc_ops_per_second_fsync_always",
                "http_ops_per_second", "pysyncobj_ops_per_second",
                "latency_achieved_ops_per_second"):
        assert isinstance(result[key], int) and result[key] > 0, key
    for key in ("p50_ms", "p99_ms", "p50_ms_fsync_always", "p99_ms_fsync_always"):
        assert 0 < result[key] < 10_000, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["ratio_fsync_never"] == pytest.approx(
        result["inproc_ops_per_second_fsync_never"] / result["pysyncobj_ops_per_second"],
        abs=0.01)


def test_the_load_counts_completions_only_while_counting_and_refills_when_asked() -> None:
    pending: list[object] = []
    load = Load(lambda command, done: pending.append(done), lambda n: b"%d" % n,
                clock=lambda: 0.0)
    load.one()
    load.counting = True
    load.refill = True
    done = pending.pop()
    done(True)  # counted, and refilled
    assert (load.completed, load.outstanding, len(pending)) == (1, 1, 1)
    load.refill = False
    pending.pop()(RuntimeError("leadership lost"))
    assert (load.completed, load.failed, load.outstanding) == (1, 1, 0)


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([1.0] * 99 + [100.0], 0.99) == 100.0
