"""Mutual TLS between live servers, HTTPS for clients: who is let in, who is named by
what, and a one-command TLS cluster that Nomad's clients (our CLI, python-nomad) use."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nomad
import pytest

from raftsim.core.messages import Message, RequestVote
from raftsim.live.tls import (
    ClusterCertificates,
    PeerIdentityError,
    make_cluster_certificates,
    peer_identity,
)
from raftsim.live.transport import HELLO, PROTOCOL_VERSION, LinkSettings, TcpTransport
from raftsim.wire import Frame, Notification, encode_frame, encode_message
from tests.livecluster import cluster_command, free_ports, until_async

FAST = LinkSettings(idle_timeout=2.0, frame_timeout=1.0, backoff_min=0.01, backoff_max=0.1)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> ClusterCertificates:
    return make_cluster_certificates(tmp_path_factory.mktemp("tls"), ["a", "b", "c"])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> ClusterCertificates:
    """Certificates with the same names from another CA."""
    return make_cluster_certificates(tmp_path_factory.mktemp("foreign"), ["a", "b", "c"])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []

    def receive_message(self, source: str, message: Message) -> None:
        self.messages.append((source, message))

    def receive_frame(self, source: str, frame: Frame, connection: object = None) -> None:
        pass

    def connection_closed(self, connection: object) -> None:
        pass


def _names(certificate: Path) -> list[tuple[str, str]]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [("DNS", name) for name in san.get_values_for_type(x509.DNSName)]


def test_a_server_certificate_names_one_server_of_the_region(
        certificates: ClusterCertificates) -> None:
    cert, _ = certificates.servers["b"]
    assert peer_identity({"subjectAltName": tuple(_names(cert))}, "global") == "b"
    with pytest.raises(PeerIdentityError, match="server.europe.nomad"):
        peer_identity({"subjectAltName": tuple(_names(cert))}, "europe")
    with pytest.raises(PeerIdentityError, match="server.global.nomad"):
        peer_identity({"subjectAltName": tuple(_names(certificates.cli_cert))}, "global")
    two = (("DNS", "server.global.nomad"), ("DNS", "a.server.global.nomad"),
           ("DNS", "b.server.global.nomad"))
    with pytest.raises(PeerIdentityError, match="exactly one"):
        peer_identity({"subjectAltName": two}, "global")
    with pytest.raises(PeerIdentityError, match="no certificate"):
        peer_identity(None, "global")
    assert oct(certificates.cli_key.stat().st_mode & 0o777) == "0o600"


class Mesh:
    """TLS transports on loopback that know each other's addresses."""

    def __init__(self, certificates: ClusterCertificates, ids: str = "ab") -> None:
        self.certificates = certificates
        self.ports = dict(zip(ids, free_ports(len(ids)), strict=True))
        self.inboxes = {sid: Inbox() for sid in ids}
        self.transports: dict[str, TcpTransport] = {}

    def address(self, sid: str) -> str:
        return f"127.0.0.1:{self.ports[sid]}"

    async def start(self, sid: str) -> TcpTransport:
        transport = TcpTransport(
            sid, f"{sid}.global", loop=asyncio.get_running_loop(),
            peers={p: self.address(p) for p in self.ports if p != sid}, settings=FAST,
            tls=self.certificates.agent_config(sid))
        transport.follow(self.inboxes[sid], lambda: (), lambda peer: None)
        await transport.start("127.0.0.1", self.ports[sid])
        self.transports[sid] = transport
        return transport

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()


