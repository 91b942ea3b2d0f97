"""The simulated network's arrivals as the virtual-time loop's timers.

A timer the loop runs outside every process (``VirtualTimeLoop.call_at_outside``): one
per message on the wire, the most frequent object a simulation makes. It has what the
loop uses of an asyncio ``TimerHandle`` (``_run``, ``_cancelled``, ``_scheduled``,
``_context``) and nothing else. A module of its own so that the compiled build
(``raftsim/compiled.py``) compiles it while the loop itself, an asyncio loop subclass,
stays plain Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import Context
from typing import Any, ClassVar

__all__ = ["Outside"]


class Outside:
    """A timer scheduled by :meth:`VirtualTimeLoop.call_at_outside`: runs like a
    handle (an exception goes to the loop's exception handler), in no process."""

    #: empty: PROCESS is None, so no freeze ever holds it
    _context: ClassVar[Context] = Context()

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[..., object],
                 args: tuple[Any, ...]) -> None:
        self._loop = loop
        self._callback = callback
        self._args = args
        self._scheduled = True
        self._cancelled = False

    def _run(self) -> None:
        try:
            self._callback(*self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"Exception in callback {self._callback!r}",
                "exception": exc,
                "handle": self,
            })
