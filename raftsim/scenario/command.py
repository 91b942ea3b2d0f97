"""``raftsim run FILE...``: run scenario files, narrate them, judge them.

Exit status: 0 when every expectation held (and the safety invariants, and the golden
digests when checked); 1 when something failed; 2 when the command line or a file is
invalid, in which case nothing runs. Files are all loaded (and checked) before the first
one runs.
"""

from __future__ import annotations

import html
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from raftsim.core.bugs import BUGS
from raftsim.scenario.errors import ScenarioError
from raftsim.scenario.golden import Golden, GoldenError, golden_path, read_golden, write_golden
from raftsim.scenario.load import load_scenario
from raftsim.scenario.model import Scenario
from raftsim.scenario.runner import RunResult, run_scenario
from raftsim.sim.trace import Record, TraceRecorder
from raftsim.viz.console import NarrationPrinter
from raftsim.viz.narration import Narrator

_MESSAGE_KINDS = frozenset({"send", "deliver", "drop"})


@dataclass(slots=True)
class RunOptions:
    files: list[str]
    seed: int | None = None
    trace: str | None = None
    html: str | None = None
    quiet: bool = False
    check_golden: bool = False
    rewrite_golden: bool = False
    bugs: list[str] = field(default_factory=list)
    #: None: colour when the output is a terminal
    color: bool | None = None


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


class LiveNarration:
    """Prints the narration of each record as the run makes it (the same sentences as
    :func:`raftsim.viz.narration.narrate`, which needs the whole trace up front)."""

    def __init__(self, printer: NarrationPrinter) -> None:
        self.printer = printer
        self._narrator = Narrator()

    def __call__(self, rec: Record) -> None:
        if rec.get("kind") in _MESSAGE_KINDS:
            return
        line = self._narrator.line(rec)
        if line is not None:
            self.printer.print_line(line)


def _check_options(options: RunOptions) -> None:
    if not options.files:
        raise UsageError("give at least one scenario file")
    for name in options.bugs:
        if name not in BUGS:
            raise UsageError(f"unknown bug switch {name!r} for --bug; known switches: "
                             f"{', '.join(sorted(BUGS))}")
    if options.check_golden and options.rewrite_golden:
        raise UsageError("use --check-golden or --rewrite-golden, not both")
    if (options.check_golden or options.rewrite_golden) and (
            options.seed is not None or options.bugs):
        flag = "--check-golden" if options.check_golden else "--rewrite-golden"
        raise UsageError(f"{flag} is about a file's own run: drop --seed and --bug")
    several = len(options.files) > 1
    for flag, value in (("--trace", options.trace), ("--html", options.html)):
        if value is None:
            continue
        target = Path(value)
        if several:
            if target.exists() and not target.is_dir():
                raise UsageError(f"{flag} {value}: with several scenario files, {flag} names "
                                 "a directory (one file per scenario), and this is a file")
            if not target.exists() and not target.parent.is_dir():
                raise UsageError(f"{flag} {value}: directory {target.parent} does not exist")
        else:
            if target.is_dir():
                raise UsageError(f"{flag} {value}: is a directory; give a file name")
            if not target.parent.is_dir():
                raise UsageError(f"{flag} {value}: directory {target.parent} does not exist")


def _output_path(option: str | None, scenario: Scenario, several: bool,
                 suffix: str) -> Path | None:
    if option is None:
        return None
    if several:
        directory = Path(option)
        directory.mkdir(exist_ok=True)
        return directory / f"{scenario.name}{suffix}"
    return Path(option)


def load_all(files: list[str]) -> tuple[list[Scenario], list[ScenarioError]]:
    scenarios, errors = [], []
    for name in files:
        try:
            scenarios.append(load_scenario(name))
        except ScenarioError as exc:
            errors.append(exc)
    return scenarios, errors


