"""Mutual TLS for live servers, the way Nomad does it (``tls { rpc = true, http = true }``).

One certificate authority signs every server's certificate. A server's certificate names
its role and region, ``server.<region>.nomad`` (Nomad's ``verify_server_hostname`` name),
and its own server id, ``<id>.server.<region>.nomad``. A server accepts an RPC peer only
if the peer's certificate chains to the CA and carries both names; the peer's id is the
one its certificate names, so a hello claiming another id is refused (the transport
checks). A certificate for the operator CLI (``cli.<region>.nomad``, as ``nomad tls cert
create -cli`` makes) chains to the same CA but names no server, so it can call the HTTP
API and can never join the RPC mesh.

:func:`make_cluster_certificates` writes a throw-away CA and per-server certificates for
``raftsim cluster --tls`` (the ``cryptography`` package); production users bring their
own (``nomad tls ca create`` / ``nomad tls cert create -server`` produce the same names).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULT_REGION: Final = "global"
#: lifetime of the certificates ``raftsim cluster --tls`` makes (they are throw-away)
GENERATED_VALIDITY = datetime.timedelta(days=30)


class PeerIdentityError(ValueError):
    """The peer's certificate does not name a server of this region."""


def role_name(region: str) -> str:
    """The name every server certificate of ``region`` carries (Nomad's)."""
    return f"server.{region}.nomad"


def identity_name(server_id: str, region: str) -> str:
    """The name that binds a certificate to one server id."""
    return f"{server_id}.{role_name(region)}"


def check_server_id(server_id: str) -> None:
    """Under TLS a server id is a DNS label inside a certificate name."""
    if not (0 < len(server_id) <= 63 and all(c.isascii() and (c.isalnum() or c == "-")
                                             for c in server_id)
            and not server_id.startswith("-") and not server_id.endswith("-")):
        raise ValueError(f"with TLS a server id must be a DNS label (letters, digits, '-', at "
                         f"most 63 characters), got {server_id!r}")


@dataclass(frozen=True)
class TlsConfig:
    """Nomad's ``tls`` block: the CA, this agent's certificate and key (PEM files)."""

    ca_cert: Path
    cert: Path
    key: Path
    region: str = DEFAULT_REGION
    #: on dial, also let OpenSSL check that the server's certificate is valid for
    #: ``server.<region>.nomad`` (Nomad's ``verify_server_hostname``); the names are
    #: checked after the handshake in any case
    verify_server_hostname: bool = False

    def __post_init__(self) -> None:
        for name in ("ca_cert", "cert", "key"):
            path = getattr(self, name)
            if not Path(path).is_file():
                raise ValueError(f"--{name.replace('_', '-')} {path}: no such file")
        if not self.region or not all(c.isalnum() or c == "-" for c in self.region):
            raise ValueError(f"the region must be letters, digits and '-', got {self.region!r}")

    def _context(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(purpose, cafile=str(self.ca_cert))
            context.load_cert_chain(str(self.cert), str(self.key))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load the TLS files ({self.ca_cert}, {self.cert}, "
                             f"{self.key}): {exc}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def rpc_server_context(self) -> ssl.SSLContext:
        """For accepted RPC connections: the peer must present a certificate of the CA."""
        context = self._context(ssl.Purpose.CLIENT_AUTH)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def rpc_client_context(self) -> ssl.SSLContext:
        """For dialed RPC connections: this server's certificate goes along."""
        context = self._context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = self.verify_server_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def rpc_server_hostname(self) -> str:
        return role_name(self.region)

    def http_server_context(self) -> ssl.SSLContext:
        """HTTPS: a client certificate is optional (Nomad's ``verify_https_client =
        false``), but one that is presented must chain to the CA."""
        context = self._context(ssl.Purpose.CLIENT_AUTH)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self) -> ssl.SSLContext:
        """For this project's own HTTPS clients (the cluster launcher's leader poll)."""
        context = self._context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = False
        return context


def peer_identity(certificate: dict[str, Any] | None, region: str) -> str:
    """The server id a verified peer certificate names (``ssl.SSLObject.getpeercert()``).

    The certificate must name ``server.<region>.nomad`` and exactly one
    ``<id>.server.<region>.nomad``; PeerIdentityError otherwise."""
    if not certificate:
        raise PeerIdentityError("the peer presented no certificate")
    names = [value for kind, value in certificate.get("subjectAltName", ())
             if kind == "DNS" and isinstance(value, str)]
    role = role_name(region)
    if role not in names:
        raise PeerIdentityError(f"the peer's certificate does not name {role!r} (names: "
                                f"{', '.join(names) or 'none'})")
    suffix = "." + role
    ids = sorted({name[: -len(suffix)] for name in names
                  if name.endswith(suffix) and "." not in name[: -len(suffix)]})
    if len(ids) != 1 or not ids[0]:
        raise PeerIdentityError(f"the peer's certificate must name exactly one server id as "
                                f"<id>{suffix}, found {ids or 'none'}")
    return ids[0]


# ---------------------------------------------------------------------- generation


@dataclass(frozen=True)
class ClusterCertificates:
    """Where :func:`make_cluster_certificates` wrote its files."""

    directory: Path
    ca_cert: Path
    #: server id -> (certificate, key)
    servers: dict[str, tuple[Path, Path]]
    cli_cert: Path
    cli_key: Path

    def agent_config(self, server_id: str, region: str = DEFAULT_REGION) -> TlsConfig:
        cert, key = self.servers[server_id]
        return TlsConfig(self.ca_cert, cert, key, region, verify_server_hostname=True)


def _write_private(path: Path, data: bytes) -> None:
    """Keys are readable by their owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def make_cluster_certificates(directory: Path, server_ids: Sequence[str],
                              hosts: Iterable[str] = ("127.0.0.1",), *,
                              region: str = DEFAULT_REGION) -> ClusterCertificates:
    """A fresh CA, one certificate per server (for RPC and HTTPS: its identity and role
    names, ``localhost`` and ``hosts``) and one for the CLI, as PEM files in
    ``directory``. The CA's key is not kept: nothing can be signed by it later."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    for server_id in server_ids:
        check_server_id(server_id)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + GENERATED_VALIDITY

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            f"raftsim throw-away CA ({region})")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(not_before).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    ip_names: list[x509.GeneralName] = []
    dns_hosts: list[str] = []
    for host in dict.fromkeys(hosts):
        try:
            ip_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            dns_hosts.append(host)

    def issue(name: str, dns: list[str], ips: list[x509.GeneralName],
              usages: list[x509.ObjectIdentifier], stem: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns)]
        sans += ips
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier
                               .from_issuer_subject_key_identifier(ca_ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(key_path, pem_key(key))
        return cert_path, key_path

    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    servers = {}
    for server_id in server_ids:
        names = [role_name(region), identity_name(server_id, region), "localhost", *dns_hosts]
        servers[server_id] = issue(identity_name(server_id, region), names, ip_names, both,
                                   f"{server_id}-{region}-server")
    cli_cert, cli_key = issue(f"cli.{region}.nomad", [f"cli.{region}.nomad", "localhost"], [],
                              [ExtendedKeyUsageOID.CLIENT_AUTH], f"{region}-cli")
    return ClusterCertificates(directory, ca_path, servers, cli_cert, cli_key)
