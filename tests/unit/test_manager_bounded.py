"""A bounded TaskManager: the concurrency limit, priority order, and backpressure
(``max_pending``: ``submit`` waits, ``submit_nowait`` raises `QueueFullError`)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

import pytest

from taskward import Status, TaskInfo, TaskManager
from taskward.errors import ClosedError, QueueFullError, TaskwardError


async def within(awaitable: Awaitable[Any], seconds: float = 1.0) -> Any:
    """Await with a bound; unlike wait_for, without wrapping it in a task of its own."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def steps(n: int = 5) -> None:
    """Let the event loop run ``n`` rounds: enough for anything not blocked to move.

    Used only to show that something stays blocked; never to wait for something to happen.
    """
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
async def _asyncio_debug() -> None:
    asyncio.get_running_loop().set_debug(True)


class Jobs:
    """Task bodies the test finishes one by one, recording the order in which they start."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.running = 0
        self.max_running = 0
        self._gates: dict[str, asyncio.Future[None]] = {}
        self._started: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Future[None]:
        if name not in self._gates:
            self._gates[name] = asyncio.get_running_loop().create_future()
            self._started[name] = asyncio.Event()
        return self._gates[name]

    async def run(self, name: str) -> str:
        gate = self.gate(name)
        self.order.append(name)
        self._started[name].set()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await gate
        finally:
            self.running -= 1
        return name

    async def started(self, name: str) -> None:
        self.gate(name)
        await within(self._started[name].wait())

    def finish(self, name: str) -> None:
        self.gate(name).set_result(None)


async def submit(tm: TaskManager, jobs: Jobs, name: str, priority: int = 0) -> str:
    return await tm.submit(name, jobs.run, name, priority=priority)


# ----------------------------------------------------------------------- concurrency


async def test_no_more_than_concurrency_tasks_run_and_each_free_slot_takes_the_next() -> None:
    peak = 0

    async with TaskManager(concurrency=2) as tm:

        def watch(info: TaskInfo) -> None:
            nonlocal peak
            peak = max(peak, tm.running_count())

        tm.add_listener(watch)
        jobs = Jobs()
        for i in range(5):
            await submit(tm, jobs, f"j{i}")
        await jobs.started("j1")
        await steps()
        assert jobs.order == ["j0", "j1"]
        assert (tm.running_count(), tm.pending_count()) == (2, 3)

        jobs.finish("j0")
        await jobs.started("j2")
        await steps()
        assert jobs.order == ["j0", "j1", "j2"]
        for name in ["j1", "j2", "j3", "j4"]:
            await jobs.started(name)
            jobs.finish(name)
        await within(tm.join())
        assert tm.names(Status.COMPLETED) == [f"j{i}" for i in range(5)]
    assert jobs.max_running == 2
    assert peak == 2


async def test_waiting_tasks_start_lowest_priority_number_first_then_in_submission_order() -> None:
    async with TaskManager(concurrency=1) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "blocker")
        await jobs.started("blocker")
        submitted = [("p5a", 5), ("p1a", 1), ("p3", 3), ("p1b", 1), ("p0", 0), ("neg", -2)]
        submitted += [("p5b", 5), ("p1c", 1)]
        for name, priority in submitted:
            await submit(tm, jobs, name, priority)
        jobs.finish("blocker")
        expected = ["neg", "p0", "p1a", "p1b", "p1c", "p3", "p5a", "p5b"]
        for name in expected:
            await jobs.started(name)
            jobs.finish(name)
        await within(tm.join())
        assert jobs.order == ["blocker", *expected]


async def test_a_task_submitted_later_with_a_better_priority_overtakes_the_waiting_ones() -> None:
    async with TaskManager(concurrency=1) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "blocker")
        await jobs.started("blocker")
        await submit(tm, jobs, "routine", 10)
        jobs.finish("blocker")
        await jobs.started("routine")
        await submit(tm, jobs, "later-normal", 10)
        await submit(tm, jobs, "urgent", 0)
        jobs.finish("routine")
        await jobs.started("urgent")
        jobs.finish("urgent")
        await jobs.started("later-normal")
        jobs.finish("later-normal")
        assert jobs.order == ["blocker", "routine", "urgent", "later-normal"]


async def test_a_cancelled_waiting_task_is_skipped() -> None:
    async with TaskManager(concurrency=1) as tm:
        jobs = Jobs()
        for name in ["a", "b", "c"]:
            await submit(tm, jobs, name)
        await jobs.started("a")
        await tm.cancel("b")
        jobs.finish("a")
        await jobs.started("c")
        jobs.finish("c")
        await within(tm.join())
        assert jobs.order == ["a", "c"]


# ----------------------------------------------------------------------- backpressure


async def test_submit_waits_while_max_pending_tasks_wait_and_goes_on_when_one_starts() -> None:
    async with TaskManager(concurrency=1, max_pending=2) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "running")
        await jobs.started("running")
        await submit(tm, jobs, "w1")
        await submit(tm, jobs, "w2")
        assert tm.pending_count() == 2

        blocked = asyncio.create_task(submit(tm, jobs, "w3"))
        await steps()
        assert not blocked.done()
        assert not tm.has("w3")

        jobs.finish("running")  # w1 starts, so one place is free
        assert await within(blocked) == "w3"
        await jobs.started("w1")
        info = tm.status("w3")
        assert info is not None
        assert info.status is Status.PENDING
        assert tm.pending_count() == 2
        for name in ["w1", "w2", "w3"]:
            await jobs.started(name)
            jobs.finish(name)
        await within(tm.join())


async def test_submit_nowait_raises_queue_full_and_closes_a_refused_coroutine() -> None:
    async with TaskManager(concurrency=1, max_pending=1) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "running")
        await jobs.started("running")
        tm.submit_nowait("waiting", jobs.run, "waiting")
        coro = jobs.run("refused")
        with pytest.raises(QueueFullError, match=r"1 tasks are already waiting \(max_pending=1\)"):
            tm.submit_nowait("refused", coro)
        assert isinstance(QueueFullError(), TaskwardError)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        assert not tm.has("refused")
        jobs.finish("running")
        jobs.finish("waiting")


async def test_a_burst_fills_the_free_slots_and_then_max_pending() -> None:
    # Tasks that a free slot will take are not "waiting": 3 slots + 2 places = 5 accepted.
    async with TaskManager(concurrency=3, max_pending=2) as tm:
        jobs = Jobs()
        for i in range(5):
            tm.submit_nowait(f"b{i}", jobs.run, f"b{i}")
        with pytest.raises(QueueFullError, match=r"^2 tasks are already waiting"):
            tm.submit_nowait("b5", jobs.run, "b5")
        await jobs.started("b2")
        assert (tm.running_count(), tm.pending_count()) == (3, 2)
        for i in range(5):
            jobs.finish(f"b{i}")
        await within(tm.join())


async def test_max_pending_zero_makes_submit_wait_for_a_free_slot() -> None:
    async with TaskManager(concurrency=1, max_pending=0) as tm:
        jobs = Jobs()
        await within(submit(tm, jobs, "first"))
        blocked = asyncio.create_task(submit(tm, jobs, "second"))
        await steps()
        assert not blocked.done()
        with pytest.raises(QueueFullError):
            tm.submit_nowait("third", jobs.run, "third")
        jobs.finish("first")
        await within(blocked)
        await jobs.started("second")
        jobs.finish("second")
        await within(tm.join())


async def test_max_pending_does_not_apply_when_nothing_ever_waits() -> None:
    async with TaskManager(max_pending=0) as tm:  # unbounded: every task runs at once
        jobs = Jobs()
        for i in range(3):
            await within(submit(tm, jobs, f"u{i}"))
        assert tm.running_count() == 3
        for i in range(3):
            jobs.finish(f"u{i}")


async def test_cancelling_a_waiting_task_makes_room_for_a_blocked_submit() -> None:
    async with TaskManager(concurrency=1, max_pending=1) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "running")
        await jobs.started("running")
        await submit(tm, jobs, "waiting")
        blocked = asyncio.create_task(submit(tm, jobs, "next"))
        await steps()
        assert not blocked.done()
        await tm.cancel("waiting")
        assert await within(blocked) == "next"
        jobs.finish("running")
        await jobs.started("next")
        jobs.finish("next")


async def test_a_cancelled_blocked_submit_passes_its_place_on() -> None:
    async with TaskManager(concurrency=1, max_pending=1) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "running")
        await jobs.started("running")
        await submit(tm, jobs, "waiting")
        coro = jobs.run("given-up")
        given_up = asyncio.create_task(tm.submit("given-up", coro))
        patient = asyncio.create_task(submit(tm, jobs, "patient"))
        await steps()
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        jobs.finish("running")
        assert await within(patient) == "patient"
        assert not tm.has("given-up")
        for name in ["waiting", "patient"]:
            await jobs.started(name)
            jobs.finish(name)


async def test_a_blocked_submit_is_refused_when_the_manager_shuts_down() -> None:
    tm = TaskManager(concurrency=1, max_pending=0, grace=0.5)
    jobs = Jobs()
    await submit(tm, jobs, "running")
    await jobs.started("running")
    blocked = asyncio.create_task(submit(tm, jobs, "blocked"))
    await steps()
    await within(tm.shutdown())
    with pytest.raises(ClosedError):
        await within(blocked)
    assert tm.names() == ["running"]


async def test_a_duplicate_name_is_refused_before_waiting_for_room() -> None:
    async with TaskManager(concurrency=1, max_pending=0) as tm:
        jobs = Jobs()
        await submit(tm, jobs, "running")
        await jobs.started("running")
        with pytest.raises(Exception, match="already Running"):
            await within(submit(tm, jobs, "running"), 0.5)
        jobs.finish("running")
