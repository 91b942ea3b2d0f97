"""What the simulated network reports to whoever watches it (the trace recorder, the UI).

A module of its own because ``network.py`` is compiled in the compiled build
(``raftsim/compiled.py``) and a plain Python class may not inherit from a compiled one:
observers subclass this one.
"""

from __future__ import annotations

__all__ = ["NetworkObserver"]


class NetworkObserver:
    """What the network reports. Any object will do as an observer: it may define any
    subset of these hooks (subclass this class for no-op defaults of the rest)."""

    def on_send(self, serial: int, source: str, target: str, meta: object) -> None:
        """A message was handed to the network (even if it is dropped at once)."""

    def on_deliver(self, serial: int, source: str, target: str, meta: object) -> None:
        """A message (or a duplicate, with the same serial) is about to be delivered."""

    def on_drop(self, serial: int, source: str, target: str, meta: object, reason: str) -> None:
        """A message was dropped; ``reason`` is one of :data:`DROP_REASONS`."""
