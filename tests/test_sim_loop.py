"""The virtual-time loop: the clock jumps, order is deterministic, hangs become errors."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp import web

from raftsim.sim.loop import SimulationDeadlock, VirtualTimeLoop, run_virtual


@contextmanager
def virtual_loop() -> Iterator[VirtualTimeLoop]:
    loop = VirtualTimeLoop()
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


# ---------------------------------------------------------------------- the clock


def test_clock_starts_at_zero() -> None:
    with virtual_loop() as loop:
        assert loop.time() == 0.0


def test_sleep_jumps_straight_to_the_deadline() -> None:
    delay = 1000.0

    async def main() -> float:
        await asyncio.sleep(delay)
        return asyncio.get_running_loop().time()

    with virtual_loop() as loop:
        started = time.perf_counter()
        assert loop.run_until_complete(main()) == 1000.0
        assert time.perf_counter() - started < 0.5
        assert loop.time() == 1000.0


def test_timer_in_the_past_runs_now_and_time_never_goes_back() -> None:
    seen: list[float] = []
    with virtual_loop() as loop:
        loop.run_for(10.0)
        loop.call_at(3.0, lambda: seen.append(loop.time()))
        loop.run_for(0.0)
        assert seen == [10.0]
        assert loop.time() == 10.0


def test_idle_million_seconds_with_periodic_timer_is_fast() -> None:
    period = 5.0
    ticks: list[int] = [0]

    with virtual_loop() as loop:

        def tick() -> None:
            ticks[0] += 1
            loop.call_later(period, tick)

        loop.call_later(period, tick)
        started = time.perf_counter()
        loop.run_for(1_000_000.0)
        wall = time.perf_counter() - started
        assert loop.time() == 1_000_000.0
        assert ticks[0] == 200_000
        assert loop.callbacks_run == 200_000
        assert wall < 10.0  # ~0.3 s in practice: > 3,000,000x real time


# ---------------------------------------------------------------------- order


def test_ready_queue_is_fifo() -> None:
    order: list[int] = []
    with virtual_loop() as loop:
        for k in range(100):
            loop.call_soon(order.append, k)
        loop.run_for(0.0)
    assert order == list(range(100))


def test_equal_deadlines_fire_in_scheduling_order() -> None:
    # interleave many deadlines so heap order and insertion order would disagree
    rng = random.Random(5)
    schedule = [(rng.choice([1.0, 2.0, 3.0]), k) for k in range(3000)]
    fired: list[tuple[float, int]] = []
    with virtual_loop() as loop:
        for when, k in schedule:
            if k % 2:
                loop.call_at(when, lambda w=when, k=k: fired.append((w, k)))
            else:
                loop.call_later(when, lambda w=when, k=k: fired.append((w, k)))
        loop.run_for(5.0)
    assert fired == sorted(schedule)  # by deadline, then by order of scheduling


def test_same_program_gives_same_callback_order() -> None:
    def program() -> list[tuple[float, str]]:
        rng = random.Random(11)
        log: list[tuple[float, str]] = []

        async def worker(name: str) -> None:
            loop = asyncio.get_running_loop()
            for _ in range(50):
                await asyncio.sleep(rng.choice([0.0, 0.5, 1.0]))
                log.append((loop.time(), name))

        async def main() -> None:
            await asyncio.gather(*(worker(f"w{k}") for k in range(10)))

        run_virtual(main)
        return log

    assert program() == program()


def test_callbacks_run_counts_executed_callbacks_only() -> None:
    with virtual_loop() as loop:
        loop.call_soon(lambda: None)
        loop.call_later(1.0, lambda: None)
        loop.call_later(2.0, lambda: None).cancel()
        loop.call_soon(lambda: None).cancel()
        loop.run_for(5.0)
        assert loop.callbacks_run == 2


def test_cancelled_timers_do_not_pile_up() -> None:
    # a follower resets its election timer on every heartbeat
    with virtual_loop() as loop:
        election: list[asyncio.TimerHandle] = [loop.call_later(10.0, lambda: None)]
        beats = [0]

        def heartbeat() -> None:
            beats[0] += 1
            election[0].cancel()
            election[0] = loop.call_later(10.0, lambda: None)
            loop.call_later(0.05, heartbeat)

        heartbeat()
        loop.run_for(500.0)
        assert len(loop._scheduled) < 250
        assert abs(beats[0] - 10_001) <= 1  # compaction neither loses nor repeats a timer


def test_exception_in_callback_goes_to_the_exception_handler() -> None:
    errors: list[dict[str, Any]] = []
    after: list[bool] = []
    with virtual_loop() as loop:
        loop.set_exception_handler(lambda _loop, context: errors.append(context))

        def boom() -> None:
            raise ValueError("boom")

        loop.call_later(1.0, boom)
        loop.call_later(2.0, after.append, True)
        loop.run_for(3.0)
    assert [type(e["exception"]) for e in errors] == [ValueError]
    assert after == [True]


# ---------------------------------------------------------------------- run_for


def test_run_for_stops_exactly_at_the_target() -> None:
    fired: list[tuple[str, float]] = []
    with virtual_loop() as loop:
        loop.call_at(1.0, lambda: fired.append(("a", loop.time())))
        loop.call_at(2.0, lambda: fired.append(("b", loop.time())))
        loop.call_at(3.5, lambda: fired.append(("c", loop.time())))
        loop.run_for(2.0)
        assert fired == [("a", 1.0), ("b", 2.0)]
        assert loop.time() == 2.0
        loop.run_for(1.0)
        assert loop.time() == 3.0
        assert len(fired) == 2
        loop.run_for(1.0)
        assert fired[-1] == ("c", 3.5)
        assert loop.time() == 4.0


def test_run_for_runs_what_becomes_ready_at_the_target() -> None:
    delay, no_delay = 1.0, 0.0

    async def chain(log: list[str]) -> None:
        await asyncio.sleep(delay)
        log.append("woke")
        await asyncio.sleep(no_delay)
        log.append("stepped again")

    log: list[str] = []
    with virtual_loop() as loop:
        loop.create_task(chain(log))
        loop.run_for(1.0)
        assert log == ["woke", "stepped again"]


def test_run_for_on_an_empty_loop_just_moves_the_clock() -> None:
    with virtual_loop() as loop:
        loop.run_for(42.0)
        assert loop.time() == 42.0


def test_stop_inside_run_for_returns_early() -> None:
    with virtual_loop() as loop:
        loop.call_at(1.0, loop.stop)
        loop.call_at(2.0, lambda: None)
        loop.run_for(10.0)
        assert loop.time() == 1.0
        loop.run_for(1.0)
        assert loop.time() == 2.0


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan"), "1"])
def test_run_for_rejects_bad_durations(seconds: Any) -> None:
    with virtual_loop() as loop:
        with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
            loop.run_for(seconds)
        assert loop.time() == 0.0


# ---------------------------------------------------------------------- deadlock


def test_waiting_on_nothing_is_a_deadlock() -> None:
    with virtual_loop() as loop:
        event = asyncio.Event()
        with pytest.raises(SimulationDeadlock, match="Event.wait"):
            loop.run_until_complete(event.wait())


def test_deadlock_is_a_runtime_error_raised_at_the_time_it_happens() -> None:
    delay = 7.0

    async def main() -> None:
        await asyncio.sleep(delay)
        await asyncio.get_running_loop().create_future()

    with virtual_loop() as loop:
        with pytest.raises(RuntimeError, match="at virtual time 7.0"):
            loop.run_until_complete(main())
        assert loop.time() == 7.0


def test_loop_is_usable_after_a_deadlock() -> None:
    with virtual_loop() as loop:
        with pytest.raises(SimulationDeadlock):
            loop.run_until_complete(loop.create_future())
        loop.run_for(1.0)
        assert loop.time() == 1.0


# ---------------------------------------------------------------------- asyncio APIs


def test_wait_for_times_out_in_virtual_time() -> None:
    long, short = 10.0, 3.0

    async def main() -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(long), short)
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == 3.0


def test_asyncio_timeout_in_virtual_time() -> None:
    long, short = 10.0, 2.5

    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(short):
                await asyncio.sleep(long)
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == 2.5


def test_queue_event_and_tasks() -> None:
    step = 0.5

    async def main() -> tuple[list[int], float]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        done = asyncio.Event()

        async def producer() -> None:
            for k in range(4):
                await asyncio.sleep(step)
                await queue.put(k)
            done.set()

        task = asyncio.create_task(producer())
        await done.wait()
        await task
        items = [queue.get_nowait() for _ in range(queue.qsize())]
        return items, asyncio.get_running_loop().time()

    assert run_virtual(main) == ([0, 1, 2, 3], 2.0)


def test_executor_work_takes_no_virtual_time() -> None:
    later = 5.0

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        loop.call_later(later, lambda: None)
        total = await loop.run_in_executor(None, sum, [1, 2, 3])
        return total, loop.time()

    assert run_virtual(main) == (6, 0.0)


def test_debug_mode_never_reads_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    delay, timeout = 3.0, 1.0

    async def main() -> float:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int] = asyncio.Queue()
        loop.call_later(delay, queue.put_nowait, 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.get(), timeout)
        assert await queue.get() == 1
        return loop.time()

    def wall_clock() -> float:
        raise AssertionError("the wall clock was read")

    with virtual_loop() as loop:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.0
        coro = main()
        for name in ("monotonic", "time", "perf_counter", "process_time"):
            monkeypatch.setattr(time, name, wall_clock)
        try:
            assert loop.run_until_complete(coro) == 3.0
        finally:
            monkeypatch.undo()


class _MemoryTransport(asyncio.Transport):
    """Just enough of a transport for aiohttp's server protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000)}.get(name, default)

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def test_aiohttp_handles_a_request_over_an_in_memory_transport() -> None:
    think, wait = 2.0, 5.0

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(think)
        return web.json_response({"t": asyncio.get_running_loop().time()})

    async def main() -> bytes:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        assert runner.server is not None
        protocol = runner.server()
        transport = _MemoryTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: sim\r\n\r\n")
        await asyncio.sleep(wait)
        await runner.cleanup()
        return bytes(transport.written)

    response = run_virtual(main)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b'{"t": 2.0}')


