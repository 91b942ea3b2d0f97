"""What a server needs of the transport it sends through: the simulated network, or the
live world's TCP connections.

Apart from ``server.py`` because that module is compiled in the compiled build
(``raftsim/compiled.py``), where a class cannot be a runtime-checkable Protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Connection", "ConnectionTransport", "GatheringTransport", "Transport"]


class Transport(Protocol):
    def send(self, target: str, data: bytes, meta: object = None) -> None:
        """Best effort, never blocks; delivery, order and timing are not promised."""
        ...


@runtime_checkable
class Connection(Protocol):
    """One connection of a connection-oriented transport (TCP): a request is answered on
    the connection it came on, a response is accepted only from the one its call went
    on (so an answer never reaches another connection, or another incarnation)."""

    def send(self, data: bytes) -> None: ...


@runtime_checkable
class ConnectionTransport(Protocol):
    """A transport with connections (the live world's); the simulated network has none."""

    def connection_to(self, target: str) -> Connection | None: ...


@runtime_checkable
class GatheringTransport(Protocol):
    """A transport that can gather what is sent and write it later, per peer, in one go
    (the live world's TCP). A group-commit flush sends every message of its Readies,
    gathered, before it applies any of them."""

    def gather(self) -> None: ...

    def release(self) -> None: ...
