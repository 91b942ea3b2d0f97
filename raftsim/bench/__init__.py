"""Benchmarks: commands that measure, never timed tests."""
