"""An asyncio event loop whose clock is virtual: idle time costs nothing.

The simulator's promise is "one seed, one run, thousands of times faster than real time".
Both halves come from here. When no callback is ready the loop does not sleep, it sets
its clock to the earliest timer and carries on, so a cluster that is idle between
heartbeats costs nothing. And the order of callbacks is a pure function of the program:
the ready queue is FIFO and timers fire by (deadline, order of scheduling). Stock asyncio
leaves equal deadlines in heap order, which is not guaranteed to be the order they were
scheduled in, so timers live here in a heap of ``(when, sequence, handle)`` tuples.

The loop is a ``BaseEventLoop`` with no selector: the simulation has no file descriptors,
so there is nothing to poll and nothing to leak on close. Everything asyncio builds on
``call_soon``/``call_at``/``create_future``/``create_task`` works unchanged (sleep,
wait_for, timeout, Queue, Event, aiohttp request handling over in-memory transports);
``add_reader`` and real sockets do not exist here.

Processes: a simulated server is one process of the loop. Whatever it schedules while it
runs -- timers, task steps, callbacks -- belongs to it (the context variable
:data:`PROCESS`, which asyncio hands on to everything scheduled from that context), and
:meth:`VirtualTimeLoop.freeze` stops all of it at once, as SIGSTOP stops a process: a
frozen process's callbacks are held, not run, and its timers that fall due meanwhile are
held too; :meth:`~VirtualTimeLoop.thaw` runs them all, in the order they fell due, as
a process resumed by SIGCONT runs the timers that expired while it was stopped.
:func:`run_as_process` enters a process (the simulated cluster does, for every message
delivered to a server and every request to its HTTP API).

Nothing reads the wall clock. Debug mode keeps asyncio's checks but not its slow-callback
warning (elapsed virtual time inside a callback is always zero). Work handed to an
executor thread (``run_in_executor``, which aiohttp uses to read files) takes no virtual
time: the loop waits for it before the clock moves again.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import math
import threading
from collections.abc import Callable, Coroutine
from contextvars import Context, ContextVar, copy_context
from heapq import heapify, heappop, heappush
from typing import Any, TypeVar

from raftsim.sim.outside import Outside

T = TypeVar("T")

__all__ = ["PROCESS", "SimulationDeadlock", "VirtualTimeLoop", "process_context", "run_as_process",
           "run_virtual"]

#: the simulated process the running code belongs to (None: the simulation itself)
PROCESS: ContextVar[str | None] = ContextVar("raftsim_process", default=None)


def run_as_process(name: str, function: Callable[..., T], *args: Any) -> T:
    """Call ``function(*args)`` as process ``name``: every timer, task and callback it
    schedules belongs to ``name`` (and is held while ``name`` is frozen)."""
    return copy_context().run(_enter_process, name, function, args)


def process_context(name: str) -> Context:
    """A context to run code in as process ``name``, again and again: what
    :func:`run_as_process` does per call, made once (for the network's deliveries, the
    most frequent entries into a process). Not to be entered from inside itself."""
    context = Context()
    context.run(PROCESS.set, name)
    return context


def _enter_process(name: str, function: Callable[..., T], args: tuple[Any, ...]) -> T:
    PROCESS.set(name)
    return function(*args)


def _owner(handle: asyncio.Handle) -> str | None:
    """The process a handle was scheduled by (asyncio keeps the context it ran in)."""
    context: Context = handle._context  # type: ignore[attr-defined]
    return context.get(PROCESS)

# Rebuild the timer heap once this many timers, and more than half of it, are cancelled
# (as asyncio does); otherwise cancelled timers are dropped lazily from its head.
_COMPACT_MIN_CANCELLED = 100

# (deadline, order of scheduling, an asyncio.TimerHandle or an Outside): both have
# _cancelled, _scheduled, _context and _run, which is all the loop uses
_TimerEntry = tuple[float, int, Any]


class SimulationDeadlock(RuntimeError):
    """Nothing is ready and no timer is scheduled, yet the loop was asked to wait.

    In real time the program would hang forever; in virtual time we can tell.
    """


def _task_order(task: asyncio.Task[Any]) -> tuple[int, int, str]:
    """Creation order for asyncio's default task names ("Task-17"), then by name.

    ``asyncio.all_tasks`` is a set; cancelling in its (hash) order would make shutdown
    differ from run to run.
    """
    name = task.get_name()
    number = name[5:]
    if name.startswith("Task-") and number.isdigit():
        return (0, int(number), "")
    return (1, 0, name)


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """Asyncio with a virtual clock starting at 0.0 that jumps from timer to timer.

    ``run_until_complete`` raises :class:`SimulationDeadlock` instead of hanging;
    ``run_for(seconds)`` runs every callback due up to ``time() + seconds`` and returns
    with the clock exactly there. ``callbacks_run`` counts callbacks executed.
    """

    # BaseEventLoop internals used here, which typeshed does not declare
    _closed: bool
    _debug: bool
    _stopping: bool
    _timer_cancelled_count: int
    _default_executor: concurrent.futures.Executor | None
    _current_handle: asyncio.Handle | None

    def __init__(self) -> None:
        super().__init__()
        self._time = 0.0
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._scheduled: list[_TimerEntry] = []
        self._timer_sequence = itertools.count()
        # run_for's target; the clock never moves past it while it is set
        self._limit = math.inf
        self._awaiting = False
        # executor jobs whose results the loop has yet to see, and their wake-up signal
        self._threads_pending = 0
        self._wakeup = threading.Event()
        #: callbacks executed so far (task steps, timers, deliveries...)
        self.callbacks_run = 0
        #: frozen processes and the callbacks held for each, in the order they fell due
        self._frozen: dict[str, list[asyncio.Handle]] = {}

    # ------------------------------------------------------------------ processes

    def freeze(self, process: str) -> None:
        """Hold every callback of ``process`` (timers that fall due included) until
        :meth:`thaw`: SIGSTOP."""
        self._frozen.setdefault(process, [])

    def thaw(self, process: str) -> None:
        """Run what ``process`` was held from, in the order it fell due, after what is
        ready now: SIGCONT."""
        self._ready.extend(self._frozen.pop(process, ()))

    def is_frozen(self, process: str) -> bool:
        return process in self._frozen

    # ------------------------------------------------------------------ the clock

    def time(self) -> float:
        """Virtual seconds since the loop was created."""
        return self._time

    # ------------------------------------------------------------------ scheduling

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            return super().call_soon(callback, *args, context=context)
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heappush(self._scheduled, (when, next(self._timer_sequence), timer))
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        timer = self.call_at(self._time + delay, callback, *args, context=context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        return timer

    def call_at_outside(self, when: float, callback: Callable[..., object],
                        *args: Any) -> None:
        """Schedule ``callback(*args)`` at ``when`` outside every process, uncancellable.

        For the simulated network's arrivals, the loop's most frequent timers: a message
        on the wire belongs to no process (it arrives while its sender is frozen), and
        nothing cancels it. Ordered with every other timer by (deadline, order of
        scheduling), like :meth:`call_at`, but without the handle, the copied context
        and the cancellation bookkeeping that one asyncio ``TimerHandle`` costs.
        """
        self.schedule_outside(when, Outside(self, callback, args))

    def schedule_outside(self, when: float, timer: Outside) -> None:
        """:meth:`call_at_outside` with the timer made by the caller (the simulated
        network makes its arrivals' itself, in compiled code where it is compiled)."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        heappush(self._scheduled, (when, next(self._timer_sequence), timer))

    # ------------------------------------------------------------------ running

    def run_for(self, seconds: float) -> None:
        """Run everything due up to ``time() + seconds``, then stop with the clock there.

        Callbacks that fall due exactly at the target, and whatever they make ready at
        that instant, run before this returns; timers beyond it stay scheduled. A
        ``stop()`` from inside ends the run early, with the clock where it stopped.
        """
        if not (isinstance(seconds, int | float) and 0 <= seconds < math.inf):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self._run_bounded(self._time + seconds)

    def _run_bounded(self, limit: float, awaited: asyncio.Future[Any] | None = None) -> None:
        """Run until the clock would pass ``limit`` (or ``awaited`` is done, if given).

        With nothing scheduled, the clock jumps to ``limit``, unless a result is
        awaited: then nothing could ever deliver it, which is a deadlock.
        """
        stop = None
        if awaited is not None:
            self._awaiting = True

            def stop(_: asyncio.Future[Any]) -> None:
                self.stop()

            awaited.add_done_callback(stop)
        self._limit = limit
        try:
            self.run_forever()
        finally:
            self._limit = math.inf
            self._awaiting = False
            if awaited is not None and stop is not None:
                awaited.remove_done_callback(stop)

    def _run_once(self) -> None:
        """One iteration: move the clock if idle, queue due timers, run what is ready.

        Same contract as ``BaseEventLoop._run_once`` (callbacks made ready during the
        iteration wait for the next one), with a virtual clock instead of a selector.
        """
        ready = self._ready
        scheduled = self._scheduled
        if not ready and not (self._stopping or self._frozen or self._debug
                              or self._threads_pending):
            if self._run_lone_timers():
                return

        cancelled = self._timer_cancelled_count
        if cancelled > _COMPACT_MIN_CANCELLED and cancelled * 2 > len(scheduled):
            self._compact_timers()

        if not ready and not self._stopping:
            while scheduled and scheduled[0][2]._cancelled:
                heappop(scheduled)[2]._scheduled = False  # type: ignore[attr-defined]
                self._timer_cancelled_count -= 1
            if scheduled and scheduled[0][0] <= self._time:
                pass  # a timer is due right now
            elif self._threads_pending:
                self._wait_for_threads()
                return
            elif scheduled and scheduled[0][0] <= self._limit:
                self._time = scheduled[0][0]
            elif scheduled or (self._limit < math.inf and not self._awaiting):
                # the next timer is beyond run_for's target (or there is none)
                if self._limit > self._time:
                    self._time = self._limit
                self._stopping = True
                return
            else:
                raise SimulationDeadlock(self._deadlock_message())

        now = self._time
        while scheduled and scheduled[0][0] <= now:
            timer = heappop(scheduled)[2]
            timer._scheduled = False  # type: ignore[attr-defined]
            if timer._cancelled:
                self._timer_cancelled_count -= 1
            else:
                ready.append(timer)

        ntodo = len(ready)
        if self._debug:
            self._run_ready_debug(ntodo)
            return
        popleft = ready.popleft
        frozen = self._frozen
        ran = 0
        try:
            for _ in range(ntodo):
                handle = popleft()
                if handle._cancelled:
                    continue
                if frozen:
                    held = frozen.get(_owner(handle))  # type: ignore[arg-type]
                    if held is not None:
                        held.append(handle)
                        continue
                ran += 1
                handle._run()
        finally:
            self.callbacks_run += ran

    def _run_lone_timers(self) -> int:
        """Run due timers one after another while each is alone: nothing ready, no
        other timer at its instant, none cancelled, within run_for's target. This is
        exactly what iterations of the general path would do for them (each would move
        the clock, queue that one timer and run it), minus their bookkeeping; most of a
        simulation's timers are such lone arrivals. Returns how many ran; the general
        path takes over at the first timer that is not alone or makes something ready.
        """
        scheduled = self._scheduled
        limit = self._limit
        ready = self._ready
        ran = 0
        try:
            while scheduled:
                when, _, timer = scheduled[0]
                if when > limit or timer._cancelled:
                    break
                size = len(scheduled)
                if (size > 1 and scheduled[1][0] <= when) or (size > 2
                                                              and scheduled[2][0] <= when):
                    break  # another timer falls due at the same instant
                heappop(scheduled)
                timer._scheduled = False
                if when > self._time:
                    self._time = when
                ran += 1
                timer._run()
                if ready or self._stopping or self._frozen or self._threads_pending:
                    break
        finally:
            self.callbacks_run += ran
        return ran

    def _run_ready_debug(self, ntodo: int) -> None:
        # asyncio's debug path minus the slow-callback warning, which measures time
        # spent inside a callback: always zero here, and never the wall clock.
        for _ in range(ntodo):
            handle = self._ready.popleft()
            if handle._cancelled:
                continue
            held = self._frozen.get(_owner(handle))  # type: ignore[arg-type]
            if held is not None:
                held.append(handle)
                continue
            self.callbacks_run += 1
            try:
                self._current_handle = handle
                handle._run()
            finally:
                self._current_handle = None

    def _compact_timers(self) -> None:
        live: list[_TimerEntry] = []
        for entry in self._scheduled:
            if entry[2]._cancelled:
                entry[2]._scheduled = False  # type: ignore[attr-defined]
            else:
                live.append(entry)
        heapify(live)
        self._scheduled[:] = live  # in place: _run_once holds a reference
        self._timer_cancelled_count = 0

    def _deadlock_message(self) -> str:
        waiting = sorted((t for t in asyncio.all_tasks(self) if not t.done()), key=_task_order)
        names = ", ".join(
            f"{t.get_name()} ({getattr(t.get_coro(), '__qualname__', '?')})"
            for t in waiting[:5]
        )
        more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        tasks = f"; waiting tasks: {names}{more}" if waiting else ""
        return (
            f"at virtual time {self._time}: nothing is ready and no timer is scheduled, "
            f"so the awaited result can never arrive{tasks}"
        )

    # ------------------------------------------------------------------ threads

    def _write_to_self(self) -> None:
        # call_soon_threadsafe's wake-up: no self-pipe, just an event
        self._wakeup.set()

    def _wait_for_threads(self) -> None:
        self._wakeup.clear()
        if not self._ready:
            self._wakeup.wait()

    def run_in_executor(  # type: ignore[override]
        self, executor: concurrent.futures.Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._threads_pending += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _future: asyncio.Future[Any]) -> None:
        self._threads_pending -= 1

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Join the default executor's threads in place (no virtual time passes)."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            executor.shutdown(wait=True)


def run_virtual(
    main: Coroutine[Any, Any, T] | Callable[[], Coroutine[Any, Any, T]],
    *,
    until: float | None = None,
    debug: bool | None = None,
) -> T:
    """``asyncio.run`` on a fresh :class:`VirtualTimeLoop`.

    ``main`` is a coroutine or a zero-argument function returning one. With ``until``,
    a run still unfinished at that virtual time is cancelled and ``TimeoutError`` is
    raised. Left-over tasks are cancelled in creation order, then the loop is closed.
    """
    if until is not None and not (isinstance(until, int | float) and 0 <= until < math.inf):
        if asyncio.iscoroutine(main):
            main.close()  # never started: spare the "never awaited" warning
        raise ValueError(f"until must be a finite virtual time >= 0, got {until!r}")
    loop = VirtualTimeLoop()
    try:
        if debug is not None:
            loop.set_debug(debug)
        coro = main if asyncio.iscoroutine(main) else main()
        task = loop.create_task(coro)
        if until is None:
            return loop.run_until_complete(task)
        loop._run_bounded(until, task)
        if not task.done():
            raise TimeoutError(f"main did not finish by virtual time {until}")
        return task.result()
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _cancel_all_tasks(loop: VirtualTimeLoop) -> None:
    pending = sorted((t for t in asyncio.all_tasks(loop) if not t.done()), key=_task_order)
    if not pending:
        return
    for task in pending:
        task.cancel()
    try:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    except SimulationDeadlock:
        return  # a task that swallows cancellation and waits forever: leave it
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({
                "message": "unhandled exception during run_virtual() shutdown",
                "exception": task.exception(),
                "task": task,
            })
