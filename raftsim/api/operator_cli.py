"""``raftsim operator raft list-peers|remove-peer``: Nomad's CLI commands, against any
server that speaks the operator API (raftsim's or Nomad's).

Output, exit codes and environment follow Nomad's CLI: ``NOMAD_ADDR`` (default
``http://127.0.0.1:4646``) and ``NOMAD_TOKEN`` are used unless ``-address`` / ``-token``
are given; an API error is printed as Nomad's Go client words it, ``Unexpected response
code: <status> (<body>)``, with exit code 1.

HTTPS as Nomad's CLI does it: ``NOMAD_CACERT`` / ``-ca-cert`` (the CA to verify the
server with; default: the system's), ``NOMAD_CLIENT_CERT`` / ``-client-cert`` and
``NOMAD_CLIENT_KEY`` / ``-client-key`` (a client certificate, for servers that ask for
one), ``NOMAD_SKIP_VERIFY`` / ``-tls-skip-verify`` (do not verify the server at all).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

DEFAULT_ADDRESS = "http://127.0.0.1:4646"
#: seconds to wait for an answer (a removal waits for a commit: at most a few seconds)
TIMEOUT = 30.0


class UsageError(ValueError):
    """A command-line mistake (exit code 2)."""


class ApiCallError(Exception):
    """The request failed; the message is what Nomad's CLI would print after its prefix."""


def resolve_address(flag: str | None, env: Mapping[str, str]) -> str:
    address = flag if flag is not None else env.get("NOMAD_ADDR") or DEFAULT_ADDRESS
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid address {address!r}: expected http(s)://host:port")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UsageError(f"invalid address {address!r}: bad port") from None
    return address.rstrip("/")


def resolve_token(flag: str | None, env: Mapping[str, str]) -> str | None:
    token = flag if flag is not None else env.get("NOMAD_TOKEN")
    return token or None


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class TlsOptions:
    """Nomad's CLI TLS settings, from its flags or else its environment variables."""

    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False

    @classmethod
    def resolve(cls, env: Mapping[str, str], *, ca_cert: str | None = None,
                client_cert: str | None = None, client_key: str | None = None,
                skip_verify: bool | None = None) -> TlsOptions:
        if skip_verify is None:
            text = env.get("NOMAD_SKIP_VERIFY", "")
            if text and text not in _TRUE + _FALSE:
                raise UsageError(f"NOMAD_SKIP_VERIFY must be true or false, got {text!r}")
            skip_verify = text in _TRUE
        options = cls(ca_cert if ca_cert is not None else env.get("NOMAD_CACERT") or None,
                      client_cert if client_cert is not None
                      else env.get("NOMAD_CLIENT_CERT") or None,
                      client_key if client_key is not None
                      else env.get("NOMAD_CLIENT_KEY") or None,
                      skip_verify)
        if bool(options.client_cert) != bool(options.client_key):
            raise UsageError("a client certificate needs its key and a key its certificate "
                             "(-client-cert and -client-key, or NOMAD_CLIENT_CERT and "
                             "NOMAD_CLIENT_KEY)")
        if options.ca_cert or options.client_cert:
            options.context()  # a usage error now, not a failed request later
        return options

    def context(self) -> ssl.SSLContext:
        """The context for an https:// address; UsageError if a file cannot be used."""
        try:
            context = ssl.create_default_context(cafile=self.ca_cert)
            if self.skip_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.client_cert and self.client_key:
                context.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use the TLS files: {exc}") from None
        return context


def call(address: str, token: str | None, method: str, path: str,
         params: Sequence[tuple[str, str]] = (), tls: TlsOptions | None = None) -> bytes:
    """One request; the body of a 2xx answer, else ApiCallError."""
    query = urlencode(params)
    url = f"{address}{path}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("X-Nomad-Token", token)
    context = (tls or TlsOptions()).context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", errors="replace")
        raise ApiCallError(f"Unexpected response code: {exc.code} ({text})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiCallError(f'{method} "{url}": {reason}') from None


def columnize(rows: Sequence[Sequence[str]]) -> str:
    """ryanuber/columnize's SimpleFormat: columns padded to their widest cell, joined by
    two spaces, the last column unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def peers_table(configuration: Mapping[str, Any]) -> str:
    """Nomad's ``list-peers`` table, rows sorted by node name."""
    rows = [["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]]
    servers = sorted(configuration.get("Servers") or [],
                     key=lambda s: (str(s.get("Node", "")), str(s.get("ID", ""))))
    for s in servers:
        rows.append([str(s.get("Node", "")), str(s.get("ID", "")), str(s.get("Address", "")),
                     "leader" if s.get("Leader") else "follower",
                     "true" if s.get("Voter") else "false", str(s.get("RaftProtocol", ""))])
    return columnize(rows)


def list_peers(*, address: str, token: str | None, stale: bool, out: TextIO,
               err: TextIO, tls: TlsOptions | None = None) -> int:
    params = [("stale", "")] if stale else []
    try:
        body = call(address, token, "GET", "/v1/operator/raft/configuration", params, tls)
        configuration = json.loads(body)
        if not isinstance(configuration, dict):
            raise ApiCallError("the answer is not a Raft configuration")
    except (ApiCallError, ValueError) as exc:
        print(f"Failed to retrieve raft configuration: {exc}", file=err)
        return 1
    print(peers_table(configuration), file=out)
    return 0


def remove_peer(*, address: str, token: str | None, peer_id: str | None,
                peer_address: str | None, out: TextIO, err: TextIO,
                tls: TlsOptions | None = None) -> int:
    if not peer_id and not peer_address:
        raise UsageError("an address or id is required for the peer to remove "
                         "(-peer-id=ID or -peer-address=IP:port)")
    if peer_id and peer_address:
        raise UsageError("cannot give both an address and id")
    param = ("address", peer_address) if peer_address else ("id", peer_id or "")
    try:
        call(address, token, "DELETE", "/v1/operator/raft/peer", [param], tls)
    except ApiCallError as exc:
        print(f"Error removing peer: {exc}", file=err)
        return 1
    if peer_address:
        print(f'Removed peer with address "{peer_address}"', file=out)
    else:
        print(f'Removed peer with id "{peer_id}"', file=out)
    return 0
