"""TaskManager basics: statuses, kinds of task, names, waiting, failures, retention, observers.

Cancellation and shutdown are in test_manager_cancel.py, concurrency and backpressure in
test_manager_bounded.py, periodic tasks in test_manager_every.py, random sequences in
test_manager_props.py. No test sleeps to synchronise: tasks are driven by futures and events,
and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

import taskward.manager
from taskward import Status, TaskInfo, TaskManager, progress
from taskward.errors import (
    DuplicateNameError,
    TaskFailedError,
    TaskTimeoutError,
    TaskwardError,
    UnknownTaskError,
)
from taskward.manager import Retention
from taskward.models import Progress

LOGGER = "taskward.manager"


class Job:
    """An async task body the test drives: it tells when it started and ends when told to."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.calls = 0
        self._outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def run(self) -> Any:
        self.calls += 1
        self.started.set()
        return await self._outcome

    def finish(self, value: Any = None) -> None:
        self._outcome.set_result(value)

    def fail(self, exc: BaseException) -> None:
        self._outcome.set_exception(exc)


class History:
    """Every snapshot a manager's listener was given."""

    def __init__(self, tm: TaskManager) -> None:
        self.infos: list[TaskInfo] = []
        self.remove = tm.add_listener(self.infos.append)

    def statuses(self, name: str) -> list[Status]:
        return [info.status for info in self.infos if info.name == name]


