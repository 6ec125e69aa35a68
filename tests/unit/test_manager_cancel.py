"""TaskManager cancellation and shutdown: Pending vs Running vs ignoring cancellation, the
grace period, abandoned tasks, and leaving nothing pending in the event loop."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

import taskward
from taskward import Status, TaskInfo, TaskManager
from taskward.errors import ClosedError, TaskCancelledError

LOGGER = "taskward.manager"


async def within(awaitable: Awaitable[Any], seconds: float = 1.0) -> Any:
    """Await with a bound; unlike wait_for, without wrapping it in a task of its own."""
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.fixture(autouse=True)
async def _asyncio_debug(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Asyncio debug mode, and no task destroyed while pending or with an unseen exception."""
    asyncio.get_running_loop().set_debug(True)
    caplog.set_level(logging.INFO, logger=LOGGER)
    yield
    gc.collect()
    for record in caplog.records:
        text = record.getMessage()
        assert "destroyed but it is pending" not in text
        assert "never retrieved" not in text


class Job:
    """An async task body the test drives, with a choice of how it meets cancellation.

    ``on_cancel``: "stop" ends at once; "ignore" keeps going until ``finish()``; "raise"
    raises RuntimeError; "return" returns a value; "clean" awaits ``cleanup`` then stops.
    """

    def __init__(self, on_cancel: str = "stop") -> None:
        self.on_cancel = on_cancel
        self.started = asyncio.Event()
        self.saw_cancel = asyncio.Event()
        self.ended = asyncio.Event()
        self.cleanup = asyncio.Event()
        self.cleaned = False
        self.calls = 0
        self._outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def run(self) -> Any:
        self.calls += 1
        self.started.set()
        try:
            return await asyncio.shield(self._outcome)
        except asyncio.CancelledError:
            self.saw_cancel.set()
            if self.on_cancel == "ignore":
                return await self._outcome
            if self.on_cancel == "raise":
                raise RuntimeError("broke while stopping") from None
            if self.on_cancel == "return":
                return "stopped early"
            if self.on_cancel == "clean":
                await self.cleanup.wait()
                self.cleaned = True
            raise
        finally:
            self.ended.set()

    def finish(self, value: Any = None) -> None:
        self._outcome.set_result(value)


def warnings_about(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING and repr(name) in r.getMessage()
    ]


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


# ----------------------------------------------------------------------- cancel Pending


async def test_cancelling_a_pending_task_cancels_it_at_once_and_it_never_runs() -> None:
    async with TaskManager(concurrency=1) as tm:
        seen: list[Status] = []
        tm.add_listener(lambda info: seen.append(info.status) if info.name == "queued" else None)
        busy, queued = Job(), Job()
        await tm.submit("busy", busy.run)
        await tm.submit("queued", queued.run)
        await within(busy.started.wait())

        info = await within(tm.cancel("queued"), 0.5)
        assert info.status is Status.CANCELLED
        assert info.started_at is None
        assert info.finished_at is not None
        assert seen == [Status.PENDING, Status.CANCELLED]
        assert tm.pending_count() == 0
        with pytest.raises(TaskCancelledError, match="'queued' was cancelled"):
            await tm.wait("queued")

        busy.finish()
        await within(tm.join())
        assert queued.calls == 0


async def test_a_cancelled_pending_coroutine_object_is_closed() -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    async with TaskManager(concurrency=1) as tm:
        busy = Job()
        await tm.submit("busy", busy.run)
        coro = never()
        await tm.submit("queued", coro)
        await tm.cancel("queued")
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        busy.finish()


# ----------------------------------------------------------------------- cancel Running


@pytest.mark.parametrize("concurrency", [None, 1])
async def test_cancelling_a_running_task_stops_it_and_the_next_one_runs(
    concurrency: int | None,
) -> None:
    async with TaskManager(concurrency=concurrency) as tm:
        job, after = Job(), Job()
        await tm.submit("job", job.run)
        await tm.submit("after", after.run)
        await within(job.started.wait())

        info = await within(tm.cancel("job", grace=5.0))
        assert info.status is Status.CANCELLED
        assert info.error is None
        assert job.saw_cancel.is_set()
        assert job.ended.is_set()
        assert tm.names(Status.RUNNING) == ["after"]  # bounded: the freed slot took it at once
        await within(after.started.wait())
        after.finish("ran")
        assert await within(tm.wait("after")) == "ran"


