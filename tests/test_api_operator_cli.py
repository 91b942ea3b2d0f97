"""`raftsim operator raft list-peers|remove-peer`: Nomad's CLI, against loopback servers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftsim.api.operator_cli import TlsOptions, UsageError, columnize, peers_table
from raftsim.api.standin import StandIn
from raftsim.cli import main
from raftsim.live.tls import make_cluster_certificates

TOKEN = "cli-management-token"
#: node names whose order differs from the ids' order, so sorting shows
NAMES = {"s1": "zeta.global", "s2": "alpha.global", "s3": "mid.global"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_CACERT", "NOMAD_CLIENT_CERT",
                 "NOMAD_CLIENT_KEY", "NOMAD_SKIP_VERIFY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with StandIn(3, seed=5, acl_token=TOKEN, node_names=NAMES) as s:
        s.leader()
        yield s


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_peers_prints_nomads_table_sorted_by_node(
        standin: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    leader = standin.leader()
    code, out, err = run(["operator", "raft", "list-peers", f"-address={standin.url('s1')}",
                          f"-token={TOKEN}"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["alpha.global", "mid.global", "zeta.global"]
    assert [r[1] for r in rows] == ["s2", "s3", "s1"]
    for _node, sid, address, state, voter, protocol in rows:
        assert address == standin.cluster.addresses[sid]
        assert state == ("leader" if sid == leader else "follower")
        assert (voter, protocol) == ("true", "3")
    # columns line up: every row starts each column where the header does
    starts = [lines[0].index(h) for h in ("ID", "Address", "State", "Voter", "RaftProtocol")]
    for line in lines[1:]:
        assert all(line[i - 2:i] == "  " and line[i] != " " for i in starts)


@pytest.mark.parametrize("flag", ["-stale", "-stale=true", "--stale", "--stale=1",
                                  "-stale=false"])
def test_list_peers_stale_flag_spellings(standin: StandIn, flag: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["operator", "raft", "list-peers", flag,
                        f"--address={standin.url('s2')}", "--token", TOKEN], capsys)
    assert code == 0
    assert len(out.splitlines()) == 4


def test_nomad_addr_and_nomad_token_from_the_environment(
        standin: StandIn, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NOMAD_ADDR", standin.url("s3"))
    monkeypatch.setenv("NOMAD_TOKEN", TOKEN)
    code, out, _ = run(["operator", "raft", "list-peers"], capsys)
    assert code == 0 and "alpha.global" in out
    # flags win over the environment
    code, _, err = run(["operator", "raft", "list-peers", "-token=wrong"], capsys)
    assert code == 1
    assert err.strip() == ("Failed to retrieve raft configuration: Unexpected response code: "
                           "403 (Permission denied)")
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:1")
    code, out, _ = run(["operator", "raft", "list-peers", f"-address={standin.url('s1')}"],
                       capsys)
    assert code == 0
    monkeypatch.delenv("NOMAD_TOKEN")
    code, _, err = run(["operator", "raft", "list-peers", f"-address={standin.url('s1')}"],
                       capsys)
    assert code == 1 and "403 (Permission denied)" in err


def test_an_unreachable_address_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = run(["operator", "raft", "list-peers", f"-address=http://127.0.0.1:{port}"],
                         capsys)
    assert code == 1 and out == ""
    assert err.startswith("Failed to retrieve raft configuration: GET ")
    assert "refused" in err.lower()


def test_remove_peer_errors_and_success(standin: StandIn,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    url, token = f"-address={standin.url('s1')}", f"-token={TOKEN}"
    code, out, err = run(["operator", "raft", "remove-peer", "-peer-id=nobody", url, token],
                         capsys)
    assert (code, out) == (1, "")
    assert err.strip() == ('Error removing peer: Unexpected response code: 500 '
                           '(id "nobody" was not found in the Raft configuration)')
    code, out, err = run(["operator", "raft", "remove-peer", "-peer-address=127.0.0.1:1", url,
                          token], capsys)
    assert code == 1
    assert '(address "127.0.0.1:1" was not found in the Raft configuration)' in err
    code, out, err = run(["operator", "raft", "remove-peer", "-peer-id=s3", url], capsys)
    assert code == 1 and "403 (Permission denied)" in err
    leader = standin.leader()
    victim = next(s for s in standin.cluster.ids if s != leader)
    code, out, err = run(["operator", "raft", "remove-peer", f"-peer-id={victim}", url, token],
                         capsys)
    assert (code, out, err) == (0, f'Removed peer with id "{victim}"\n', "")
    code, out, _ = run(["operator", "raft", "list-peers", url, token], capsys)
    assert victim not in out and len(out.splitlines()) == 3
    other = next(s for s in standin.cluster.ids if s not in (leader, victim))
    address = standin.cluster.addresses[other]
    code, out, err = run(["operator", "raft", "remove-peer", f"--peer-address={address}", url,
                          token], capsys)
    assert (code, out, err) == (0, f'Removed peer with address "{address}"\n', "")


@pytest.mark.parametrize("argv", [
    ["operator", "raft", "remove-peer"],
    ["operator", "raft", "remove-peer", "-peer-id=a", "-peer-address=1.2.3.4:1"],
    ["operator", "raft", "list-peers", "-bogus"],
    ["operator", "raft", "list-peers", "extra"],
    ["operator", "raft", "list-peers", "-stale=maybe"],
    ["operator", "raft", "list-peers", "-address=ftp://127.0.0.1:4646"],
    ["operator", "raft", "list-peers", "-address=http://127.0.0.1:notaport"],
    ["operator", "raft"],
    ["operator"],
])
def test_usage_errors_exit_2_with_a_message(argv: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert "error:" in err


def test_table_format() -> None:
    assert columnize([["a", "bb", "c"], ["ddd", "e", "ff"]]) == "a    bb  c\nddd  e   ff"
    table = peers_table({"Servers": [
        {"Node": "b", "ID": "2", "Address": "x:1", "Leader": True, "Voter": True,
         "RaftProtocol": "3"},
        {"Node": "a", "ID": "1", "Address": "y:1", "Leader": False, "Voter": False,
         "RaftProtocol": "3"}]})
    assert table.splitlines() == [
        "Node  ID  Address  State     Voter  RaftProtocol",
        "a     1   y:1      follower  false  3",
        "b     2   x:1      leader    true   3",
    ]


def test_tls_options_come_from_nomads_flags_or_its_environment(tmp_path: Path) -> None:
    certificates = make_cluster_certificates(tmp_path, ["s1"])
    ca, cli, key = (str(certificates.ca_cert), str(certificates.cli_cert),
                    str(certificates.cli_key))
    env = {"NOMAD_CACERT": "/env/ca.pem", "NOMAD_CLIENT_CERT": cli, "NOMAD_CLIENT_KEY": key,
           "NOMAD_SKIP_VERIFY": "1"}
    assert TlsOptions.resolve({**env, "NOMAD_CACERT": ca}) == TlsOptions(ca, cli, key, True)
    assert TlsOptions.resolve(env, ca_cert=ca, skip_verify=False) == TlsOptions(
        ca, cli, key, False)
    with pytest.raises(UsageError, match="cannot use the TLS files"):
        TlsOptions.resolve(env)
    assert TlsOptions.resolve({}) == TlsOptions()
    with pytest.raises(UsageError, match="NOMAD_SKIP_VERIFY"):
        TlsOptions.resolve({"NOMAD_SKIP_VERIFY": "maybe"})
    with pytest.raises(UsageError, match="needs its key"):
        TlsOptions.resolve({}, client_cert="/cli.pem")


def test_unusable_tls_files_are_a_usage_error(
        standin: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["operator", "raft", "list-peers", "-address=https://127.0.0.1:1",
                        "-ca-cert=/nonexistent/ca.pem"], capsys)
    assert code == 2 and "cannot use the TLS files" in err
