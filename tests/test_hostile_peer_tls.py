"""The hostile peer against a TLS cluster (``raftsim cluster --tls``: mutual TLS on RPC,
HTTPS for clients): from a socket that cannot prove a server identity, every attack of
``test_hostile_peer.py`` — and the well-formed ones plain RPC cannot refuse, since there
the hello is not authenticated — fails to change any data or leadership.

The attacker tries four ways in, to every server's RPC port: plain TCP, TLS with no
client certificate, TLS with the cluster's own CLI certificate (valid for HTTPS, names no
server) and TLS with a server certificate for the same name from another CA. Each says
hello as a member (the leader itself, for the forged answers and TimeoutNow) and sends
well-formed messages with a newer term: entries that write a key nobody wrote, a snapshot
that would replace the state, a vote request with a huge term, a TimeoutNow storm, and
forged msgpack-rpc responses while clients' writes are being forwarded. Every attempt
must end with the server hanging up; afterwards the leader and term are the same, every
acknowledged write is on every server, and no forged key is served.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.messages import (
    AppendEntries,
    Entry,
    EntryKind,
    InstallSnapshot,
    RequestVote,
    TimeoutNow,
)
from raftsim.live.tls import ClusterCertificates, make_cluster_certificates
from raftsim.live.transport import HELLO, PROTOCOL_VERSION
from raftsim.runtime.kv import encode_put
from raftsim.wire import Notification, Response, encode_frame, encode_message
from tests.livecluster import cluster_command, wait_until

#: keys only the attacker writes: no server may ever serve one
FORGED = ("forged", "forged-snap")
#: how long a server may take to hang up on an attempt (seconds)
HANG_UP_WITHIN = 10.0


class TlsCluster:
    """What the ready file of ``raftsim cluster --tls`` says, and HTTPS to it."""

    def __init__(self, ready: dict[str, Any]) -> None:
        self.servers = {s["id"]: s for s in ready["servers"]}
        self.files: dict[str, str] = ready["tls"]
        self.context = ssl.create_default_context(cafile=self.files["ca_cert"])
        self.acked: dict[str, bytes] = {}

    def https(self, sid: str, method: str, path: str, body: bytes | None = None
              ) -> tuple[int, bytes]:
        url = f"https://{self.servers[sid]['http']}{path}"
        request = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stats(self, sid: str) -> dict[str, Any]:
        status, body = self.https(sid, "GET", "/v1/agent/self")
        assert status == 200, body
        return dict(json.loads(body)["stats"]["raft"])

    def leader(self) -> str | None:
        seen = set()
        for sid in self.servers:
            status, body = self.https(sid, "GET", "/v1/status/leader?stale")
            seen.add(json.loads(body) if status == 200 else None)
        if len(seen) != 1 or None in seen or "" in seen:
            return None
        address = seen.pop()
        return next(sid for sid, s in self.servers.items() if s["rpc"] == address)

    def term(self) -> int:
        terms = {int(self.stats(sid)["term"]) for sid in self.servers}
        assert len(terms) == 1, terms
        return terms.pop()

    def rpc(self, sid: str) -> tuple[str, int]:
        host, _, port = self.servers[sid]["rpc"].rpartition(":")
        return host, int(port)

    def write(self, via: str, key: str, value: bytes) -> None:
        status, body = self.https(via, "PUT", f"/v1/kv/{key}", value)
        assert (status, body) == (200, b"true"), (via, key, status, body)
        self.acked[key] = value

    def served(self, sid: str, key: str) -> bytes | None:
        status, body = self.https(sid, "GET", f"/v1/kv/{urllib.parse.quote(key)}?stale")
        assert status in (200, 404), (sid, key, status, body)
        return body if status == 200 else None

    def assert_no_write_lost_and_nothing_forged(self) -> None:
        for sid in self.servers:
            wait_until(lambda sid=sid: all(self.served(sid, k) == v
                                           for k, v in self.acked.items()),
                       15.0, f"every acknowledged write on {sid}")
            for key in FORGED:
                assert self.served(sid, key) is None, (sid, key)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    root = Path(tmp_path_factory.mktemp("hostile-tls"))
    with cluster_command(root, tls=True) as (_, ready):
        live = TlsCluster(ready)
        wait_until(live.leader, 30.0, "an agreed leader")
        for n in range(4):
            live.write(sorted(live.servers)[n % 3], f"k{n}", b"v%d" % n)
        yield live


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> ClusterCertificates:
    """Server certificates with the cluster's names, from another CA."""
    return make_cluster_certificates(tmp_path_factory.mktemp("foreign"), ["s1", "s2", "s3"])


