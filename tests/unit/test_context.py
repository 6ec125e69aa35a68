"""What a running task can ask about itself: ``taskward.current_task()``, ``progress()`` and
``cancelled()``, in async tasks, sync tasks run in a thread, and outside any task."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any

import pytest

import taskward
from taskward import Status, TaskInfo, TaskManager
from taskward.models import Progress


async def within(awaitable: Awaitable[Any], seconds: float = 1.0) -> Any:
    """Await with a bound; unlike wait_for, without wrapping it in a task of its own."""
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.fixture(autouse=True)
async def _asyncio_debug() -> None:
    asyncio.get_running_loop().set_debug(True)


# ----------------------------------------------------------------------- current_task


async def test_current_task_is_the_name_of_the_running_task_and_none_outside() -> None:
    async def whoami() -> str | None:
        return taskward.current_task()

    def whoami_in_a_thread() -> str | None:
        return taskward.current_task()

    assert taskward.current_task() is None
    async with TaskManager(concurrency=2) as tm:
        await tm.submit("async-one", whoami)
        await tm.submit("sync-one", whoami_in_a_thread)
        await tm.submit("coro-one", whoami())
        assert await within(tm.wait("async-one")) == "async-one"
        assert await within(tm.wait("sync-one")) == "sync-one"
        assert await within(tm.wait("coro-one")) == "coro-one"
    assert taskward.current_task() is None


async def test_tasks_run_one_after_another_in_a_slot_each_see_their_own_name() -> None:
    async def whoami() -> str | None:
        return taskward.current_task()

    async with TaskManager(concurrency=1) as tm:
        for i in range(3):
            await tm.submit(f"t{i}", whoami)
        assert [await within(tm.wait(f"t{i}")) for i in range(3)] == ["t0", "t1", "t2"]


async def test_a_child_asyncio_task_inherits_the_name_of_the_task_that_made_it() -> None:
    async def child() -> str | None:
        return taskward.current_task()

    async def parent() -> str | None:
        return await asyncio.create_task(child())

    async with TaskManager() as tm:
        await tm.submit("parent", parent)
        assert await within(tm.wait("parent")) == "parent"


# ----------------------------------------------------------------------- progress


async def test_progress_updates_the_tasks_info_and_tells_the_listeners() -> None:
    step = asyncio.Event()
    reported = asyncio.Event()

    async def export() -> None:
        taskward.progress(1, 4, "first chunk")
        reported.set()
        await step.wait()
        taskward.progress(4, 4)

    async with TaskManager() as tm:
        seen: list[TaskInfo] = []
        tm.add_listener(seen.append)
        await tm.submit("export", export)
        await within(reported.wait())
        info = tm.status("export")
        assert info is not None
        assert info.progress == Progress(1, 4, "first chunk")
        assert info.progress.fraction == 0.25
        step.set()
        await within(tm.wait("export"))
        done = tm.status("export")
        assert done is not None
        assert done.progress == Progress(4, 4, None)
    assert [(i.status, i.progress) for i in seen] == [
        (Status.PENDING, None),
        (Status.RUNNING, None),
        (Status.RUNNING, Progress(1, 4, "first chunk")),
        (Status.RUNNING, Progress(4, 4, None)),
        (Status.COMPLETED, Progress(4, 4, None)),
    ]


async def test_progress_from_a_sync_task_reaches_listeners_on_the_event_loop_thread() -> None:
    loop_thread = threading.get_ident()
    calls: list[tuple[float, bool]] = []

    def crunch() -> None:
        for done in (1, 2, 3):
            taskward.progress(done, 3, f"step {done}")

    def listen(info: TaskInfo) -> None:
        if info.progress is not None and info.status is Status.RUNNING:
            calls.append((info.progress.done, threading.get_ident() == loop_thread))

    async with TaskManager() as tm:
        tm.add_listener(listen)
        await tm.submit("crunch", crunch)
        await within(tm.wait("crunch"))
        info = tm.status("crunch")
        assert info is not None
        assert info.progress == Progress(3, 3, "step 3")
    assert [on_loop for _, on_loop in calls] == [True] * len(calls)
    assert calls[0][0] == 1


async def test_progress_outside_a_task_is_a_no_op() -> None:
    # Called by code that is not a task (here, while a task runs), it returns without an
    # error and reaches no task: neither the running one's info nor any listener.
    started = asyncio.Event()
    release = asyncio.Event()
    seen: list[TaskInfo] = []

    async def work() -> None:
        started.set()
        await release.wait()

    async with TaskManager() as tm:
        tm.add_listener(seen.append)
        await tm.submit("w", work)
        await within(started.wait())
        assert taskward.current_task() is None  # the test itself is outside any task
        heard = len(seen)
        taskward.progress(1, 2, "nobody listens")
        await within(asyncio.to_thread(taskward.progress, 2, 2, "nor from a thread"))
        running = tm.status("w")
        assert running is not None
        assert (running.status, running.progress) == (Status.RUNNING, None)
        assert seen[heard:] == []
        release.set()
        await within(tm.wait("w"))
        done = tm.status("w")
        assert done is not None
        assert (done.status, done.progress) == (Status.COMPLETED, None)
    assert all(info.progress is None for info in seen)


async def test_progress_with_no_listener_still_updates_the_info() -> None:
    async def work() -> None:
        taskward.progress(0.5)

    async with TaskManager() as tm:
        await tm.submit("w", work)
        await within(tm.wait("w"))
        info = tm.status("w")
        assert info is not None
        assert info.progress == Progress(0.5)
        assert info.progress.fraction is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1,), "done must be >= 0"),
        ((float("nan"),), "done must be a finite number"),
        ((float("inf"),), "done must be a finite number"),
        ((True,), "done must be a finite number"),
        (("3",), "done must be a finite number"),
        ((1, -1), "total must be"),
        ((1, float("inf")), "total must be"),
        ((1, False), "total must be"),
        ((1, 2, 3), "message must be a string"),
    ],
)
def test_bad_progress_is_refused_even_outside_a_task(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        taskward.progress(*args)


# ----------------------------------------------------------------------- cancelled


async def test_cancelled_turns_true_once_cancellation_is_asked_for() -> None:
    assert taskward.cancelled() is False
    started = asyncio.Event()
    seen: list[bool] = []

    async def careful() -> None:
        seen.append(taskward.cancelled())
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append(taskward.cancelled())
            raise

    async with TaskManager() as tm:
        await tm.submit("careful", careful)
        await within(started.wait())
        await within(tm.cancel("careful"))
    assert seen == [False, True]
    assert taskward.cancelled() is False