# ---------------------------------------------------------------------- run_virtual


def test_run_virtual_accepts_a_coroutine_or_a_factory() -> None:
    delay = 1.5

    async def main() -> float:
        await asyncio.sleep(delay)
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == 1.5
    assert run_virtual(main()) == 1.5


def test_run_virtual_until_raises_timeout_at_that_time() -> None:
    delay = 100.0
    seen: list[float] = []

    async def main() -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            seen.append(asyncio.get_running_loop().time())

    with pytest.raises(TimeoutError, match="virtual time 10"):
        run_virtual(main, until=10.0)
    assert seen == [10.0]


def test_run_virtual_until_still_detects_deadlock() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(SimulationDeadlock):
        run_virtual(main, until=10.0)


@pytest.mark.parametrize("until", [-1.0, float("inf")])
def test_run_virtual_rejects_a_bad_deadline(until: float) -> None:
    async def main() -> None:
        pass

    with pytest.raises(ValueError, match="until must be a finite virtual time"):
        run_virtual(main(), until=until)


def test_run_virtual_cancels_left_over_tasks() -> None:
    forever, no_delay = 1e9, 0.0
    cleaned: list[bool] = []

    async def background() -> None:
        try:
            await asyncio.sleep(forever)
        finally:
            cleaned.append(True)

    async def main() -> str:
        asyncio.create_task(background())
        await asyncio.sleep(no_delay)
        return "done"

    assert run_virtual(main) == "done"
    assert cleaned == [True]