def ways_in(cluster: TlsCluster, foreign: ClusterCertificates, claimed: str
            ) -> dict[str, ssl.SSLContext | None]:
    """Every way a stranger can open the RPC port: None is plain TCP."""

    def context(cert: str | Path | None = None, key: str | Path | None = None
                ) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=cluster.files["ca_cert"])
        ctx.check_hostname = False
        if cert is not None and key is not None:
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    foreign_cert, foreign_key = foreign.servers[claimed]
    return {"plain TCP": None, "TLS without a certificate": context(),
            "TLS with the CLI certificate": context(cluster.files["cli_cert"],
                                                    cluster.files["cli_key"]),
            "TLS with another CA's server certificate": context(foreign_cert, foreign_key)}


def attempt(address: tuple[str, int], context: ssl.SSLContext | None, claimed: str,
            payload: bytes) -> str:
    """Connect, say hello as ``claimed``, send ``payload``; how the server ended it."""
    raw = socket.create_connection(address, timeout=HANG_UP_WITHIN)
    sock: socket.socket = raw
    try:
        if context is not None:
            try:
                sock = context.wrap_socket(raw, server_hostname="server.global.nomad")
            except (ssl.SSLError, OSError) as exc:
                return f"handshake refused ({type(exc).__name__})"
        hello = encode_frame(Notification(HELLO, [PROTOCOL_VERSION, claimed,
                                                  f"{claimed}.global"]))
        try:
            sock.sendall(hello + payload)
        except (ssl.SSLError, OSError) as exc:
            return f"closed while sending ({type(exc).__name__})"
        deadline = time.monotonic() + HANG_UP_WITHIN
        while time.monotonic() < deadline:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            except (ssl.SSLError, OSError) as exc:
                return f"closed ({type(exc).__name__})"
            if not data:
                return "closed"
            # A plain-TCP hello on a TLS port may draw a TLS alert: bytes, then the end.
        raise AssertionError(f"{address} kept a stranger's connection open")
    finally:
        sock.close()


def forged_messages(cluster: TlsCluster, target: str, claimed: str) -> bytes:
    """Well-formed messages with a newer term, as a member would send them."""
    term = cluster.term()
    last = int(cluster.stats(target)["last_log_index"])
    config = encode_indexed(last + 100, Configuration(
        tuple(ServerInfo(sid, s["rpc"]) for sid, s in sorted(cluster.servers.items()))))
    state = msgpack.packb([last + 100, [["forged-snap", b"x", last + 100, last + 100]]],
                          use_bin_type=True)
    messages = [
        AppendEntries(term + 1, claimed, target, last, term,
                      (Entry(term + 1, last + 1, EntryKind.COMMAND,
                             encode_put("forged", b"x")),), last + 1),
        InstallSnapshot(term + 1, claimed, target, last + 100, term + 1, config, state),
        RequestVote(2**62, claimed, target, 10**9, 2**62, False, True),
        *[TimeoutNow(term, claimed, target) for _ in range(50)],
    ]
    return b"".join(encode_message(m) for m in messages)


def forged_answers() -> bytes:
    """Answers to the msgpack-rpc calls a follower forwards to the leader: ``true``
    for a write, a value nobody wrote for a read."""
    return b"".join(encode_frame(Response(msgid, None, result))
                    for msgid in range(1, 400) for result in (True, [200, b"forged"]))


def test_a_stranger_changes_no_data_and_no_leadership_on_a_tls_cluster(
        cluster: TlsCluster, foreign: ClusterCertificates) -> None:
    leader = cluster.leader()
    assert leader is not None
    term = cluster.term()
    followers = sorted(sid for sid in cluster.servers if sid != leader)
    # Clients' writes are forwarded by a follower while forged answers arrive.
    writing = threading.Thread(target=lambda: [cluster.write(followers[n % 2], f"w{n}",
                                                             b"w%d" % n) for n in range(20)])
    writing.start()
    outcomes: dict[tuple[str, str, str], str] = {}
    try:
        for target in sorted(cluster.servers):
            claimed = leader if target != leader else followers[0]
            for way, context in ways_in(cluster, foreign, claimed).items():
                for what, payload in (("messages", forged_messages(cluster, target, claimed)),
                                      ("answers", forged_answers())):
                    outcomes[(target, way, what)] = attempt(cluster.rpc(target), context,
                                                            claimed, payload)
    finally:
        writing.join(60)
    assert not writing.is_alive()
    assert len(outcomes) == 3 * 4 * 2  # every attempt ended with the server hanging up
    assert cluster.leader() == leader and cluster.term() == term
    cluster.write(followers[0], "after", b"still committing")
    cluster.assert_no_write_lost_and_nothing_forged()