async def within(awaitable: Awaitable[Any], seconds: float = 1.0) -> Any:
    """Await with a bound; unlike wait_for, without wrapping it in a task of its own."""
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.fixture(autouse=True)
async def _asyncio_debug(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Asyncio debug mode, and no task destroyed while pending or with an unseen exception."""
    asyncio.get_running_loop().set_debug(True)
    yield
    for record in caplog.records:
        text = record.getMessage()
        assert "destroyed but it is pending" not in text
        assert "never retrieved" not in text


# ----------------------------------------------------------------------- statuses


async def test_a_bounded_task_goes_pending_running_completed() -> None:
    async with TaskManager(concurrency=1) as tm:
        history = History(tm)
        blocker, job = Job(), Job()
        await tm.submit("blocker", blocker.run)
        assert await tm.submit("report", job.run) == "report"
        # Bounded: even a task that will get a free slot is Pending until the slot takes it.
        assert (tm.pending_count(), tm.running_count()) == (2, 0)
        await within(blocker.started.wait())

        info = tm.status("report")
        assert info is not None
        assert (info.status, info.started_at, info.finished_at) == (Status.PENDING, None, None)
        assert info.is_active
        assert not info.is_finished
        assert (tm.pending_count(), tm.running_count()) == (1, 1)

        blocker.finish()
        await within(job.started.wait())
        info = tm.status("report")
        assert info is not None
        assert info.status is Status.RUNNING
        assert info.started_at is not None
        assert info.created_at <= info.started_at
        assert info.finished_at is None

        job.finish({"rows": 3})
        assert await within(tm.wait("report")) == {"rows": 3}
        info = tm.status("report")
        assert info is not None
        assert info.status is Status.COMPLETED
        assert info.result == {"rows": 3}
        assert info.error is None
        assert info.finished_at is not None
        assert info.started_at <= info.finished_at  # type: ignore[operator]
        assert info.is_finished
        assert history.statuses("report") == [Status.PENDING, Status.RUNNING, Status.COMPLETED]
        assert (tm.pending_count(), tm.running_count(), tm.count()) == (0, 0, 2)


async def test_an_unbounded_task_is_running_as_soon_as_it_is_submitted() -> None:
    async with TaskManager() as tm:
        history = History(tm)
        job = Job()
        await tm.submit("sync-data", job.run)
        info = tm.status("sync-data")
        assert info is not None
        assert info.status is Status.RUNNING
        assert info.started_at is not None
        assert tm.running_count() == 1
        assert tm.pending_count() == 0
        assert history.statuses("sync-data") == [Status.PENDING, Status.RUNNING]
        job.finish(7)
        assert await within(tm.wait("sync-data")) == 7


async def test_a_failing_task_is_failed_logged_with_its_name_and_the_manager_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def import_rows() -> None:
        raise ValueError("disk full")

    async def ok() -> str:
        return "fine"

    async with TaskManager(concurrency=1) as tm:
        history = History(tm)
        await tm.submit("import", import_rows)
        await tm.submit("after", ok)
        with pytest.raises(ValueError, match="disk full"):
            await within(tm.wait("import"))
        assert await within(tm.wait("after")) == "fine"

        info = tm.status("import")
        assert info is not None
        assert info.status is Status.FAILED
        assert info.error == "ValueError: disk full"
        assert history.statuses("import") == [Status.PENDING, Status.RUNNING, Status.FAILED]

    [record] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert "'import'" in record.getMessage()
    assert "disk full" in record.getMessage()
    assert record.exc_info is not None
    assert "import_rows" in "".join(traceback.format_exception(*record.exc_info))


async def test_an_exception_without_a_message_is_named_by_its_type() -> None:
    async def fails() -> None:
        raise KeyError

    async with TaskManager() as tm:
        await tm.submit("k", fails)
        with pytest.raises(KeyError):
            await within(tm.wait("k"))
        info = tm.status("k")
        assert info is not None
        assert info.error == "KeyError"


async def test_wait_raises_the_tasks_own_exception_each_time_without_piling_up_frames() -> None:
    error = RuntimeError("boom")

    async def fails() -> None:
        raise error

    async with TaskManager() as tm:
        await tm.submit("b", fails)
        depths = []
        for _ in range(3):
            with pytest.raises(RuntimeError) as caught:
                await within(tm.wait("b"))
            assert caught.value is error
            depths.append(len(traceback.extract_tb(caught.value.__traceback__)))
        # Only this wait's frames; none of the task's (dropped after logging) or earlier waits'.
        assert depths[0] == depths[1] == depths[2]
        assert "fails" not in {frame.name for frame in traceback.extract_tb(error.__traceback__)}


# ----------------------------------------------------------------------- kinds of task


async def test_a_sync_function_runs_in_a_thread_with_its_arguments() -> None:
    loop_thread = threading.get_ident()

    def add(a: int, b: int, *, scale: int = 1) -> tuple[int, int]:
        return (a + b) * scale, threading.get_ident()

    async with TaskManager() as tm:
        await tm.submit("add", add, 2, 3, scale=10)
        total, thread = await within(tm.wait("add"))
        assert total == 50
        assert thread != loop_thread


async def test_an_async_function_gets_its_arguments_and_priority_is_not_one_of_them() -> None:
    async def greet(name: str, *, punctuation: str) -> str:
        return f"hello {name}{punctuation}"

    async with TaskManager() as tm:
        await tm.submit("greet", greet, "ada", punctuation="!", priority=3)
        assert await within(tm.wait("greet")) == "hello ada!"
        info = tm.status("greet")
        assert info is not None
        assert info.priority == 3


async def test_a_coroutine_object_is_run() -> None:
    async def compute(x: int) -> int:
        return x * 2

    async with TaskManager() as tm:
        await tm.submit("c", compute(21))
        assert await within(tm.wait("c")) == 42


async def test_a_coroutine_object_with_arguments_is_refused_and_closed() -> None:
    async def compute() -> int:
        return 1

    coro = compute()
    async with TaskManager() as tm:
        with pytest.raises(TypeError, match="coroutine object"):
            await tm.submit("c", coro, 1)
        assert not tm.has("c")
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_a_sync_callable_that_returns_an_awaitable_has_it_awaited() -> None:
    async def compute() -> str:
        return "awaited"

    class MakesAwaitable:
        def __call__(self) -> Awaitable[str]:
            return compute()

    async with TaskManager() as tm:
        await tm.submit("lambda", lambda: compute())
        await tm.submit("object", MakesAwaitable())
        assert await within(tm.wait("lambda")) == "awaited"
        assert await within(tm.wait("object")) == "awaited"


async def test_something_not_callable_is_refused() -> None:
    async with TaskManager() as tm:
        with pytest.raises(TypeError, match="coroutine or a callable"):
            await tm.submit("x", 42)  # type: ignore[arg-type]
        assert tm.count() == 0


# ----------------------------------------------------------------------- names


async def test_a_name_that_is_pending_or_running_is_refused() -> None:
    async with TaskManager(concurrency=1) as tm:
        running, pending = Job(), Job()
        await tm.submit("running", running.run)
        await tm.submit("pending", pending.run)
        await within(running.started.wait())
        with pytest.raises(DuplicateNameError, match="'running' is already Running"):
            await tm.submit("running", Job().run)
        with pytest.raises(DuplicateNameError, match="'pending' is already Pending"):
            tm.submit_nowait("pending", Job().run)
        assert isinstance(DuplicateNameError(), TaskwardError)
        running.finish("first")
        assert await within(tm.wait("running")) == "first"
        assert running.calls == 1


async def test_a_refused_coroutine_object_is_closed_not_left_unawaited() -> None:
    async def work() -> None:
        return None

    async with TaskManager() as tm:
        job = Job()
        await tm.submit("busy", job.run)
        coro = work()
        with pytest.raises(DuplicateNameError):
            await tm.submit("busy", coro)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        job.finish()


async def test_a_finished_name_is_replaced_by_a_new_task() -> None:
    async def value(v: str) -> str:
        return v

    async with TaskManager() as tm:
        await tm.submit("nightly", value, "old")
        assert await within(tm.wait("nightly")) == "old"
        job = Job()
        await tm.submit("nightly", job.run)
        info = tm.status("nightly")
        assert info is not None
        assert info.status is Status.RUNNING
        assert info.result is None
        assert tm.count() == 1
        job.finish("new")
        assert await within(tm.wait("nightly")) == "new"


async def test_no_name_picks_a_unique_one() -> None:
    async def noop() -> None:
        return None

    async with TaskManager() as tm:
        await tm.submit("task-2", noop)
        names = [await tm.submit(None, noop) for _ in range(3)]
        assert names == ["task-1", "task-3", "task-4"]
        assert tm.count() == 4


@pytest.mark.parametrize("name", ["", 3, b"bytes"])
async def test_a_name_must_be_a_non_empty_string(name: Any) -> None:
    async def noop() -> None:
        return None

    async with TaskManager() as tm:
        with pytest.raises(ValueError, match="non-empty string"):
            await tm.submit(name, noop)


@pytest.mark.parametrize("priority", ["1", 1.5, True, None])
async def test_a_priority_must_be_an_int(priority: Any) -> None:
    async def noop() -> None:
        return None

    async with TaskManager() as tm:
        with pytest.raises(ValueError, match="priority must be an int"):
            await tm.submit("p", noop, priority=priority)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"max_pending": -1}, "max_pending"),
        ({"grace": -1}, "grace"),
        ({"grace": float("nan")}, "grace"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskManager(**kwargs)


# ----------------------------------------------------------------------- querying


async def test_queries_see_each_task_by_status() -> None:
    async def fails() -> None:
        raise RuntimeError("no")

    async def noop() -> None:
        return None

    async with TaskManager(concurrency=1) as tm:
        await tm.submit("done", noop)
        await tm.submit("failed", fails)
        await within(tm.join())
        running, waiting = Job(), Job()
        await tm.submit("running", running.run)
        await tm.submit("waiting", waiting.run)
        await within(running.started.wait())

        assert tm.names() == ["done", "failed", "running", "waiting"]
        assert tm.names(Status.RUNNING) == ["running"]
        assert tm.names(status=[Status.COMPLETED, Status.FAILED]) == ["done", "failed"]
        assert tm.names({Status.CANCELLED}) == []
        assert (tm.count(), tm.running_count(), tm.pending_count()) == (4, 1, 1)
        assert tm.has("done")
        assert not tm.has("nope")
        assert tm.status("nope") is None
        running.finish()
        waiting.finish()


async def test_wait_times_out_without_touching_the_task() -> None:
    async with TaskManager() as tm:
        job = Job()
        await tm.submit("slow", job.run)
        with pytest.raises(TaskTimeoutError, match=r"did not finish within 0\.01s") as caught:
            await tm.wait("slow", timeout=0.01)
        assert isinstance(caught.value, TimeoutError)
        info = tm.status("slow")
        assert info is not None
        assert info.status is Status.RUNNING
        job.finish("late")
        assert await within(tm.wait("slow")) == "late"


async def test_a_cancelled_wait_leaves_the_task_and_other_waiters_alone() -> None:
    async with TaskManager() as tm:
        job = Job()
        await tm.submit("t", job.run)
        first = asyncio.create_task(tm.wait("t"))
        second = asyncio.create_task(tm.wait("t"))
        await within(job.started.wait())
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        job.finish("ok")
        assert await within(second) == "ok"


async def test_wait_on_an_unknown_name_raises_unknown_task() -> None:
    async with TaskManager() as tm:
        with pytest.raises(UnknownTaskError, match="'ghost'") as caught:
            await tm.wait("ghost")
        assert isinstance(caught.value, LookupError)
        with pytest.raises(UnknownTaskError):
            await tm.cancel("ghost")


async def test_join_waits_for_every_task_and_times_out() -> None:
    async with TaskManager(concurrency=2) as tm:
        await within(tm.join())  # nothing to wait for
        jobs = [Job() for _ in range(3)]
        for i, job in enumerate(jobs):
            await tm.submit(f"j{i}", job.run)
        with pytest.raises(TaskTimeoutError, match="still active"):
            await tm.join(timeout=0.01)
        joined = asyncio.create_task(tm.join())
        for job in jobs[:2]:
            job.finish()
        await within(jobs[2].started.wait())
        assert not joined.done()
        jobs[2].finish()
        await within(joined)
        assert tm.names(Status.COMPLETED) == ["j0", "j1", "j2"]


# ----------------------------------------------------------------------- BaseException


class Halt(BaseException):
    """Not an Exception: like KeyboardInterrupt, it must not be swallowed."""


async def test_a_base_exception_fails_the_task_is_logged_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def halt() -> None:
        raise Halt("stop everything")

    async def ok() -> str:
        return "still served"

    async with TaskManager(concurrency=1) as tm:
        await tm.submit("halt", halt)
        await tm.submit("next", ok)
        assert await within(tm.wait("next")) == "still served"
        info = tm.status("halt")
        assert info is not None
        assert info.status is Status.FAILED
        assert info.error == "Halt: stop everything"
        with pytest.raises(TaskFailedError, match="'halt' failed: Halt: stop everything"):
            await tm.wait("halt")
    assert any(
        "'halt'" in r.getMessage() and r.levelno == logging.ERROR and r.exc_info
        for r in caplog.records
    )


def test_keyboard_interrupt_in_a_task_reaches_the_caller_of_the_event_loop() -> None:
    tm = TaskManager()

    async def interrupted() -> None:
        raise KeyboardInterrupt

    async def main() -> None:
        await tm.submit("ki", interrupted)
        await tm.join(timeout=2)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    info = tm.status("ki")
    assert info is not None
    assert info.status is Status.FAILED
    assert info.error == "KeyboardInterrupt"


# ----------------------------------------------------------------------- cleanup, retention


class Clock:
    """Stands in for the `time` module inside the manager, so ages need no real waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(taskward.manager, "time", fake)
    return fake


async def noop() -> None:
    return None


async def test_cleanup_finished_forgets_finished_tasks_only(clock: Clock) -> None:
    async with TaskManager() as tm:
        await tm.submit("old", noop)
        await within(tm.join())
        clock.now += 100
        await tm.submit("recent", noop)
        await within(tm.join())
        job = Job()
        await tm.submit("active", job.run)

        assert tm.cleanup_finished(older_than=50) == 1
        assert tm.names() == ["recent", "active"]
        assert tm.cleanup_finished() == 1
        assert tm.names() == ["active"]
        assert tm.status("old") is None
        job.finish()
        await within(tm.wait("active"))
        assert tm.cleanup_finished() == 1
        assert tm.count() == 0


async def test_retain_max_finished_bounds_memory_keeping_the_newest() -> None:
    async with TaskManager(concurrency=4, retain=Retention(max_finished=5)) as tm:
        for i in range(200):
            await tm.submit(f"t{i:03d}", noop)
        await within(tm.join())
        assert tm.count() == 5
        assert tm.names() == [f"t{i:03d}" for i in range(195, 200)]


async def test_retain_max_age_forgets_old_tasks_as_new_ones_finish(clock: Clock) -> None:
    async with TaskManager(retain=Retention(max_finished=None, max_age=60)) as tm:
        await tm.submit("a", noop)
        await within(tm.join())
        clock.now += 30
        await tm.submit("b", noop)
        await within(tm.join())
        assert tm.names() == ["a", "b"]
        clock.now += 31  # a is 61 s old, b 31 s
        await tm.submit("c", noop)
        await within(tm.join())
        assert tm.names() == ["b", "c"]


async def test_retention_keeps_active_tasks_and_a_waiter_still_gets_the_result() -> None:
    async with TaskManager(retain=Retention(max_finished=0)) as tm:
        job = Job()
        await tm.submit("kept-while-running", job.run)
        waiter = asyncio.create_task(tm.wait("kept-while-running"))
        await within(job.started.wait())
        assert tm.has("kept-while-running")
        job.finish("result")
        assert await within(waiter) == "result"
        assert not tm.has("kept-while-running")


async def test_a_replaced_name_is_not_forgotten_in_place_of_the_old_one() -> None:
    async with TaskManager(retain=Retention(max_finished=1)) as tm:
        await tm.submit("a", noop)
        await within(tm.join())
        job = Job()
        await tm.submit("a", job.run)
        await tm.submit("b", noop)
        await within(tm.wait("b"))
        assert tm.names() == ["a", "b"]  # the new, running "a" stays
        job.finish()
        await within(tm.wait("a"))
        assert tm.names() == ["a"]


@pytest.mark.parametrize("kwargs", [{"max_finished": -1}, {"max_age": -1.0}])
def test_bad_retention_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Retention(**kwargs)


# ----------------------------------------------------------------------- observers


async def test_listeners_see_each_change_a_failing_one_is_logged_and_removal_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str | None, Status]] = []

    def broken(info: TaskInfo) -> None:
        raise RuntimeError("listener bug")

    async with TaskManager() as tm:
        tm.add_listener(broken)
        remove = tm.add_listener(lambda info: seen.append((info.name, info.status)))
        await tm.submit("a", noop)
        assert await within(tm.wait("a")) is None
        remove()
        remove()  # twice is harmless
        await tm.submit("b", noop)
        await within(tm.wait("b"))
    assert seen == [("a", Status.PENDING), ("a", Status.RUNNING), ("a", Status.COMPLETED)]
    assert any("listener failed" in r.getMessage() for r in caplog.records)


