"""``raftsim agent``, ``raftsim cluster`` and ``raftsim bench live``: their arguments, the
launcher's plan and ready file, and how an agent starts, logs, stops and refuses."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from raftsim.cli import UsageError, _acl_token, build_parser, main
from raftsim.live.agent import Agent, AgentConfig
from raftsim.live.launcher import (
    ACL_TOKEN_ENV,
    ServerSpec,
    agent_command,
    plan_cluster,
    write_ready_file,
)
from raftsim.runtime.kv import encode_put
from tests.livecluster import free_ports, until_async

AGENT = ["agent", "--id", "s1", "--node-name", "s1.global", "--rpc", "127.0.0.1:4647",
         "--http", "127.0.0.1:4646", "--data-dir", "/tmp/x"]


def test_agent_arguments_parse() -> None:
    args = build_parser().parse_args(
        [*AGENT, "--peer", "s2=127.0.0.2:4647", "--peer", "s3=127.0.0.3:4647", "--bootstrap",
         "--fsync", "never", "--snapshot-threshold", "100"])
    assert args.peer == [("s2", "127.0.0.2:4647"), ("s3", "127.0.0.3:4647")]
    assert (args.bootstrap, args.fsync, args.snapshot_threshold) == (True, "never", 100)
    assert args.acl_token is None and args.rpc_idle_timeout == 5.0


@pytest.mark.parametrize("extra", [
    ["--peer", "s2"], ["--peer", "=127.0.0.1:1"], ["--peer", "s2=nohost"],
    ["--rpc", "4647"], ["--fsync", "sometimes"], ["--snapshot-threshold", "-1"],
    ["--rpc-idle-timeout", "0"],
])
def test_bad_agent_arguments_exit_2(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*AGENT, *extra])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--peer", "s1=127.0.0.2:4647"], "own id"),
    (["--peer", "s2=127.0.0.2:4647", "--peer", "s2=127.0.0.3:4647"], "same id twice"),
    (["--acl-token", "  "], "must not be empty"),
    (["--rpc", "0.0.0.0:4647"], "refusing to listen for RPC on 0.0.0.0:4647 without TLS"),
    (["--rpc", "10.1.2.3:4647"], "or pass --insecure-rpc"),
    (["--rpc", "myhost:4647"], "without TLS"),
    (["--ca-cert", "/nonexistent"], "missing --cert, --key"),
    (["--ca-cert", "/nonexistent/ca.pem", "--cert", "/x", "--key", "/y"],
     "--ca-cert /nonexistent/ca.pem: no such file"),
    (["--verify-server-hostname"], "needs --ca-cert, --cert and --key"),
])
def test_inconsistent_agent_arguments_are_usage_errors(
        extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*AGENT, *extra]) == 2
    assert message in capsys.readouterr().err


def test_insecure_rpc_allows_a_non_loopback_address_without_tls() -> None:
    for host in ("127.0.0.1", "127.0.0.5", "localhost", "[::1]"):
        AgentConfig(server_id="s1", node_name="n", rpc=f"{host}:4647", http="0.0.0.0:4646",
                    data_dir=Path("/tmp/x"))
    with pytest.raises(ValueError, match="without TLS"):
        AgentConfig(server_id="s1", node_name="n", rpc="0.0.0.0:4647", http="127.0.0.1:4646",
                    data_dir=Path("/tmp/x"))
    AgentConfig(server_id="s1", node_name="n", rpc="0.0.0.0:4647", http="127.0.0.1:4646",
                data_dir=Path("/tmp/x"), insecure_rpc=True)


def test_an_agent_asked_for_rpc_on_all_interfaces_without_tls_exits_2(
        tmp_path: Path) -> None:
    rpc, http = free_ports(2)
    result = subprocess.run(
        [sys.executable, "-m", "raftsim.cli", "agent", "--id", "s1", "--node-name", "s1.g",
         "--rpc", f"0.0.0.0:{rpc}", "--http", f"127.0.0.1:{http}", "--data-dir",
         str(tmp_path / "d"), "--bootstrap"], capture_output=True, timeout=30)
    assert result.returncode == 2
    assert b"refusing to listen for RPC" in result.stderr
    assert not (tmp_path / "d").exists()


def test_the_acl_token_comes_from_the_flag_or_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parser = build_parser()
    monkeypatch.setenv(ACL_TOKEN_ENV, "from-env")
    assert _acl_token(parser.parse_args(AGENT)) == "from-env"
    assert _acl_token(parser.parse_args([*AGENT, "--acl-token", "flag"])) == "flag"
    monkeypatch.delenv(ACL_TOKEN_ENV)
    assert _acl_token(parser.parse_args(AGENT)) is None
    monkeypatch.setenv(ACL_TOKEN_ENV, "")
    with pytest.raises(UsageError):
        _acl_token(parser.parse_args(AGENT))


def test_cluster_and_bench_arguments_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["cluster", "--servers", "5", "--base-port", "24000",
                              "--ready-file", "r.json", "--data-dir", "d"])
    assert (args.servers, args.base_port, args.ready_file, args.data_dir) == (
        5, 24000, "r.json", "d")
    args = parser.parse_args(["cluster"])
    assert (args.servers, args.base_port, args.data_dir) == (3, None, None)
    args = parser.parse_args(["bench", "live", "--json", "--compare", "pysyncobj"])
    assert (args.json, args.compare, args.seconds) == (True, "pysyncobj", 5.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "live", "--compare", "etcd"])


def test_the_cluster_plan_uses_nomads_ports_on_loopback_addresses() -> None:
    plan = plan_cluster(3, Path("d"))
    assert [(s.id, s.node, s.http, s.rpc) for s in plan] == [
        ("s1", "s1.global", "127.0.0.1:4646", "127.0.0.1:4647"),
        ("s2", "s2.global", "127.0.0.2:4646", "127.0.0.2:4647"),
        ("s3", "s3.global", "127.0.0.3:4646", "127.0.0.3:4647")]
    assert plan[1].data_dir == Path("d/s2")


def test_the_cluster_plan_with_a_base_port_uses_consecutive_ports() -> None:
    plan = plan_cluster(3, Path("d"), 24000)
    assert [(s.http, s.rpc) for s in plan] == [
        ("127.0.0.1:24000", "127.0.0.1:24001"), ("127.0.0.1:24002", "127.0.0.1:24003"),
        ("127.0.0.1:24004", "127.0.0.1:24005")]


@pytest.mark.parametrize("servers,base_port", [(0, None), (255, None), (3, 65531), (3, 0)])
def test_impossible_cluster_plans_are_refused(servers: int, base_port: int | None) -> None:
    with pytest.raises(ValueError):
        plan_cluster(servers, Path("d"), base_port)


def test_agent_commands_name_every_other_server_as_a_peer() -> None:
    plan = plan_cluster(3, Path("d"), 24000)
    command = agent_command(plan[0], plan, fsync="never", extra=["--snapshot-threshold", "9"])
    assert command[:4] == [sys.executable, "-m", "raftsim.cli", "agent"]
    assert command.count("--peer") == 2
    assert "s2=127.0.0.1:24003" in command and "s3=127.0.0.1:24005" in command
    assert command[-3:] == ["--bootstrap", "--snapshot-threshold", "9"]


def test_the_ready_file_is_written_whole(tmp_path: Path) -> None:
    plan = plan_cluster(2, tmp_path, 24000)
    path = tmp_path / "ready.json"
    write_ready_file(path, plan, [11, 12], plan[1])
    assert json.loads(path.read_text()) == {
        "servers": [{"id": "s1", "node": "s1.global", "http": "127.0.0.1:24000",
                     "rpc": "127.0.0.1:24001", "pid": 11},
                    {"id": "s2", "node": "s2.global", "http": "127.0.0.1:24002",
                     "rpc": "127.0.0.1:24003", "pid": 12}],
        "leader": "s2"}
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]


def _run_agent(tmp_path: Path, spec: ServerSpec) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(agent_command(spec, [spec]), capture_output=True, timeout=30)


def test_an_agent_whose_port_is_taken_exits_1_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http = free_ports(1)[0]
        spec = ServerSpec("s1", "s1.global", f"127.0.0.1:{http}", f"127.0.0.1:{port}",
                          tmp_path / "s1")
        done = _run_agent(tmp_path, spec)
    assert done.returncode == 1
    errors = [line for line in done.stderr.decode().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "s1: cannot start" in errors[0]


def test_an_agent_with_a_damaged_data_directory_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "hardstate.bin").write_bytes(b"\x00\x00\x00\x05garbage")
    rpc, http = free_ports(2)
    spec = ServerSpec("s1", "s1.global", f"127.0.0.1:{http}", f"127.0.0.1:{rpc}",
                      tmp_path / "s1")
    done = _run_agent(tmp_path, spec)
    assert done.returncode == 1
    assert b"must be repaired or removed" in done.stderr


async def test_an_agent_logs_each_state_change_and_keeps_its_data_across_stops(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rpc, http = free_ports(2)
    config = AgentConfig(server_id="solo", node_name="solo.global", rpc=f"127.0.0.1:{rpc}",
                         http=f"127.0.0.1:{http}", data_dir=tmp_path / "solo",
                         bootstrap=True, fsync="always")
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.INFO, logger="raftsim.live.agent"):
        agent = Agent(config, loop=loop)
        await agent.start()
        server = agent.server
        assert server is not None
        await until_async(lambda: server.role is not None and server.role.value == "leader",
                          10.0)
        assert await server.propose(encode_put("k", b"v"))
        await agent.stop()
    states = [r.getMessage() for r in caplog.records if ": term=" in r.getMessage()]
    assert states[0] == "solo: term=1 role=follower leader=none"
    assert states[-1] == "solo: term=2 role=leader leader=solo"
    assert len(states) == len(set(states))  # one line per change, no repeats

    again = Agent(config, loop=loop)  # --bootstrap again: the data directory wins
    await again.start()
    try:
        assert again.server is not None and again.server.kv.get("k") is not None
    finally:
        await again.stop()
