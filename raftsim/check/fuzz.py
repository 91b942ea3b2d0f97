"""``raftsim fuzz``: a VOPR-style campaign over seeds.

Each seed is one fuzz case (:func:`~raftsim.check.schedule.generate_case`: a random
fault schedule and client workload, all drawn from ``random.Random(seed)``), played on
a simulated cluster through the scenario runner's engine with the invariant checker
watching every event, then judged for linearizability. The campaign stops at the first
failing seed -- the lowest one, however many worker processes run -- reduces its
schedule to a short scenario file, checks that ``raftsim run`` fails on that file, and
exits 1. A clean campaign exits 0.

Same seed, same options: same verdict, same trace digest, on any machine.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from raftsim.check.outcome import CaseRun, play_schedule
from raftsim.check.reproducer import ReductionBudget, Reproducer, write_reproducer
from raftsim.check.schedule import FuzzCase, generate_case
from raftsim.core.bugs import BUGS, validate_bugs

__all__ = ["FuzzOptions", "SeedResult", "CampaignResult", "run_seed", "run_campaign",
           "fuzz_main", "parse_shard"]


class FuzzUsageError(ValueError):
    """A bad option (exit status 2)."""


#: seconds to wait for a Dask scheduler to answer
DASK_CONNECT_TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class FuzzOptions:
    seeds: int = 100
    start: int = 0
    servers: int = 5
    duration: float = 30.0
    clients: int = 3
    workers: int = 1
    #: (I, N): this process runs the I-th of N interleaved slices of the seed range
    shard: tuple[int, int] = (1, 1)
    bugs: tuple[str, ...] = ()
    out: Path = Path("fuzz-out")
    reduce: ReductionBudget = field(default_factory=ReductionBudget)
    #: a Dask scheduler's address: run the seeds on that cluster's workers
    dask: str | None = None

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise FuzzUsageError(f"--seeds must be at least 1, got {self.seeds}")
        if self.start < 0:
            raise FuzzUsageError(f"--start must be 0 or more, got {self.start}")
        if self.servers < 1:
            raise FuzzUsageError(f"--servers must be at least 1, got {self.servers}")
        if not self.duration > 3.0:
            raise FuzzUsageError(f"--duration must be more than 3 virtual seconds, "
                                 f"got {self.duration:g}")
        if self.clients < 1:
            raise FuzzUsageError(f"--clients must be at least 1, got {self.clients}")
        if self.workers < 1:
            raise FuzzUsageError(f"--workers must be at least 1, got {self.workers}")
        index, count = self.shard
        if not 1 <= index <= count:
            raise FuzzUsageError(f"--shard must be I/N with 1 <= I <= N, got {index}/{count}")
        if self.dask is not None and "://" not in self.dask:
            raise FuzzUsageError(f"--dask must be a scheduler address such as "
                                 f"tcp://HOST:8786, got {self.dask!r}")
        try:
            validate_bugs(list(self.bugs))
        except ValueError as exc:
            raise FuzzUsageError(f"--bug: {exc}") from None

    def seed_list(self) -> list[int]:
        index, count = self.shard
        return [seed for k, seed in enumerate(range(self.start, self.start + self.seeds))
                if k % count == index - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as (I, N); ValueError with a clear message otherwise."""
    left, sep, right = text.partition("/")
    if not sep or not left.strip().isdigit() or not right.strip().isdigit():
        raise ValueError(f"expected I/N, e.g. 1/4, got {text!r}")
    index, count = int(left), int(right)
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return index, count


@dataclass(slots=True)
class SeedResult:
    seed: int
    #: "ok", "violation", "inconclusive" (linearizability search ran out of budget) or
    #: "error" (the fuzzer itself failed: a bug to report)
    verdict: str
    invariant: str | None = None
    message: str | None = None
    t: float | None = None
    record: dict[str, Any] | None = None
    digest: str = ""
    wall_seconds: float = 0.0
    steps: int = 0
    operations: int = 0
    #: exceptions the servers or the API raised unexpectedly during the run
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def case_of(seed: int, options: FuzzOptions) -> FuzzCase:
    return generate_case(seed, servers=options.servers, duration=options.duration,
                         clients=options.clients)