def test_closed_loop_refuses_work_and_leaves_no_warning() -> None:
    loop = VirtualTimeLoop()
    loop.run_for(1.0)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(lambda: None)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_later(1.0, lambda: None)


def _callback_order(loop: VirtualTimeLoop, seed: int) -> list[tuple[float, int]]:
    """A random program of timers (some at the same instant, some cancelled, some
    scheduled outside every process) that schedule more timers and ready callbacks:
    which callback ran when."""
    rng = random.Random(seed)
    order: list[tuple[float, int]] = []
    counter = iter(range(10**6))

    def fire(k: int) -> None:
        order.append((loop.time(), k))
        if len(order) > 400:
            return
        for _ in range(rng.choice((1, 1, 2))):
            delay = rng.choice((0.0, 0.001, 0.002, rng.random() / 100))
            choice = rng.random()
            if choice < 0.3:
                loop.call_soon(fire, next(counter))
            elif choice < 0.6:
                loop.call_at_outside(loop.time() + delay, fire, next(counter))
            else:
                handle = loop.call_later(delay, fire, next(counter))
                if rng.random() < 0.2:
                    handle.cancel()

    for _ in range(5):
        loop.call_later(rng.random() / 100, fire, next(counter))
    loop.run_for(10.0)
    return order


@pytest.mark.parametrize("seed", range(5))
def test_lone_timers_run_in_the_order_the_general_path_runs_them(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = VirtualTimeLoop()
    try:
        expected_fast = _callback_order(fast, seed)
    finally:
        fast.close()
    monkeypatch.setattr(VirtualTimeLoop, "_run_lone_timers", lambda self: 0)
    general = VirtualTimeLoop()
    try:
        assert _callback_order(general, seed) == expected_fast
    finally:
        general.close()
    assert len(expected_fast) > 100
