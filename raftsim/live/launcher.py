"""``raftsim cluster``: N agent processes on loopback, started and stopped together.

By default server k listens where a Nomad server set on one machine would: HTTP on
``127.0.0.k:4646``, RPC on ``127.0.0.k:4647``. On systems without the whole 127.0.0.0/8
range on loopback, ``base_port`` puts every server on 127.0.0.1 with consecutive ports
(server k: HTTP ``base_port + 2(k-1)``, RPC the next one).

Once every server agrees on a leader, the ready file is written (atomically) as JSON:
``{"servers": [{"id", "node", "http", "rpc", "pid"}, ...], "leader": "<id>"}``, and with
``tls`` also ``"tls": {"ca_cert", "cli_cert", "cli_key"}`` (file paths).

With ``tls``, a throw-away CA and one certificate per server (and one for the CLI) are
made in ``<data dir>/tls`` (:func:`raftsim.live.tls.make_cluster_certificates`); the
agents then speak mutual TLS between them and HTTPS.
SIGINT or SIGTERM stops every agent (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from raftsim.live.tls import ClusterCertificates, make_cluster_certificates
from raftsim.live.transport import split_address

#: the environment variable an agent reads its ACL token from (kept out of argv)
ACL_TOKEN_ENV = "RAFTSIM_ACL_TOKEN"
NOMAD_HTTP_PORT = 4646
NOMAD_RPC_PORT = 4647
#: seconds an agent gets to exit after SIGTERM before it is killed
STOP_GRACE = 15.0


@dataclass(frozen=True)
class ServerSpec:
    id: str
    node: str
    http: str
    rpc: str
    data_dir: Path

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "node": self.node, "http": self.http, "rpc": self.rpc}


def plan_cluster(servers: int, data_dir: Path, base_port: int | None = None) -> list[ServerSpec]:
    """Ids ``s1..sN``, node names ``sK.global``, addresses as the module says."""
    if servers < 1:
        raise ValueError(f"a cluster needs at least 1 server, got {servers}")
    if base_port is None and servers > 254:
        raise ValueError("at most 254 servers fit in 127.0.0.1..127.0.0.254")
    if base_port is not None and not (0 < base_port and base_port + 2 * servers - 1 < 65536):
        raise ValueError(f"ports {base_port}..{base_port + 2 * servers - 1} are not all valid")
    plan = []
    for k in range(1, servers + 1):
        if base_port is None:
            host = f"127.0.0.{k}"
            http, rpc = f"{host}:{NOMAD_HTTP_PORT}", f"{host}:{NOMAD_RPC_PORT}"
        else:
            http = f"127.0.0.1:{base_port + 2 * (k - 1)}"
            rpc = f"127.0.0.1:{base_port + 2 * (k - 1) + 1}"
        plan.append(ServerSpec(f"s{k}", f"s{k}.global", http, rpc, data_dir / f"s{k}"))
    return plan


def agent_command(spec: ServerSpec, plan: Sequence[ServerSpec], *, bootstrap: bool = True,
                  fsync: str = "always", extra: Sequence[str] = (),
                  python: str = sys.executable,
                  certificates: ClusterCertificates | None = None) -> list[str]:
    """The command line that runs ``spec`` as a ``raftsim agent`` peered with ``plan``
    (with ``certificates``: over TLS, with the certificate made for ``spec``)."""
    command = [python, "-m", "raftsim.cli", "agent", "--id", spec.id, "--node-name", spec.node,
               "--rpc", spec.rpc, "--http", spec.http, "--data-dir", str(spec.data_dir),
               "--fsync", fsync]
    for other in plan:
        if other.id != spec.id:
            command += ["--peer", f"{other.id}={other.rpc}"]
    if bootstrap:
        command.append("--bootstrap")
    if certificates is not None:
        cert, key = certificates.servers[spec.id]
        command += ["--ca-cert", str(certificates.ca_cert), "--cert", str(cert), "--key",
                    str(key), "--verify-server-hostname"]
    return command + list(extra)


def make_certificates(plan: Sequence[ServerSpec], directory: Path) -> ClusterCertificates:
    """A throw-away CA and certificates for every server of ``plan`` (valid for the
    addresses it listens on) and for the CLI."""
    hosts = [split_address(address)[0] for spec in plan for address in (spec.http, spec.rpc)]
    return make_cluster_certificates(directory, [spec.id for spec in plan], hosts)


def _stop_with_parent() -> None:
    """In the agent's process before exec (Linux): SIGTERM when the launcher dies, even
    by SIGKILL, so that no agent outlives its cluster."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def agent_environment(acl_token: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(ACL_TOKEN_ENV, None)
    if acl_token:
        env[ACL_TOKEN_ENV] = acl_token
    return env


async def agreed_leader(session: aiohttp.ClientSession, plan: Sequence[ServerSpec], *,
                        scheme: str = "http") -> ServerSpec | None:
    """The leader every server names (each asked for its own view), or None."""
    seen = set()
    for spec in plan:
        url = f"{scheme}://{spec.http}/v1/status/leader?stale"
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    return None
                seen.add(await response.json())
        except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
            return None
    if len(seen) != 1:
        return None
    address = seen.pop()
    return next((spec for spec in plan if spec.rpc == address), None)