async def test_a_task_cancelled_right_after_submit_is_cancelled_without_waiting_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    async with TaskManager() as tm:
        coro = never()
        await tm.submit("coro", coro)
        await tm.submit("fn", never)
        # Running (unbounded) but not started: it cannot ignore cancellation, so no grace.
        assert (await within(tm.cancel("coro", grace=30), 0.5)).status is Status.CANCELLED
        assert (await within(tm.cancel("fn", grace=30), 0.5)).status is Status.CANCELLED
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        assert tm.running_count() == 0
    assert warnings_about(caplog, "coro") == []
    assert warnings_about(caplog, "fn") == []


async def test_a_task_that_handles_cancellation_by_returning_is_still_cancelled() -> None:
    async with TaskManager() as tm:
        job = Job(on_cancel="return")
        await tm.submit("r", job.run)
        await within(job.started.wait())
        info = await within(tm.cancel("r"))
        assert info.status is Status.CANCELLED
        with pytest.raises(TaskCancelledError):
            await tm.wait("r")


async def test_a_task_that_raises_while_cancelled_is_cancelled_with_that_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TaskManager() as tm:
        job = Job(on_cancel="raise")
        await tm.submit("r", job.run)
        await within(job.started.wait())
        info = await within(tm.cancel("r"))
        assert info.status is Status.CANCELLED
        assert info.error == "RuntimeError: broke while stopping"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_task_ignoring_cancellation_is_abandoned_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TaskManager(concurrency=1) as tm:
        stubborn, after = Job(on_cancel="ignore"), Job()
        await tm.submit("stubborn", stubborn.run)
        await tm.submit("after", after.run)
        await within(stubborn.started.wait())

        info = await within(tm.cancel("stubborn", grace=0.05), 2.0)
        assert stubborn.saw_cancel.is_set()
        assert not stubborn.ended.is_set()  # still going: reported, not awaited forever
        assert info.status is Status.CANCELLED
        assert info.error == "ignored cancellation for 0.05s"
        [warning] = warnings_about(caplog, "stubborn")
        assert "ignored cancellation" in warning
        assert "abandoned" in warning
        await within(after.started.wait())  # the abandoned task's slot was handed on
        assert tm.names(Status.RUNNING) == ["after"]

        stubborn.finish("too late")
        await within(stubborn.ended.wait())
        info_after = tm.status("stubborn")
        assert info_after is not None
        assert info_after.status is Status.CANCELLED  # stays as it was reported
        assert info_after.result is None
        after.finish()
        await within(tm.wait("after"))
    await asyncio.sleep(0)  # one loop step for the abandoned task's own end to be processed
    assert other_tasks() == set()


async def test_cancelling_a_finished_task_leaves_it_as_it_was() -> None:
    async def value() -> int:
        return 5

    async with TaskManager() as tm:
        await tm.submit("done", value)
        await within(tm.wait("done"))
        info = await tm.cancel("done")
        assert info.status is Status.COMPLETED
        assert info.result == 5


async def test_a_second_cancel_does_not_cut_into_the_first_ones_cleanup() -> None:
    async with TaskManager(concurrency=2) as tm:
        job = Job(on_cancel="clean")
        await tm.submit("cleaning", job.run)
        await within(job.started.wait())
        first = asyncio.create_task(tm.cancel("cleaning", grace=2))
        await within(job.saw_cancel.wait())
        second = asyncio.create_task(tm.cancel("cleaning", grace=2))
        shutdown = asyncio.create_task(tm.shutdown(grace=2))
        for _ in range(3):  # let both reach their wait (loop steps, not time)
            await asyncio.sleep(0)
        job.cleanup.set()
        infos: list[TaskInfo] = await within(asyncio.gather(first, second))
        await within(shutdown)
        assert job.cleaned
        assert [info.status for info in infos] == [Status.CANCELLED, Status.CANCELLED]


async def test_a_cancelled_sync_task_keeps_running_in_its_thread_and_can_see_it() -> None:
    started = threading.Event()
    noticed = threading.Event()

    def crunch() -> str:
        started.set()
        for _ in range(400):  # at most ~2 s: the test fails rather than hangs
            if taskward.cancelled():
                noticed.set()
                return "stopped by its own check"
            noticed.wait(0.005)
        return "never noticed"

    async with TaskManager() as tm:
        await tm.submit("crunch", crunch)
        assert await within(asyncio.to_thread(started.wait, 2))
        info = await within(tm.cancel("crunch", grace=1))
        # The await of the thread was cancelled; the thread itself goes on until it checks.
        assert info.status is Status.CANCELLED
        assert await within(asyncio.to_thread(noticed.wait, 2), 3)