def play_case(case: FuzzCase, bugs: Sequence[str] = (), *,
              trace_messages: bool = False) -> CaseRun:
    return play_schedule(case.steps, cluster=case.cluster, seed=case.seed, bugs=bugs,
                         clients_of=case.clients_of, trace_messages=trace_messages,
                         title=f"fuzz seed {case.seed}")


def run_seed(seed: int, options: FuzzOptions | None = None) -> SeedResult:
    """Play and judge one seed."""
    options = options or FuzzOptions()
    started = time.perf_counter()
    try:
        case = case_of(seed, options)
        run = play_case(case, options.bugs)
    except Exception:
        return SeedResult(seed, "error", message=traceback.format_exc(limit=8),
                          wall_seconds=time.perf_counter() - started)
    verdict = "violation" if run.failed else ("inconclusive" if run.inconclusive else "ok")
    operations = sum(1 for e in run.events if e.type == "invoke")
    return SeedResult(seed, verdict, run.invariant, run.message, run.time, run.record,
                      run.digest, time.perf_counter() - started, len(run.played), operations,
                      run.errors)


def _run_seed_task(job: tuple[int, FuzzOptions]) -> SeedResult:
    return run_seed(*job)


@dataclass(slots=True)
class CampaignResult:
    options: FuzzOptions
    results: list[SeedResult]
    wall_seconds: float
    first_failure: SeedResult | None = None
    reproducer: Reproducer | None = None

    @property
    def seeds_run(self) -> int:
        return len(self.results)

    @property
    def violations(self) -> int:
        return sum(1 for r in self.results if r.verdict == "violation")

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.verdict == "error")

    @property
    def inconclusive(self) -> int:
        return sum(1 for r in self.results if r.verdict == "inconclusive")

    @property
    def seeds_per_minute(self) -> float:
        return self.seeds_run / self.wall_seconds * 60.0 if self.wall_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        failure = self.first_failure
        rep = self.reproducer
        return {
            "seeds": self.seeds_run,
            "start": self.options.start,
            "servers": self.options.servers,
            "duration": self.options.duration,
            "clients": self.options.clients,
            "workers": self.options.workers,
            "shard": f"{self.options.shard[0]}/{self.options.shard[1]}",
            "bugs": list(self.options.bugs),
            "violations": self.violations,
            "errors": self.errors,
            "internal_errors": sum(len(r.errors) for r in self.results),
            "inconclusive": self.inconclusive,
            "wall_seconds": round(self.wall_seconds, 3),
            "seeds_per_minute": round(self.seeds_per_minute, 1),
            "seed": failure.seed if failure else None,
            "invariant": (failure.invariant or "fuzzer-error") if failure else None,
            "message": failure.message if failure else None,
            "t": failure.t if failure else None,
            "first_event": failure.record if failure else None,
            "digest": failure.digest if failure else None,
            "reproducer": str(rep.path) if rep else None,
            "reproducer_steps": rep.steps if rep else None,
            "reproducer_verified": rep.verified if rep else None,
            "reproducer_check": rep.verify_message if rep else None,
        }


def _is_failure(result: SeedResult) -> bool:
    return result.verdict in ("violation", "error")