def write_ready_file(path: Path, plan: Sequence[ServerSpec], pids: Sequence[int],
                     leader: ServerSpec,
                     certificates: ClusterCertificates | None = None) -> None:
    """Write atomically: a reader sees no file or the whole file."""
    servers: list[dict[str, Any]] = [
        {**spec.as_dict(), "pid": pid} for spec, pid in zip(plan, pids, strict=True)]
    ready: dict[str, Any] = {"servers": servers, "leader": leader.id}
    if certificates is not None:
        ready["tls"] = {"ca_cert": str(certificates.ca_cert),
                        "cli_cert": str(certificates.cli_cert),
                        "cli_key": str(certificates.cli_key)}
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(ready, indent=2) + "\n")
    os.replace(temp, path)


class ClusterLauncher:
    def __init__(self, plan: Sequence[ServerSpec], *, acl_token: str | None = None,
                 ready_file: Path | None = None, fsync: str = "always",
                 agent_args: Sequence[str] = (), out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr,
                 certificates: ClusterCertificates | None = None) -> None:
        self.plan = list(plan)
        self.certificates = certificates
        self.acl_token = acl_token
        self.ready_file = ready_file
        self.fsync = fsync
        self.agent_args = list(agent_args)
        self.out = out
        self.err = err
        self.processes: list[asyncio.subprocess.Process] = []

    async def run(self) -> int:
        """Start every agent, announce the leader, wait for a signal (or for every agent
        to exit: exit code 1), stop every agent."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        env = agent_environment(self.acl_token)
        background: list[asyncio.Future[Any]] = []
        try:
            for spec in self.plan:
                spec.data_dir.mkdir(parents=True, exist_ok=True)
                command = agent_command(spec, self.plan, fsync=self.fsync,
                                        extra=self.agent_args,
                                        certificates=self.certificates)
                self.processes.append(await asyncio.create_subprocess_exec(
                    *command, env=env,
                    preexec_fn=_stop_with_parent if sys.platform == "linux" else None))
            scheme = "https" if self.certificates is not None else "http"
            for spec in self.plan:
                print(f"{spec.id}  node {spec.node}  http {scheme}://{spec.http}  rpc "
                      f"{spec.rpc}  data {spec.data_dir}", file=self.out, flush=True)
            if self.certificates is not None:
                certificates = self.certificates
                print(f"TLS: for the CLI, export NOMAD_ADDR=https://{self.plan[0].http} "
                      f"NOMAD_CACERT={certificates.ca_cert} "
                      f"NOMAD_CLIENT_CERT={certificates.cli_cert} "
                      f"NOMAD_CLIENT_KEY={certificates.cli_key}", file=self.out, flush=True)
            everyone_gone: asyncio.Future[Any] = asyncio.gather(
                *(self._watch(i) for i in range(len(self.plan))))
            stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            background = [everyone_gone, stopper, asyncio.ensure_future(self._await_leader())]
            await asyncio.wait([stopper, everyone_gone], return_when=asyncio.FIRST_COMPLETED)
            if not stopper.done():
                print("raftsim cluster: every agent exited", file=self.err, flush=True)
                return 1
            return 0
        finally:
            await self._stop_all()
            for future in background[1:]:
                future.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _watch(self, position: int) -> None:
        code = await self.processes[position].wait()
        print(f"raftsim cluster: {self.plan[position].id} exited with code {code}",
              file=self.err, flush=True)

    async def _await_leader(self) -> None:
        timeout = aiohttp.ClientTimeout(total=2.0)
        connector = None
        if self.certificates is not None:
            context = self.certificates.agent_config(self.plan[0].id).client_context()
            connector = aiohttp.TCPConnector(ssl=context)
        scheme = "https" if self.certificates is not None else "http"
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while True:
                leader = await agreed_leader(session, self.plan, scheme=scheme)
                if leader is not None:
                    break
                await asyncio.sleep(0.1)
        print(f"leader: {leader.id} ({leader.rpc})", file=self.out, flush=True)
        if self.ready_file is not None:
            write_ready_file(self.ready_file, self.plan, [p.pid for p in self.processes],
                             leader, self.certificates)

    async def _stop_all(self) -> None:
        running = [p for p in self.processes if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), STOP_GRACE)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(p.wait() for p in running))


def run_cluster(servers: int, *, data_dir: Path | None = None, acl_token: str | None = None,
                ready_file: Path | None = None, base_port: int | None = None,
                fsync: str = "always", agent_args: Sequence[str] = (),
                tls: bool = False) -> int:
    """The ``raftsim cluster`` process: returns its exit code."""
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="raftsim-cluster-")) if data_dir is None else data_dir
    try:
        plan = plan_cluster(servers, root, base_port)
        print(f"raftsim cluster: {servers} servers, data in {root}"
              f"{' (removed at exit)' if temporary else ''}", flush=True)
        certificates = make_certificates(plan, root / "tls") if tls else None
        launcher = ClusterLauncher(plan, acl_token=acl_token, ready_file=ready_file,
                                   fsync=fsync, agent_args=agent_args,
                                   certificates=certificates)
        return asyncio.run(launcher.run())
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
