"""The cyclic garbage collector's settings for a live server process.

A live server keeps every log entry since its last snapshot as an object (and its file
storage a record location per entry), and with one entry per client command it makes
tens of thousands of them a second. CPython's collector, at its defaults (a young
collection every 700 net allocations, a full one whenever the long-lived objects grew by
a quarter), scans each of those entries several times before and after it becomes old:
about a third of the CPU of a three-server cluster at one entry per write (measured in
one process, with the servers' real code, storage and codec; see docs/benchmarks.md).
Reference counting frees almost everything the server makes (messages, Readies, decoded
commands) the moment it is no longer used; the collector is only needed for reference
cycles, which the server's hot path does not make. So a live process collects less
often: a young collection every YOUNG_THRESHOLD net allocations, and the older
generations as often relative to it as CPython's defaults do. (A young collection of
100,000 objects takes a few milliseconds, far below a heartbeat interval.) What was
built at start-up (modules, classes, the loop) is moved out of the collector's view
once, with ``gc.freeze``: it lives as long as the process.

The simulator leaves the collector alone: it is one process with many servers, whose
tests and tools allocate in their own patterns, and collection never changes what a
simulation computes.
"""

from __future__ import annotations

import gc

#: net allocations of tracked objects between two young collections (CPython: 700).
#: Large enough that what a write makes and drops while it is in flight (its queued
#: tuple, its completion's bookkeeping, the messages that carry it: tens of
#: milliseconds at 100,000 writes/s) is mostly freed before a collection would scan it.
YOUNG_THRESHOLD = 100_000
#: young collections between two middle-generation collections (CPython: 10)
MIDDLE_THRESHOLD = 10
#: middle-generation collections between two full ones (CPython: 10; a full collection
#: also waits, as always, until the long-lived objects grew by a quarter)
OLD_THRESHOLD = 10


def tune_for_live_server() -> None:
    """Set a live server process's collector (see the module docstring). Call once the
    process has imported what it runs, before it starts serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
