"""Free loopback ports for clusters started on one machine (the live tests and the live
benchmark), so no two of them pick their ports in their own way."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port_run", "free_ports"]

#: where :func:`free_port_run` looks: above the usual start of the ephemeral range
RUN_LOW, RUN_HIGH = 20000, 32000


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_run(count: int) -> int:
    """A base port P with P..P+count-1 all free (for ``plan_cluster``'s ``base_port``
    and ``raftsim cluster --base-port``), where nothing else is likely to take them
    meanwhile."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(RUN_LOW, RUN_HIGH - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no run of free ports found")
