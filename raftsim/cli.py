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
                           loaded_seconds=args.loaded_seconds, rate=args.rate,
                           repeats=args.repeats)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        for key, value in result.as_dict().items():
            print(f"{key:>24}: {value}")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raftsim.compiled import COMPILED_MODULES, build, default_directory

    directory = Path(args.directory) if args.directory else default_directory()
    try:
        build(directory)
    except (Exception, SystemExit) as exc:  # setuptools exits on a compiler error
        print(f"raftsim: the compiled build failed: {exc}\nraftsim runs as plain Python",
              file=sys.stderr)
        return 1
    print(f"raftsim: compiled {', '.join(COMPILED_MODULES)} into {directory}")
    return 0


def _cmd_bench_snapshot(args: argparse.Namespace) -> int:
    from raftsim.bench.snapshot import run_snapshot_bench

    result = run_snapshot_bench(values=args.values, stalls=args.part in ("all", "stalls"),
                                catch_up=args.part in ("all", "catch-up"))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:>40}: {value}")
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


def _api_tls(args: argparse.Namespace) -> Any:
    from raftsim.api import operator_cli

    return operator_cli.TlsOptions.resolve(
        os.environ, ca_cert=args.ca_cert, client_cert=args.client_cert,
        client_key=args.client_key, skip_verify=args.tls_skip_verify)


def _cmd_operator_raft_list_peers(args: argparse.Namespace) -> int:
    from raftsim.api import operator_cli

    try:
        address = operator_cli.resolve_address(args.address, os.environ)
        tls = _api_tls(args)
        return operator_cli.list_peers(address=address,
                                       token=operator_cli.resolve_token(args.token, os.environ),
                                       stale=args.stale, out=sys.stdout, err=sys.stderr,
                                       tls=tls)
    except operator_cli.UsageError as exc:
        raise UsageError(str(exc)) from None


def _cmd_operator_raft_remove_peer(args: argparse.Namespace) -> int:
    from raftsim.api import operator_cli

    try:
        return operator_cli.remove_peer(
            address=operator_cli.resolve_address(args.address, os.environ),
            token=operator_cli.resolve_token(args.token, os.environ),
            peer_id=args.peer_id, peer_address=args.peer_address,
            out=sys.stdout, err=sys.stderr, tls=_api_tls(args))
    except operator_cli.UsageError as exc:
        raise UsageError(str(exc)) from None


def _speed(text: str) -> float:
    from raftsim.viz.ui_runner import MAX_SPEED, MIN_SPEED

    value = _positive_float(text)
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"must be from {MIN_SPEED} to {MAX_SPEED}, got {value}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (0 to 65535), got {value}")
    return value


def _cmd_ui(args: argparse.Namespace) -> int:
    from raftsim.viz.ui import serve_ui

    try:
        return serve_ui(servers=args.servers, seed=args.seed, scenario=args.scenario,
                        host=args.host, port=args.port, speed=args.speed,
                        max_sessions=args.max_sessions, lessons_dir=args.lessons)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _add_ui_command(sub: Any) -> None:
    ui = sub.add_parser(
        "ui", help="watch and break a simulated cluster in the browser",
        description="Serve a web page on this machine that shows a simulated cluster live "
                    "(servers, messages, logs, the operator API's answers, the story in "
                    "plain words) and lets you crash, pause and partition servers, write, "
                    "remove peers and transfer leadership.")
    ui.add_argument("--servers", type=_positive_int, default=5, help="servers (default 5)")
    ui.add_argument("--seed", type=_non_negative_int, default=0,
                    help="the seed of the run (default 0; a scenario file brings its own)")
    ui.add_argument("--scenario", metavar="FILE", default=None,
                    help="play this scenario file instead of an idle cluster")
    ui.add_argument("--port", type=_port, default=8080,
                    help="HTTP port (default 8080; 0 picks a free one)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--speed", type=_speed, default=0.05,
                    help="virtual seconds per wall second, 0.01 to 100 (default 0.05)")
    ui.add_argument("--max-sessions", type=_positive_int, default=32,
                    help="sessions at once, one per open page (default 32; one unwatched "
                         "for two minutes is closed)")
    ui.add_argument("--lessons", metavar="DIR", default=None,
                    help="the scenario files the page offers as lessons (default: this "
                         "checkout's scenarios/)")
    ui.set_defaults(func=_cmd_ui)


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
    parser.add_argument("-ca-cert", "--ca-cert", metavar="FILE", default=None,
                        help="the CA certificate to verify the server with "
                             "(default: $NOMAD_CACERT)")
    parser.add_argument("-client-cert", "--client-cert", metavar="FILE", default=None,
                        help="a client certificate (default: $NOMAD_CLIENT_CERT)")
    parser.add_argument("-client-key", "--client-key", metavar="FILE", default=None,
                        help="the client certificate's key (default: $NOMAD_CLIENT_KEY)")
    parser.add_argument("-tls-skip-verify", "--tls-skip-verify", nargs="?", const=True,
                        default=None, type=_go_bool, metavar="BOOL",
                        help="do not verify the server's certificate "
                             "(default: $NOMAD_SKIP_VERIFY)")


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