def run_campaign(options: FuzzOptions, *,
                 on_result: Callable[[SeedResult], None] | None = None) -> CampaignResult:
    """Run the seeds (stopping at the lowest failing one) without writing anything."""
    seeds = options.seed_list()
    started = time.perf_counter()
    results: dict[int, SeedResult] = {}

    def record(result: SeedResult) -> None:
        results[result.seed] = result
        if on_result is not None:
            on_result(result)

    if options.dask is not None:
        _run_on_dask(seeds, options, record)
    elif options.workers == 1 or len(seeds) == 1:
        for seed in seeds:
            result = run_seed(seed, options)
            record(result)
            if _is_failure(result):
                break
    else:
        _run_parallel(seeds, options, record)
    wall = time.perf_counter() - started
    failing = sorted((r for r in results.values() if _is_failure(r)), key=lambda r: r.seed)
    first = failing[0] if failing else None
    ordered = [results[s] for s in seeds if s in results
               and (first is None or s <= first.seed)]
    return CampaignResult(options, ordered, wall, first)


def _run_parallel(seeds: list[int], options: FuzzOptions,
                  record: Callable[[SeedResult], None]) -> None:
    """Seeds over local worker processes."""
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux")
                                          else "spawn")
    with concurrent.futures.ProcessPoolExecutor(options.workers, mp_context=context) as pool:
        _run_on(pool, options.workers * 2, seeds, options, record)