def run_command(options: RunOptions, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """Run ``raftsim run``; returns the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        _check_options(options)
    except UsageError as exc:
        print(f"raftsim run: error: {exc}", file=err)
        return 2
    scenarios, errors = load_all(options.files)
    if errors:
        for error in errors:
            print(f"raftsim run: invalid scenario: {error}", file=err)
        return 2
    several = len(scenarios) > 1
    printer = NarrationPrinter(out, color=options.color)
    failed: list[str] = []
    for scenario in scenarios:
        ok = _run_one(scenario, options, several, printer, err)
        if ok is None:
            return 2
        if not ok:
            failed.append(scenario.name)
    passed = len(scenarios) - len(failed)
    summary = f"{len(scenarios)} scenario{'s' if len(scenarios) != 1 else ''}: {passed} passed"
    if failed:
        summary += f", {len(failed)} failed ({', '.join(failed)})"
    printer.console.print(summary, markup=False,
                          style="bold red" if failed else "bold green")
    return 1 if failed else 0


def _run_one(scenario: Scenario, options: RunOptions, several: bool,
             printer: NarrationPrinter, err: TextIO) -> bool | None:
    """Run, report and store one scenario: passed, failed, or None on an output error."""
    console = printer.console
    seed = scenario.seed if options.seed is None else options.seed
    listeners: tuple[Callable[[Record], None], ...] = ()
    if not options.quiet:
        console.print(f"== {scenario.path}: {scenario.title} (seed {seed})", markup=False,
                      style="bold")
        if scenario.description.strip():
            for paragraph in scenario.description.strip().split("\n\n"):
                console.print(textwrap.fill(" ".join(paragraph.split()), width=88),
                              markup=False, style="italic")
                console.print()
        listeners = (LiveNarration(printer),)
    result = run_scenario(scenario, seed=options.seed, bugs=tuple(options.bugs),
                          listeners=listeners)
    ok = result.passed
    notes: list[str] = []
    golden = Golden(result.digest, len(result.records))
    stored_at = golden_path(scenario.path)
    try:
        if options.rewrite_golden and not result.passed:
            notes.append(f"golden not rewritten: a failing run is no reference "
                         f"({stored_at} is unchanged)")
        elif options.rewrite_golden:
            write_golden(stored_at, golden, scenario.path)
            notes.append(f"golden rewritten: {stored_at} = {golden.short()}")
        elif options.check_golden:
            stored = read_golden(stored_at)
            if stored is None:
                ok = False
                notes.append(f"golden: {stored_at} does not exist; create it with "
                             f"raftsim run --rewrite-golden {scenario.path}")
            elif stored != golden:
                ok = False
                notes.append(f"golden digest differs: {stored_at} has {stored.short()}, "
                             f"this run made {golden.short()}")
            else:
                notes.append(f"golden digest matches: {golden.short()}")
        trace_path = _output_path(options.trace, scenario, several, ".jsonl")
        if trace_path is not None:
            recorder = TraceRecorder(lambda: 0.0)
            recorder.records = result.records
            recorder.write_jsonl(trace_path)
            notes.append(f"trace written to {trace_path}")
        html_path = _output_path(options.html, scenario, several, ".html")
        if html_path is not None:
            html_path.write_text(render_page(result), encoding="utf-8")
            notes.append(f"timeline written to {html_path}")
    except (OSError, GoldenError) as exc:
        print(f"raftsim run: error: {exc}", file=err)
        return None
    _print_verdict(result, ok, notes, printer)
    return ok


def verdict_text(result: RunResult) -> str:
    if result.failure is not None:
        return f"FAIL {result.scenario.name}: {result.failure}"
    count = result.checks
    return (f"PASS {result.scenario.name}: {count} check{'s' if count != 1 else ''} "
            f"held ({result.expectations} expect, the rest 'when' conditions and answers) "
            f"over {result.end_time:.3f} virtual seconds; safety invariants held")


def _print_verdict(result: RunResult, ok: bool, notes: list[str],
                   printer: NarrationPrinter) -> None:
    console = printer.console
    text = verdict_text(result)
    if result.passed and not ok:
        text = f"FAIL {result.scenario.name}: " + text.split(": ", 1)[1]
    console.print(text, markup=False, style="bold green" if ok else "bold red")
    for note in notes:
        console.print(f"  {note}", markup=False)


def render_page(result: RunResult) -> str:
    from raftsim.viz.html import render_html

    scenario = result.scenario
    verdict = html.escape(verdict_text(result))
    extra = (f'<p class="rs-verdict" data-passed="{"1" if result.passed else "0"}">'
             f"{verdict}</p>\n<p>seed {result.seed}, trace digest "
             f"<code>{result.digest}</code></p>")
    return render_html(result.records, title=scenario.title,
                       description=scenario.description,
                       servers=result.servers, extra_html=extra)