# ----------------------------------------------------------------------- shutdown


async def test_shutdown_cancels_everything_and_logs_each_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def value() -> str:
        return "done"

    tm = TaskManager(concurrency=3, grace=0.05)
    polite, stubborn, raising, waiting = (
        Job(),
        Job(on_cancel="ignore"),
        Job(on_cancel="raise"),
        Job(),
    )
    async with tm:
        await tm.submit("finished", value)
        await within(tm.wait("finished"))
        for name, job in [("polite", polite), ("stubborn", stubborn), ("raising", raising)]:
            await tm.submit(name, job.run)
            await within(job.started.wait())
        await tm.submit("waiting", waiting.run)
        assert tm.names(Status.RUNNING) == ["polite", "stubborn", "raising"]

    assert tm.closed
    statuses = {name: info.status for name in tm.names() if (info := tm.status(name))}
    assert statuses == {
        "finished": Status.COMPLETED,
        "polite": Status.CANCELLED,
        "stubborn": Status.CANCELLED,
        "raising": Status.CANCELLED,
        "waiting": Status.CANCELLED,
    }
    assert waiting.calls == 0
    assert (tm.running_count(), tm.pending_count()) == (0, 0)
    logged = {r.getMessage() for r in caplog.records if r.name == LOGGER}
    for name in ["polite", "raising"]:
        assert f"shutdown: task {name!r} ended Cancelled" in logged
    # The stubborn one is still running: logged as abandoned, never as ended.
    assert not [m for m in logged if m.startswith("shutdown: task 'stubborn' ended")]
    abandoned, summary = warnings_about(caplog, "stubborn")
    assert "ignored cancellation for 0.1s: abandoned while still running" in abandoned
    assert summary.startswith("shutdown: task 'stubborn' abandoned, still running")
    assert "asyncio.run" in summary
    assert not stubborn.ended.is_set()
    assert warnings_about(caplog, "polite") == []

    # Only the abandoned task is left, and it is referenced until it ends.
    assert len(other_tasks()) == 1
    gc.collect()
    stubborn.finish()
    await within(stubborn.ended.wait())
    await asyncio.sleep(0)  # one loop step for its end to be processed
    assert other_tasks() == set()


async def test_shutdown_right_after_submitting_does_not_wait_the_grace() -> None:
    async def work() -> None:
        await asyncio.Event().wait()

    tm = TaskManager(grace=30)

    async def use() -> None:
        async with tm:
            for i in range(3):
                await tm.submit(f"w{i}", work)

    await within(use(), 1.0)
    assert tm.names(Status.CANCELLED) == ["w0", "w1", "w2"]


async def test_shutdown_is_bounded_by_its_grace() -> None:
    async with TaskManager() as tm:
        stubborn = Job(on_cancel="ignore")
        await tm.submit("stubborn", stubborn.run)
        await within(stubborn.started.wait())
        await within(tm.shutdown(grace=0.05), 2.0)
        info = tm.status("stubborn")
        assert info is not None
        assert info.status is Status.CANCELLED
        stubborn.finish()
        await within(stubborn.ended.wait())


async def test_after_shutdown_nothing_new_is_taken() -> None:
    async def noop() -> None:
        return None

    tm = TaskManager()
    await tm.shutdown()
    await tm.shutdown()  # twice is harmless
    coro = noop()
    with pytest.raises(ClosedError, match="shutting down"):
        await tm.submit("late", coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(ClosedError):
        tm.submit_nowait("late", noop)
    with pytest.raises(ClosedError):
        tm.every(1.0, "tick", noop)
    assert tm.count() == 0


async def test_a_task_may_not_submit_during_shutdown() -> None:
    outcome: list[BaseException] = []
    started = asyncio.Event()

    async def spawner() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            try:
                await tm.submit("child", spawner)
            except ClosedError as exc:
                outcome.append(exc)
            raise

    tm = TaskManager()
    async with tm:
        await tm.submit("parent", spawner)
        await within(started.wait())
    assert len(outcome) == 1
    assert not tm.has("child")


async def test_tasks_never_started_leave_no_pending_task_in_the_loop() -> None:
    async def work() -> None:
        await asyncio.Event().wait()

    async with TaskManager(concurrency=2) as tm:
        for i in range(10):
            await tm.submit(f"w{i}", work, priority=i % 3)
    await asyncio.sleep(0)  # one loop step: slots created but never run reach their end
    assert other_tasks() == set()
    gc.collect()