def _run_on_dask(seeds: list[int], options: FuzzOptions,
                 record: Callable[[SeedResult], None]) -> None:
    """Seeds over the workers of a Dask cluster (each needs raftsim installed). The
    seeds, the order results are taken in and the stop at the lowest failing seed are
    the local run's, so the verdict, the reproducer and the JSON are too."""
    try:
        from distributed import Client
    except ImportError:
        raise FuzzUsageError("--dask needs Dask: pip install 'raftsim[dask]'") from None
    assert options.dask is not None
    try:
        client = Client(options.dask, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise FuzzUsageError(f"--dask: no Dask scheduler answered at {options.dask}: "
                             f"{exc}") from None
    with client:
        threads = max(sum(client.nthreads().values()), 1)
        executor = client.get_executor(pure=False)
        _run_on(executor, threads * 2, seeds, options, record)


def _run_on(pool: concurrent.futures.Executor, window: int, seeds: list[int],
            options: FuzzOptions, record: Callable[[SeedResult], None]) -> None:
    """Seeds in order over an executor, at most ``window`` at a time. After a failure at
    seed s, no seed after s is started and the ones before it are finished, so the
    failure reported is the lowest failing seed, as with one worker."""
    pending: dict[concurrent.futures.Future[SeedResult], int] = {}
    position = 0
    lowest_failure: int | None = None
    while position < len(seeds) or pending:
        while (position < len(seeds) and len(pending) < window
               and (lowest_failure is None or seeds[position] < lowest_failure)):
            seed = seeds[position]
            pending[pool.submit(_run_seed_task, (seed, options))] = seed
            position += 1
        if not pending:
            break
        done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
        for future in sorted(done, key=lambda f: pending[f]):
            seed = pending.pop(future)
            result = future.result()
            if lowest_failure is not None and seed > lowest_failure:
                continue
            record(result)
            if _is_failure(result):
                lowest_failure = seed if lowest_failure is None else min(lowest_failure,
                                                                        seed)
        if lowest_failure is not None:
            for future, seed in list(pending.items()):
                if seed > lowest_failure and future.cancel():
                    del pending[future]


def reproduce(failure: SeedResult, options: FuzzOptions,
              log: Callable[[str], None] | None = None) -> Reproducer:
    """Write ``DIR/seed-<S>.toml`` for a failing seed: reduced, answers pinned, checked
    with the plain scenario runner."""
    case = case_of(failure.seed, options)
    path = options.out / f"seed-{failure.seed}.toml"
    assert failure.invariant is not None
    return write_reproducer(path, steps=case.steps, clients_of=case.clients_of,
                            cluster=case.cluster, seed=case.seed, bugs=options.bugs,
                            invariant=failure.invariant, budget=options.reduce, log=log)


# ---------------------------------------------------------------- the command

def _progress(total: int, stream: TextIO) -> tuple[Callable[[SeedResult], None],
                                                   Callable[[], None]]:
    """A rich progress bar (seeds done, seeds/s, violations) on a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=stream)
    progress = Progress(
        TextColumn("[bold]fuzz[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.1f} seeds/s"),
        TextColumn("violations: {task.fields[violations]}"),
        TimeElapsedColumn(), console=console, transient=False)
    task = progress.add_task("seeds", total=total, rate=0.0, violations=0)
    progress.start()
    started = time.perf_counter()
    counts = {"done": 0, "violations": 0}

    def update(result: SeedResult) -> None:
        counts["done"] += 1
        if _is_failure(result):
            counts["violations"] += 1
        elapsed = max(time.perf_counter() - started, 1e-9)
        progress.update(task, advance=1, rate=counts["done"] / elapsed,
                        violations=counts["violations"])

    return update, progress.stop


def list_bugs(out: TextIO) -> None:
    width = max(len(name) for name in BUGS)
    for name, sentence in BUGS.items():
        out.write(f"{name:<{width}}  {sentence}\n")


def fuzz_main(options: FuzzOptions, *, as_json: bool = False,
              out: TextIO | None = None, err: TextIO | None = None,
              progress: bool | None = None) -> int:
    """Run a campaign and report it; the exit status (0 clean, 1 failure)."""
    out = out or sys.stdout
    err = err or sys.stderr
    seeds = options.seed_list()
    if progress is None:
        progress = not as_json and err.isatty()
    on_result: Callable[[SeedResult], None] | None = None
    stop: Callable[[], None] | None = None
    if progress:
        on_result, stop = _progress(len(seeds), err)
    try:
        campaign = run_campaign(options, on_result=on_result)
    finally:
        if stop is not None:
            stop()
    failure = campaign.first_failure
    if failure is not None and failure.verdict == "violation":
        if not as_json:
            err.write(f"seed {failure.seed} failed: {failure.invariant}; reducing...\n")
        try:
            campaign.reproducer = reproduce(failure, options)
        except Exception as exc:  # the failure stands; say why there is no file
            err.write(f"raftsim fuzz: could not write a reproducer: {exc}\n")
    if as_json:
        out.write(json.dumps(campaign.summary(), sort_keys=True, default=str) + "\n")
    else:
        _report(campaign, out)
    return 1 if failure is not None else 0


def _report(campaign: CampaignResult, out: TextIO) -> None:
    options = campaign.options
    bugs = f", bug switches: {', '.join(options.bugs)}" if options.bugs else ""
    out.write(f"{campaign.seeds_run} seeds ({options.servers} servers, "
              f"{options.duration:g} virtual s, {options.clients} clients{bugs}) in "
              f"{campaign.wall_seconds:.1f} s: {campaign.seeds_per_minute:.0f} seeds/min"
              f" with {options.workers} worker(s)\n")
    if campaign.inconclusive:
        out.write(f"{campaign.inconclusive} seed(s) with a linearizability search that ran "
                  "out of budget (inconclusive, not failures)\n")
    errors = sum(len(r.errors) for r in campaign.results)
    if errors:
        out.write(f"{errors} unexpected exception(s) inside servers or the API\n")
    failure = campaign.first_failure
    if failure is None:
        out.write("no violations\n")
        return
    if failure.verdict == "error":
        out.write(f"seed {failure.seed}: the fuzzer itself failed:\n{failure.message}\n")
        return
    out.write(f"VIOLATION at seed {failure.seed}: {failure.invariant}\n")
    out.write(f"  {failure.message}\n")
    if failure.record is not None:
        out.write("  first violating event: "
                  + json.dumps(failure.record, sort_keys=True, default=str) + "\n")
    rep = campaign.reproducer
    if rep is not None:
        status = ("raftsim run fails on it: " + rep.verify_message if rep.verified
                  else "WARNING: raftsim run did not fail on it (" + rep.verify_message + ")")
        out.write(f"  reproducer: {rep.path} ({rep.steps} steps, reduced from "
                  f"{rep.original_steps}); {status}\n")
        out.write(f"  replay: raftsim run {rep.path}\n")
