"""Command-line entry point. Argument parsing only: each command is a few lines that
call into the layers that do the work."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit code 2."""


def _cmd_bench_sim(args: argparse.Namespace) -> int:
    from raftsim.bench.sim import run_sim_bench

    result = run_sim_bench(servers=args.servers, idle_seconds=args.idle_seconds,
                           loaded_seconds=args.loaded_seconds, rate=args.rate)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        for key, value in result.as_dict().items():
            print(f"{key:>24}: {value}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from raftsim.scenario.command import RunOptions, run_command

    return run_command(RunOptions(
        files=args.files, seed=args.seed, trace=args.trace, html=args.html, quiet=args.quiet,
        check_golden=args.check_golden, rewrite_golden=args.rewrite_golden, bugs=args.bug))


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _add_run_command(sub: Any) -> None:
    run = sub.add_parser(
        "run", allow_abbrev=False, help="run scenario files and narrate what Raft does",
        description="Run scenario files (docs/scenarios.md) in virtual time: narrate each "
                    "run, check its expectations and Raft's safety invariants. Exit 0 if "
                    "all held, 1 if one failed, 2 if a file is invalid.")
    run.add_argument("files", nargs="+", metavar="FILE", help="scenario files (.toml)")
    run.add_argument("--seed", type=_seed, default=None,
                     help="run with this seed instead of the file's")
    run.add_argument("--trace", metavar="FILE.jsonl", default=None,
                     help="write the trace as JSON Lines (a directory for several files)")
    run.add_argument("--html", metavar="FILE.html", default=None,
                     help="write the HTML timeline (a directory for several files)")
    run.add_argument("--quiet", action="store_true",
                     help="no narration: one verdict line per file")
    golden = run.add_mutually_exclusive_group()
    golden.add_argument("--check-golden", action="store_true",
                        help="fail unless each trace digest matches the .golden file "
                             "beside the scenario")
    golden.add_argument("--rewrite-golden", action="store_true",
                        help="write each trace digest to the .golden file beside the "
                             "scenario")
    run.add_argument("--bug", action="append", default=[], metavar="NAME",
                     help="switch a bug on (repeatable), e.g. commit-prior-term")
    run.set_defaults(func=_cmd_run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _cmd_operator_raft_list_peers(args: argparse.Namespace) -> int:
    from raftsim.api import operator_cli

    try:
        address = operator_cli.resolve_address(args.address, os.environ)
    except operator_cli.UsageError as exc:
        raise UsageError(str(exc)) from None
    return operator_cli.list_peers(address=address,
                                   token=operator_cli.resolve_token(args.token, os.environ),
                                   stale=args.stale, out=sys.stdout, err=sys.stderr)


def _cmd_operator_raft_remove_peer(args: argparse.Namespace) -> int:
    from raftsim.api import operator_cli

    try:
        return operator_cli.remove_peer(
            address=operator_cli.resolve_address(args.address, os.environ),
            token=operator_cli.resolve_token(args.token, os.environ),
            peer_id=args.peer_id, peer_address=args.peer_address,
            out=sys.stdout, err=sys.stderr)
    except operator_cli.UsageError as exc:
        raise UsageError(str(exc)) from None


def _go_bool(text: str) -> bool:
    """A boolean flag's value as Go's flag package reads it (-stale, -stale=false)."""
    from raftsim.api.params import parse_bool

    try:
        return parse_bool(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def _add_api_flags(parser: argparse.ArgumentParser) -> None:
    """Nomad's global API flags; like Go's flag package, one dash or two, and
    ``-flag=value`` or ``-flag value``."""
    parser.add_argument("-address", "--address", metavar="URL", default=None,
                        help="the API address (default: $NOMAD_ADDR or "
                             "http://127.0.0.1:4646)")
    parser.add_argument("-token", "--token", metavar="TOKEN", default=None,
                        help="the ACL token (default: $NOMAD_TOKEN)")


def _add_operator_commands(sub: Any) -> None:
    operator = sub.add_parser("operator", help="cluster-level tools for operators (Nomad's)")
    operator_sub = operator.add_subparsers(dest="operator", metavar="WHAT")
    operator_sub.required = True
    raft = operator_sub.add_parser("raft", help="interact with the Raft configuration")
    raft_sub = raft.add_subparsers(dest="raft", metavar="COMMAND")
    raft_sub.required = True

    list_peers = raft_sub.add_parser(
        "list-peers", allow_abbrev=False, help="show the Raft peer configuration",
        description="Show the Raft configuration as Nomad's CLI does: one row per server, "
                    "sorted by node name.")
    _add_api_flags(list_peers)
    list_peers.add_argument("-stale", "--stale", nargs="?", const=True, default=False,
                            type=_go_bool, metavar="BOOL",
                            help="answer from the server asked, even without a leader")
    list_peers.set_defaults(func=_cmd_operator_raft_list_peers)

    remove_peer = raft_sub.add_parser(
        "remove-peer", allow_abbrev=False, help="remove a server from the Raft configuration",
        description="Remove a server, named by -peer-id or -peer-address (one of them).")
    _add_api_flags(remove_peer)
    remove_peer.add_argument("-peer-id", "--peer-id", metavar="ID", default=None,
                             help="the ID of the server to remove")
    remove_peer.add_argument("-peer-address", "--peer-address", metavar="IP:PORT",
                             default=None, help="the address of the server to remove")
    remove_peer.set_defaults(func=_cmd_operator_raft_remove_peer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftsim",
        description="A Raft consensus simulator that is a real Raft implementation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    bench = sub.add_parser("bench", help="run a benchmark")
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT")
    bench_sub.required = True
    sim = bench_sub.add_parser("sim", help="simulator speed: real-time factor, messages/s")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument("--servers", type=_positive_int, default=5)
    sim.add_argument("--idle-seconds", type=_positive_float, default=600.0,
                     help="virtual seconds of the idle run (default 600)")
    sim.add_argument("--loaded-seconds", type=_positive_float, default=20.0,
                     help="virtual seconds of the loaded run (default 20)")
    sim.add_argument("--rate", type=_positive_int, default=2000,
                     help="proposals per virtual second in the loaded run (default 2000)")
    sim.set_defaults(func=_cmd_bench_sim)

    _add_operator_commands(sub)
    _add_run_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"raftsim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
