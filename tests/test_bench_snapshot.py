"""``raftsim bench snapshot --part stalls``, briefly: every step of a snapshot's life,
before and after, is measured (the figures themselves mean little on a tiny state)."""

from __future__ import annotations

from raftsim.bench.snapshot import run_snapshot_bench

STEPS = ("serialize_on_loop_before", "serialize_in_thread_after", "restore_on_loop_before",
         "restore_in_thread_after", "assemble_chunks_joined_on_loop_before",
         "assemble_chunks_as_they_arrive_after", "write_snapshot_file_on_loop_before",
         "write_snapshot_file_in_thread_after", "publish_snapshot_file_on_loop_after")


def test_the_stalls_part_measures_every_step_of_a_snapshot_s_life() -> None:
    result = run_snapshot_bench(values=2, catch_up=False)
    assert result["snapshot_bytes"] > 2 * 512 * 1024
    for step in STEPS:
        stall = result[f"{step}_max_stall_ms"]
        assert isinstance(stall, float) and stall >= 0, step
    assert "catch_up_seconds" not in result
