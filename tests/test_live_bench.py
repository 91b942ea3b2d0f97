"""``raftsim bench live``, briefly: every figure is there, and a run is marked valid or
invalid by what failed in it. Nothing here judges a timing."""

from __future__ import annotations

from raftsim.bench.live import JSON_KEYS, Load, RunFigures, percentile, run_live_bench, summarize


def test_a_short_live_benchmark_reports_every_figure_and_marks_itself_honestly() -> None:
    result = run_live_bench(seconds=0.3, compare="pysyncobj", window=200, repeats=1,
                            latency_rate=200)
    assert set(JSON_KEYS) <= set(result)
    for key in JSON_KEYS:
        assert isinstance(result[key], int | float), key
    for key in ("unbatched_ops_per_second", "batched_ops_per_second",
                "fsync_always_batched_ops_per_second", "pysyncobj_unbatched_ops_per_second",
                "pysyncobj_batched_ops_per_second", "http_ops_per_second"):
        assert result[key] > 0, key
    assert result["latency_rate"] == 200
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["pysyncobj_p50_ms"] <= result["pysyncobj_p99_ms"]
    runs = result["details"]["runs"]
    failed = (sum(r["failed"] for rs in runs.values() for r in rs)
              + sum(r["failed"] for r in result["details"]["http_runs"]))
    changes = sum(r["leader_changes"] for rs in runs.values() for r in rs)
    assert (result["failed_writes"], result["leader_changes"]) == (failed, changes)
    assert result["valid"] is (failed == 0 and changes == 0)


def run(ops: float, *, failed: int = 0, changes: int = 0, p50: float | None = None,
        p99: float | None = None) -> RunFigures:
    return RunFigures(ops_per_second=ops, failed=failed, leader_changes=changes,
                      p50_ms=p50, p99_ms=p99)


def test_figures_are_medians_of_the_repeats_and_any_failure_invalidates() -> None:
    runs = {"raftsim-unbatched": [run(10, p50=1, p99=5), run(30, p50=3, p99=9),
                                  run(20, p50=2, p99=7)],
            "pysyncobj-unbatched": [run(5, p50=1, p99=2)],
            "raftsim-batched": [run(100), run(300)]}
    clean = summarize(runs, [(50.0, 0), (70.0, 0), (60.0, 0)], 2000)
    assert clean["unbatched_ops_per_second"] == 20  # the median, not the best
    assert clean["batched_ops_per_second"] == 200
    assert (clean["p50_ms"], clean["p99_ms"]) == (2, 7)
    assert clean["http_ops_per_second"] == 60
    assert clean["fsync_always_batched_ops_per_second"] is None  # not measured
    assert clean["valid"] is True
    runs["raftsim-batched"].append(run(1000, failed=3))
    failing = summarize(runs, [(50.0, 0)], 2000)
    assert (failing["failed_writes"], failing["valid"]) == (3, False)
    runs["raftsim-batched"][-1] = run(1000, changes=1)
    assert summarize(runs, [(50.0, 0)], 2000)["valid"] is False
    assert summarize({}, [(50.0, 2)], 2000)["valid"] is False  # failed HTTP writes


def test_the_load_counts_completions_only_while_counting_and_tops_up_its_window() -> None:
    pending: list[object] = []
    load = Load(lambda command, done: pending.append(done), lambda n: b"%d" % n,
                clock=lambda: 0.0)
    load.one()
    load.counting = True
    load.refill = True
    load.window = 1
    done = pending.pop()
    done(True)  # counted, and refilled
    assert (load.completed, load.outstanding, len(pending)) == (1, 1, 1)
    load.refill = False
    pending.pop()(RuntimeError("leadership lost"))
    assert (load.completed, load.failed, load.outstanding) == (1, 1, 0)


class Refused(Exception):
    pass


def test_a_refused_write_is_counted_apart_and_offered_again_at_the_next_answer() -> None:
    pending: list[object] = []
    accept = [True, True, False]

    def submit(command: bytes, done: object) -> None:
        if not accept.pop(0):
            raise Refused()
        pending.append(done)

    load = Load(submit, lambda n: b"%d" % n, clock=lambda: 0.0, refuse=(Refused,))
    load.window = 3
    load.refill = True
    load.top_up()  # two taken, the third refused
    assert (load.outstanding, load.refused, load.failed) == (2, 1, 0)
    accept.extend([True, False])
    pending.pop(0)(True)  # one answer: the window is topped up again
    assert (load.outstanding, load.refused, load.failed) == (2, 2, 0)


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([1.0] * 99 + [100.0], 0.99) == 100.0
