"""Periodic work with ``TaskManager.every``: repeated runs, no overlap, errors that do not stop
the schedule, a queryable status, and a stop on cancel or shutdown."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable
from typing import Any

import pytest

import taskward
from taskward import Status, TaskManager

# Intervals are tiny so that a test takes milliseconds; what is asserted never depends on
# how long a run or a tick really took, only on counts and order.
TICK = 0.001


async def within(awaitable: Awaitable[Any], seconds: float = 2.0) -> Any:
    """Await with a bound; unlike wait_for, without wrapping it in a task of its own."""
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.fixture(autouse=True)
async def _asyncio_debug() -> None:
    asyncio.get_running_loop().set_debug(True)


class Counter:
    """A periodic body that sets ``reached`` once it has run ``target`` times."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.runs = 0
        self.reached = asyncio.Event()

    async def tick(self) -> int:
        self.runs += 1
        if self.runs >= self.target:
            self.reached.set()
        return self.runs


async def test_every_runs_repeatedly_stays_running_and_counts_its_runs() -> None:
    async with TaskManager() as tm:
        counter = Counter(3)
        assert tm.every(TICK, "heartbeat", counter.tick) == "heartbeat"
        await within(counter.reached.wait())
        info = tm.status("heartbeat")
        assert info is not None
        assert info.status is Status.RUNNING
        assert info.progress is not None
        assert info.progress.done >= 3
        assert info.progress.message is not None
        assert info.progress.message.endswith("runs, 0 failed")
        assert info.result >= 3  # the last run's return value
        assert tm.running_count() == 1

        final = await within(tm.cancel("heartbeat"))
        assert final.status is Status.CANCELLED
        runs = counter.runs
    assert counter.runs == runs  # stopped: no run after the cancel


async def test_every_does_not_overlap_a_run_that_overruns_its_interval() -> None:
    active = 0
    peak = 0
    runs = 0
    done = asyncio.Event()

    async def slow() -> None:
        nonlocal active, peak, runs
        active += 1
        peak = max(peak, active)
        # The work itself takes 20 ticks (this sleep is the job, not a synchronisation).
        await asyncio.sleep(20 * TICK)
        active -= 1
        runs += 1
        if runs == 3:
            done.set()

    async with TaskManager() as tm:
        tm.every(TICK, "slow", slow)
        await within(done.wait())
    assert peak == 1


async def test_a_failing_run_is_logged_and_recorded_and_the_schedule_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    again = asyncio.Event()

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("upstream down")
        if calls >= 3:
            again.set()
        return "ok"

    async with TaskManager() as tm:
        tm.every(TICK, "sync", flaky)
        await within(again.wait())
        info = tm.status("sync")
        assert info is not None
        assert info.status is Status.RUNNING
        assert info.error == "ConnectionError: upstream down"  # the last failure, kept
        assert info.progress is not None
        assert info.progress.message is not None
        assert info.progress.message.endswith(", 1 failed")
    [record] = [
        r for r in caplog.records if r.name == "taskward.manager" and r.levelno >= logging.ERROR
    ]
    assert "'sync'" in record.getMessage()
    assert record.exc_info is not None


async def test_a_sync_function_runs_in_a_thread_and_knows_its_task() -> None:
    seen: list[tuple[str | None, bool]] = []
    reached = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()

    def poll() -> None:
        seen.append((taskward.current_task(), threading.get_ident() != loop_thread))
        if len(seen) == 2:
            loop.call_soon_threadsafe(reached.set)

    async with TaskManager() as tm:
        tm.every(TICK, "poll", poll)
        await within(reached.wait())
    assert seen[:2] == [("poll", True), ("poll", True)]


async def test_every_stops_on_shutdown() -> None:
    counter = Counter(1)
    tm = TaskManager()
    async with tm:
        tm.every(TICK, "tick", counter.tick)
        await within(counter.reached.wait())
    info = tm.status("tick")
    assert info is not None
    assert info.status is Status.CANCELLED
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_run_now_false_waits_one_interval_before_the_first_run() -> None:
    loop = asyncio.get_running_loop()
    first_at: list[float] = []
    ran = asyncio.Event()

    async def mark() -> None:
        first_at.append(loop.time())
        ran.set()

    interval = 0.05
    async with TaskManager() as tm:
        submitted_at = loop.time()
        tm.every(interval, "later", mark, run_now=False)
        await within(ran.wait())
    assert first_at[0] - submitted_at >= interval * 0.9  # never early (timer resolution aside)


async def test_every_passes_arguments() -> None:
    got: list[tuple[int, str]] = []
    reached = asyncio.Event()

    async def record(n: int, *, label: str) -> None:
        got.append((n, label))
        reached.set()

    async with TaskManager() as tm:
        tm.every(TICK, "args", record, 7, label="x")
        await within(reached.wait())
    assert got[0] == (7, "x")


async def test_an_every_task_holds_a_slot_of_a_bounded_manager() -> None:
    counter = Counter(1)
    ran = asyncio.Event()

    async def other() -> None:
        ran.set()

    async with TaskManager(concurrency=1) as tm:
        tm.every(TICK, "tick", counter.tick)
        await within(counter.reached.wait())
        await tm.submit("other", other)
        # Three more runs, so the periodic task has been between runs since "other" came:
        # it keeps its slot there too, and "other" stays Pending.
        counter.target = counter.runs + 3
        counter.reached.clear()
        await within(counter.reached.wait())
        info = tm.status("other")
        assert info is not None
        assert info.status is Status.PENDING
        await tm.cancel("tick")
        await within(ran.wait())


async def test_an_every_name_follows_the_usual_name_rules() -> None:
    counter = Counter(1)
    async with TaskManager() as tm:
        tm.every(TICK, "tick", counter.tick)
        with pytest.raises(taskward.TaskwardError, match="already Running"):
            tm.every(TICK, "tick", counter.tick)


@pytest.mark.parametrize("interval", [0, -1, float("inf"), float("nan"), "1"])
async def test_a_bad_interval_is_refused(interval: Any) -> None:
    async def noop() -> None:
        return None

    async with TaskManager() as tm:
        with pytest.raises(ValueError, match="interval"):
            tm.every(interval, "x", noop)
        assert tm.count() == 0


async def test_a_coroutine_object_is_refused_by_every() -> None:
    async def noop() -> None:
        return None

    coro = noop()
    async with TaskManager() as tm:
        with pytest.raises(TypeError, match="function to call each time"):
            tm.every(1.0, "x", coro)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
