"""Each simulated server's own clock: the loop's virtual time, run at its own rate and
shifted by its own offset, both drawn from the seed.

Real machines' clocks disagree: they start at different readings (offset) and run a
little fast or slow (rate, "drift"; NTP keeps it to some parts per million, a bad
crystal or a paused VM makes it far more). Raft's safety does not depend on clocks, but
some of its optimizations do (leases, docs/testing.md), so the simulator must be able
to make clocks disagree. A :class:`ServerClock` stands in for the event loop inside one
server: ``time()`` reads ``offset + rate * loop.time()``, and a timer set for a local
deadline fires when the local clock reads it. Everything else goes to the loop itself,
so the run stays one loop, one order of events, one seed.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ClockSkew", "ServerClock", "draw_skew"]

#: the largest offset drawn, in seconds (offsets only shift what a clock reads)
MAX_OFFSET = 1000.0


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """How one server's clock differs: local = offset + rate * virtual time."""

    rate: float = 1.0
    offset: float = 0.0


def draw_skew(seed: int, server: str, drift: float) -> ClockSkew:
    """A server's skew from the seed: a rate within ``1 ± drift`` and an offset."""
    if not 0.0 <= drift < 1.0:
        raise ValueError(f"clock drift must be at least 0 and below 1, got {drift}")
    rng = random.Random(f"{seed}:clock:{server}")
    return ClockSkew(rate=1.0 + rng.uniform(-drift, drift),
                     offset=round(rng.uniform(0.0, MAX_OFFSET), 6))


class ServerClock:
    """The event loop as one server sees it (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, skew: ClockSkew) -> None:
        self._loop = loop
        self.skew = skew

    def time(self) -> float:
        return self.skew.offset + self.skew.rate * self._loop.time()

    def _virtual(self, local: float) -> float:
        """The earliest virtual time at which this clock reads ``local`` or later (the
        plain inverse can round to a moment a hair before, and a timer that fires
        before its deadline would be set again for the same moment, forever)."""
        virtual = (local - self.skew.offset) / self.skew.rate
        while self.skew.offset + self.skew.rate * virtual < local:
            virtual = math.nextafter(virtual, math.inf)
        return virtual

    def call_at(self, when: float, callback: Callable[..., object], *args: Any
                ) -> asyncio.TimerHandle:
        return self._loop.call_at(self._virtual(when), callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any
                   ) -> asyncio.TimerHandle:
        return self._loop.call_later(delay / self.skew.rate, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)