async def test_events_iterates_over_changes_until_shutdown() -> None:
    tm = TaskManager()
    seen: list[tuple[str | None, Status]] = []

    async def consume() -> None:
        async for info in tm.events():
            seen.append((info.name, info.status))

    consumer = asyncio.create_task(consume())
    # One loop step, not a timed wait: the iterator subscribes in the consumer's first step.
    await asyncio.sleep(0)
    await tm.submit("e", noop)
    await within(tm.wait("e"))
    await within(tm.shutdown())
    await within(consumer)
    assert seen == [("e", Status.PENDING), ("e", Status.RUNNING), ("e", Status.COMPLETED)]
    assert [info async for info in tm.events()] == []  # closed: ends at once


async def test_listeners_are_called_before_submit_returns() -> None:
    seen: list[Status] = []
    async with TaskManager() as tm:
        tm.add_listener(lambda info: seen.append(info.status))
        await tm.submit("x", noop)
        assert seen == [Status.PENDING, Status.RUNNING]  # synchronously, in submit
        await within(tm.wait("x"))
        assert seen == [Status.PENDING, Status.RUNNING, Status.COMPLETED]


async def test_progress_of_gives_the_last_report_without_a_snapshot() -> None:
    reported = asyncio.Event()
    release = asyncio.Event()

    async def job() -> None:
        progress(3, 10, "three")
        reported.set()
        await release.wait()

    async with TaskManager() as tm:
        assert tm.progress_of("job") is None  # no such task
        await tm.submit("job", job)
        async with asyncio.timeout(2):
            await reported.wait()
        last = tm.progress_of("job")
        assert last == Progress(3, 10, "three")
        status = tm.status("job")
        assert status is not None
        assert status.progress == last
        release.set()