def _client_context(certificates: ClusterCertificates, cert: Path | None,
                    key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.ca_cert))
    context.check_hostname = False
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def _hung_up(port: int, context: ssl.SSLContext, payload: bytes) -> bool:
    """Connect with ``context``, send ``payload``: True if the server hangs up without
    a word (during the handshake or after the payload)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                       server_hostname="server.global.nomad")
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        writer.write(payload)
        data = await asyncio.wait_for(reader.read(), 5.0)
        return data == b""
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        writer.close()


async def test_servers_speak_mutual_tls_and_know_each_other_by_certificate(
        certificates: ClusterCertificates) -> None:
    mesh = Mesh(certificates)
    try:
        a = await mesh.start("a")
        b = await mesh.start("b")
        await until_async(lambda: a.connected() == ["b"] and b.connected() == ["a"], 5.0)
        assert a._links["b"].certified == "b" and b._links["a"].certified == "a"
        assert a._links["b"].writer.get_extra_info("ssl_object") is not None
        a.send("b", encode_message(RequestVote(5, "a", "b", 0, 0, True, False)))
        await until_async(lambda: bool(mesh.inboxes["b"].messages), 5.0)
    finally:
        await mesh.close()


async def test_who_may_not_connect(certificates: ClusterCertificates,
                                   foreign: ClusterCertificates,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """No certificate, another CA's, the CLI's, or a server's with a hello claiming
    another id: each connection is refused, and nothing reaches the server."""
    mesh = Mesh(certificates, "abc")
    try:
        b = await mesh.start("b")
        port = mesh.ports["b"]
        hello_as_a = encode_frame(Notification(HELLO, [PROTOCOL_VERSION, "a", "a.global"]))
        with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
            assert await _hung_up(port, _client_context(certificates, None, None), hello_as_a)
            foreign_cert, foreign_key = foreign.servers["a"]
            context = _client_context(certificates, foreign_cert, foreign_key)
            assert await _hung_up(port, context, hello_as_a)
            cli = _client_context(certificates, certificates.cli_cert, certificates.cli_key)
            assert await _hung_up(port, cli, hello_as_a)
            c_cert, c_key = certificates.servers["c"]
            as_c = _client_context(certificates, c_cert, c_key)
            assert await _hung_up(port, as_c, hello_as_a)
            await until_async(lambda: "certificate names 'c'" in caplog.text, 5.0)
        assert "does not name 'server.global.nomad'" in caplog.text
        assert b.connected() == [] and mesh.inboxes["b"].messages == []
    finally:
        await mesh.close()


async def test_a_server_of_another_configuration_is_refused(
        certificates: ClusterCertificates, caplog: pytest.LogCaptureFixture) -> None:
    """"c" holds a valid certificate of the CA, but "b" is configured with "a" only."""
    mesh = Mesh(certificates, "ab")
    try:
        b = await mesh.start("b")
        c_cert, c_key = certificates.servers["c"]
        hello = encode_frame(Notification(HELLO, [PROTOCOL_VERSION, "c", "c.global"]))
        with caplog.at_level(logging.WARNING, logger="raftsim.live.transport"):
            assert await _hung_up(mesh.ports["b"],
                                  _client_context(certificates, c_cert, c_key), hello)
        assert "'c' is not in this server's configuration" in caplog.text
        assert b.connected() == []
    finally:
        await mesh.close()


async def test_with_tls_a_peer_that_redials_replaces_its_old_connection(
        certificates: ClusterCertificates) -> None:
    """The identity is proven, so a new connection dialed by the same server is that
    server restarting: it takes over, and the pair ends with one connection again."""
    mesh = Mesh(certificates)
    try:
        a = await mesh.start("a")
        b = await mesh.start("b")
        await until_async(lambda: a.connected() == ["b"] and b.connected() == ["a"], 5.0)
        old = b._links["a"]
        assert old.dialer() == "a"
        a._links["b"].close("a test drops it")  # "a" redials
        await until_async(lambda: b._links.get("a") not in (None, old)
                          and b.connected() == ["a"] and a.connected() == ["b"], 5.0)
        assert old.closed
    finally:
        await mesh.close()


# ---------------------------------------------------------------------- processes


def _https(url: str, context: ssl.SSLContext | None, method: str = "GET",
           body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_raftsim_cluster_tls_is_one_command_and_nomads_clients_use_it(
        tmp_path: Path) -> None:
    with cluster_command(tmp_path, tls=True) as (_, ready):
        files: dict[str, Any] = ready["tls"]
        leader = next(s for s in ready["servers"] if s["id"] == ready["leader"])
        follower = next(s for s in ready["servers"] if s["id"] != ready["leader"])
        context = ssl.create_default_context(cafile=files["ca_cert"])
        # a write through a follower (forwarded over mutual TLS) and a read
        url = f"https://{follower['http']}/v1/kv/greeting"
        assert _https(url, context, "PUT", b"hello") == (200, b"true")
        assert _https(url, context) == (200, b"hello")
        # plain HTTP on an HTTPS port gets nowhere; neither does an unverified server
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{follower['http']}/v1/status/leader", timeout=5)
        with pytest.raises(urllib.error.URLError):
            _https(url, ssl.create_default_context())
        # python-nomad with verify= and cert=
        host, port = leader["http"].rsplit(":", 1)
        client = nomad.Nomad(host=host, port=int(port), secure=True, verify=files["ca_cert"],
                             cert=(files["cli_cert"], files["cli_key"]), timeout=10)
        configuration = client.operator.get_configuration()
        assert sorted(s["ID"] for s in configuration["Servers"]) == ["s1", "s2", "s3"]
        # the operator CLI with Nomad's environment variables, and with its flags
        env = {**os.environ, "NOMAD_ADDR": f"https://{leader['http']}",
               "NOMAD_CACERT": files["ca_cert"], "NOMAD_CLIENT_CERT": files["cli_cert"],
               "NOMAD_CLIENT_KEY": files["cli_key"]}
        listed = subprocess.run([sys.executable, "-m", "raftsim.cli", "operator", "raft",
                                 "list-peers"], env=env, capture_output=True, timeout=30)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.decode().count(".global") == 3
        bare = {k: v for k, v in env.items() if not k.startswith("NOMAD_")}
        flags = subprocess.run([sys.executable, "-m", "raftsim.cli", "operator", "raft",
                                "list-peers", f"-address=https://{leader['http']}",
                                f"-ca-cert={files['ca_cert']}",
                                f"-client-cert={files['cli_cert']}",
                                f"-client-key={files['cli_key']}"],
                               env=bare, capture_output=True, timeout=30)
        assert flags.returncode == 0, flags.stderr
        unverified = subprocess.run([sys.executable, "-m", "raftsim.cli", "operator", "raft",
                                     "list-peers", f"-address=https://{leader['http']}"],
                                    env=bare, capture_output=True, timeout=30)
        assert unverified.returncode == 1
        assert b"CERTIFICATE_VERIFY_FAILED" in unverified.stderr
        skipping = subprocess.run([sys.executable, "-m", "raftsim.cli", "operator", "raft",
                                   "list-peers", f"-address=https://{leader['http']}"],
                                  env={**bare, "NOMAD_SKIP_VERIFY": "true"},
                                  capture_output=True, timeout=30)
        assert skipping.returncode == 0, skipping.stderr
        # the files are where the data directory is, and the servers' RPC needs them
        assert Path(files["ca_cert"]).parent == tmp_path / "data" / "tls"
        assert json.loads(_https(f"https://{leader['http']}/v1/status/peers", context)[1])