# ---------------------------------------------------------------- live world

def _host_port(text: str) -> str:
    from raftsim.live.transport import split_address

    try:
        split_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _peer(text: str) -> tuple[str, str]:
    server_id, sep, address = text.partition("=")
    if not sep or not server_id:
        raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT, got {text!r}")
    return server_id, _host_port(address)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _acl_token(args: argparse.Namespace) -> str | None:
    from raftsim.live.launcher import ACL_TOKEN_ENV

    token = args.acl_token if args.acl_token is not None else os.environ.get(ACL_TOKEN_ENV)
    if args.acl_token_file is not None:
        if args.acl_token is not None:
            raise UsageError("give --acl-token or --acl-token-file, not both")
        try:
            with open(args.acl_token_file, encoding="utf-8") as file:
                token = file.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --acl-token-file: {exc}") from None
    if token is not None and not token.strip():
        raise UsageError("the ACL token must not be empty")
    return token or None


def _tls_config(args: argparse.Namespace) -> Any:
    """The agent's TlsConfig from --ca-cert/--cert/--key (all or none), or None."""
    from pathlib import Path

    from raftsim.live.tls import TlsConfig

    given = [name for name in ("ca_cert", "cert", "key") if getattr(args, name) is not None]
    if not given:
        if args.verify_server_hostname:
            raise UsageError("--verify-server-hostname needs --ca-cert, --cert and --key")
        return None
    if len(given) != 3:
        missing = sorted({"ca_cert", "cert", "key"} - set(given))
        raise UsageError("TLS needs --ca-cert, --cert and --key together; missing "
                         + ", ".join("--" + m.replace("_", "-") for m in missing))
    try:
        return TlsConfig(Path(args.ca_cert), Path(args.cert), Path(args.key), args.region,
                         verify_server_hostname=args.verify_server_hostname)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _cmd_agent(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raftsim.live.agent import AgentConfig, run_agent
    from raftsim.live.transport import LinkSettings

    peers = dict(args.peer)
    if len(peers) != len(args.peer):
        raise UsageError("--peer names the same id twice")
    tls = _tls_config(args)
    try:
        config = AgentConfig(
            server_id=args.id, node_name=args.node_name, rpc=args.rpc, http=args.http,
            data_dir=Path(args.data_dir), peers=peers, bootstrap=args.bootstrap,
            acl_token=_acl_token(args), fsync=args.fsync,
            snapshot_threshold=args.snapshot_threshold, trailing_logs=args.trailing_logs,
            links=LinkSettings(idle_timeout=args.rpc_idle_timeout,
                               frame_timeout=args.rpc_frame_timeout),
            tls=tls, insecure_rpc=args.insecure_rpc)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return run_agent(config)


def _cmd_cluster(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raftsim.live.launcher import run_cluster

    try:
        return run_cluster(args.servers, data_dir=Path(args.data_dir) if args.data_dir else None,
                           acl_token=_acl_token(args),
                           ready_file=Path(args.ready_file) if args.ready_file else None,
                           base_port=args.base_port, fsync=args.fsync, tls=args.tls)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _cmd_bench_live(args: argparse.Namespace) -> int:
    from raftsim.bench.live import run_live_bench

    result = run_live_bench(seconds=args.seconds, compare=args.compare,
                            progress=None if args.json else sys.stderr, window=args.window,
                            repeats=args.repeats, latency_rate=args.latency_rate)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            if key != "details":
                print(f"{key:>36}: {value}")
        print(json.dumps(result["details"], indent=1))
    return 0


def _add_live_commands(sub: Any, bench_sub: Any) -> None:
    agent = sub.add_parser(
        "agent", help="run one live server (TCP RPC, HTTP API, data on disk)",
        description="Run one Raft server in this process: RPC with its peers over TCP, "
                    "Nomad's operator API over HTTP, its log and snapshots in --data-dir. "
                    "Logs one line per change of term, role or leader. SIGTERM stops it "
                    "cleanly.")
    agent.add_argument("--id", required=True, help="this server's id")
    agent.add_argument("--node-name", required=True, metavar="NAME",
                       help="this server's node name (e.g. s1.global)")
    agent.add_argument("--rpc", required=True, type=_host_port, metavar="HOST:PORT",
                       help="where the RPC listens; also its address in the configuration")
    agent.add_argument("--http", required=True, type=_host_port, metavar="HOST:PORT",
                       help="where the HTTP API listens")
    agent.add_argument("--peer", action="append", type=_peer, default=[],
                       metavar="ID=HOST:PORT", help="another server (repeat for each)")
    agent.add_argument("--data-dir", required=True, metavar="DIR",
                       help="the write-ahead log, hard state and snapshots")
    agent.add_argument("--bootstrap", action="store_true",
                       help="with an empty --data-dir, start as a founding member of "
                            "{this server} + the --peer servers")
    agent.add_argument("--acl-token", metavar="TOKEN", default=None,
                       help="turn ACLs on with this management token "
                            "(default: $RAFTSIM_ACL_TOKEN)")
    agent.add_argument("--acl-token-file", metavar="PATH", default=None,
                       help="read the management token from this file (keeps it out "
                            "of the process list, as $RAFTSIM_ACL_TOKEN does)")
    agent.add_argument("--fsync", choices=("always", "never"), default="always",
                       help="fsync before acknowledging (default), or never (benchmarks)")
    agent.add_argument("--snapshot-threshold", type=_non_negative_int, default=8192,
                       metavar="N", help="compact the log every N applied entries "
                                         "(default 8192; 0: never)")
    agent.add_argument("--trailing-logs", type=_non_negative_int, default=10240, metavar="N",
                       help="entries a compaction keeps before the snapshot, so a follower "
                            "this far behind catches up from the log (default 10240)")
    agent.add_argument("--rpc-idle-timeout", type=_positive_float, default=5.0,
                       metavar="SECONDS",
                       help="close an RPC connection silent this long (default 5)")
    agent.add_argument("--rpc-frame-timeout", type=_positive_float, default=5.0,
                       metavar="SECONDS",
                       help="close an RPC connection whose frame stays incomplete this long "
                            "(default 5)")
    tls = agent.add_argument_group(
        "TLS", "mutual TLS between servers and HTTPS, as Nomad's tls block (see docs/live.md)")
    tls.add_argument("--ca-cert", metavar="FILE", default=None,
                     help="the CA certificate (PEM) every server certificate chains to")
    tls.add_argument("--cert", metavar="FILE", default=None,
                     help="this server's certificate (PEM): names server.<region>.nomad "
                          "and <id>.server.<region>.nomad")
    tls.add_argument("--key", metavar="FILE", default=None,
                     help="this server's private key (PEM)")
    tls.add_argument("--verify-server-hostname", action="store_true",
                     help="also check, when dialing, that the server's certificate is "
                          "valid for server.<region>.nomad (Nomad's option)")
    tls.add_argument("--region", default="global",
                     help="the region the certificates name (default global)")
    agent.add_argument("--insecure-rpc", action="store_true",
                       help="allow RPC without TLS on a non-loopback address (only on a "
                            "network where every host is trusted)")
    agent.set_defaults(func=_cmd_agent)

    cluster = sub.add_parser(
        "cluster", help="run N live servers on loopback",
        description="Start N agent processes on loopback: server k on 127.0.0.k:4646 "
                    "(HTTP) and 127.0.0.k:4647 (RPC), as a Nomad server set would, or on "
                    "127.0.0.1 with consecutive ports from --base-port. Ctrl-C or SIGTERM "
                    "stops them all.")
    cluster.add_argument("--servers", type=_positive_int, default=3, help="(default 3)")
    cluster.add_argument("--data-dir", metavar="DIR", default=None,
                         help="one subdirectory per server (default: a temporary directory, "
                              "removed at exit)")
    cluster.add_argument("--acl-token", metavar="TOKEN", default=None,
                         help="turn ACLs on with this management token "
                              "(default: $RAFTSIM_ACL_TOKEN)")
    cluster.add_argument("--acl-token-file", metavar="PATH", default=None,
                         help="read the management token from this file (keeps it out "
                              "of the process list, as $RAFTSIM_ACL_TOKEN does)")
    cluster.add_argument("--ready-file", metavar="PATH", default=None,
                         help="once a leader is elected, write the servers and the leader "
                              "here as JSON")
    cluster.add_argument("--base-port", type=_positive_int, default=None, metavar="P",
                         help="put every server on 127.0.0.1: server k's HTTP on "
                              "P+2(k-1), its RPC on the next port")
    cluster.add_argument("--fsync", choices=("always", "never"), default="always")
    cluster.add_argument("--tls", action="store_true",
                         help="make a throw-away CA and certificates in the data directory "
                              "and run RPC (mutual TLS) and HTTP over TLS")
    cluster.set_defaults(func=_cmd_cluster)

    live = bench_sub.add_parser(
        "live", help="committed writes/s of a 3-process loopback cluster",
        description="Committed KV writes per second on a 3-server loopback cluster, "
                    "proposed in the leader's process with one log entry per command and "
                    "batched (fsync never, and batched with fsync always), and over HTTP; "
                    "commit latency at one fixed offered rate. Each figure is the median "
                    "of interleaved repeats; a run with a failed write or a leader change "
                    "makes the result invalid.")
    live.add_argument("--json", action="store_true", help="print one JSON object")
    live.add_argument("--compare", choices=("pysyncobj",), default=None,
                      help="also measure PySyncObj the same way, run for run (the same "
                           "command, durability, batching, window and latency rate)")
    live.add_argument("--seconds", type=_positive_float, default=5.0,
                      help="length of each measured run (default 5)")
    live.add_argument("--window", type=_positive_int, default=8000,
                      help="writes in flight in the closed loop (default 8000)")
    live.add_argument("--repeats", type=_positive_int, default=3,
                      help="interleaved repeats; figures are their medians (default 3)")
    live.add_argument("--latency-rate", type=_positive_int, default=2000,
                      help="the offered writes/s at which latency is measured, the same "
                           "for every system (default 2000)")
    live.set_defaults(func=_cmd_bench_live)


# ---------------------------------------------------------------- fuzz

def _cmd_fuzz(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raftsim.check.fuzz import FuzzOptions, FuzzUsageError, fuzz_main, list_bugs

    if args.list_bugs:
        list_bugs(sys.stdout)
        return 0
    try:
        options = FuzzOptions(
            seeds=args.seeds, start=args.start, servers=args.servers, duration=args.duration,
            clients=args.clients, workers=args.workers, shard=args.shard,
            bugs=tuple(dict.fromkeys(args.bug)), out=Path(args.out), dask=args.dask)
        return fuzz_main(options, as_json=args.json)
    except FuzzUsageError as exc:
        raise UsageError(str(exc)) from None


def _shard(text: str) -> tuple[int, int]:
    from raftsim.check.fuzz import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bug_name(text: str) -> str:
    from raftsim.core.bugs import BUGS

    if text not in BUGS:
        raise argparse.ArgumentTypeError(
            f"unknown bug switch {text!r}; known switches: {', '.join(sorted(BUGS))} "
            "(see --list-bugs)")
    return text


def _duration(text: str) -> float:
    value = _positive_float(text)
    if not value > 3.0:
        raise argparse.ArgumentTypeError(f"must be more than 3 virtual seconds, got {value:g}")
    return value


def _add_fuzz_command(sub: Any) -> None:
    fuzz = sub.add_parser(
        "fuzz", allow_abbrev=False, help="a fuzz campaign: random faults and clients per seed",
        description="VOPR-style campaign: each seed builds a random fault schedule and client "
                    "workload, runs it on a simulated cluster, checks Raft's safety "
                    "invariants after every event and linearizability at the end. Exit 0 "
                    "when every seed is clean; 1 at the first failing seed, after writing "
                    "DIR/seed-<S>.toml, a reduced scenario that `raftsim run` fails on.")
    fuzz.add_argument("--seeds", type=_positive_int, default=100, metavar="N",
                      help="how many seeds to run (default 100)")
    fuzz.add_argument("--start", type=_seed, default=0, metavar="S",
                      help="the first seed (default 0)")
    fuzz.add_argument("--servers", type=_positive_int, default=5, metavar="N",
                      help="servers per cluster (default 5)")
    fuzz.add_argument("--duration", type=_duration, default=30.0, metavar="T",
                      help="virtual seconds per seed (default 30)")
    fuzz.add_argument("--clients", type=_positive_int, default=3, metavar="N",
                      help="concurrent clients (default 3)")
    fuzz.add_argument("--workers", type=_positive_int, default=1, metavar="K",
                      help="worker processes (default 1)")
    fuzz.add_argument("--shard", type=_shard, default=(1, 1), metavar="I/N",
                      help="run only the I-th of N interleaved slices of the seeds "
                           "(e.g. 2/4 on the second of four machines)")
    fuzz.add_argument("--dask", default=None, metavar="ADDRESS",
                      help="run the seeds on the Dask cluster whose scheduler is at ADDRESS "
                           "(e.g. tcp://10.0.0.5:8786; needs the 'dask' extra); same "
                           "results as a local run")
    fuzz.add_argument("--bug", type=_bug_name, action="append", default=[], metavar="NAME",
                      help="switch on a core bug switch (repeatable; see --list-bugs)")
    fuzz.add_argument("--out", default="fuzz-out", metavar="DIR",
                      help="where a failing seed's reproducer goes (default fuzz-out)")
    fuzz.add_argument("--json", action="store_true",
                      help="print one JSON object instead of a progress bar and a report")
    fuzz.add_argument("--list-bugs", action="store_true",
                      help="list the bug switches and what each breaks, then exit")
    fuzz.set_defaults(func=_cmd_fuzz)


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
    sim.add_argument("--repeats", type=_positive_int, default=3,
                     help="interleaved rounds of floor, idle and loaded runs; figures are "
                          "their medians (default 3)")
    sim.set_defaults(func=_cmd_bench_sim)
    snapshot = bench_sub.add_parser(
        "snapshot", help="large state: event-loop stalls, a 200 MiB snapshot catch-up",
        description="With VALUES values of 512 KiB: the longest event-loop stall while a "
                    "snapshot is serialized, restored, assembled and written; and how long "
                    "a server started after the writes takes to catch up by a streamed "
                    "InstallSnapshot between three agent processes.")
    snapshot.add_argument("--json", action="store_true", help="print one JSON object")
    snapshot.add_argument("--values", type=_positive_int, default=400,
                          help="values of 512 KiB (default 400: 200 MiB)")
    snapshot.add_argument("--part", choices=("all", "stalls", "catch-up"), default="all")
    snapshot.set_defaults(func=_cmd_bench_snapshot)

    compile_ = sub.add_parser(
        "compile", help="compile the Raft core and the simulated network (needs mypy and a "
                        "C compiler; about 1.8x faster simulations)",
        description="Compile the modules every simulated message runs through into C "
                    "extensions with mypyc. raftsim uses them while their sources are "
                    "unchanged (RAFTSIM_COMPILED=0 turns them off); see raftsim/compiled.py.")
    compile_.add_argument("--directory", default=None,
                          help="where to put the build (default: inside the running "
                               "Python environment, where raftsim looks for it)")
    compile_.set_defaults(func=_cmd_compile)

    _add_operator_commands(sub)
    _add_live_commands(sub, bench_sub)
    _add_run_command(sub)
    _add_ui_command(sub)
    _add_fuzz_command(sub)
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
