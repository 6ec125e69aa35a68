"""Cancelling tasks and stopping the worker, in this process, on memory and on a SQLite file."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from integration_helpers import fast_worker, running, tid

from taskward.app import App
from taskward.errors import TaskCancelledError
from taskward.models import Status
from taskward.testing import drain
from waiting import eventually, get, wait_status


async def test_cancelling_a_pending_task_cancels_it_at_once(app: App) -> None:
    calls = 0

    @app.task
    async def never() -> None:
        nonlocal calls
        calls += 1

    t = await never.submit()
    info = await app.cancel(tid(t))
    assert info.status is Status.CANCELLED
    assert info.finished_at is not None
    assert (await get(app, tid(t))).status is Status.CANCELLED
    await drain(app, timeout=5)
    assert calls == 0
    assert (await get(app, tid(t))).status is Status.CANCELLED


async def test_cancelling_a_running_task_stops_it_within_a_second_and_no_retry(
    app: App,
) -> None:
    started = asyncio.Event()
    seen: list[str] = []

    @app.task(max_attempts=3)
    async def long() -> None:
        seen.append("start")
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("CancelledError")
            raise

    @app.task
    async def quick() -> str:
        return "ok"

    async with running(fast_worker(app, concurrency=2)) as worker_run:
        t = await long.submit()
        await asyncio.wait_for(started.wait(), 2)
        asked_at = time.monotonic()
        asked = await app.cancel(tid(t))
        assert asked.status is Status.RUNNING  # asked; the worker delivers it
        info = await wait_status(app, tid(t), Status.CANCELLED, timeout=1.0)
        assert time.monotonic() - asked_at < 1.0
        # Not retried: a task submitted after it runs to the end while it stays Cancelled.
        q = await quick.submit()
        assert await app.wait(tid(q), timeout=2) == "ok"
        assert not worker_run.done()
    assert seen == ["start", "CancelledError"]
    final = await get(app, tid(t))
    assert final == info
    assert (final.status, final.attempts) == (Status.CANCELLED, 1)
    assert final.error is not None
    assert "cancel" in final.error
    with pytest.raises(TaskCancelledError):
        await app.wait(tid(t), timeout=1)


async def test_a_sync_task_that_ignores_cancellation_still_ends_cancelled(app: App) -> None:
    started = threading.Event()
    release = threading.Event()
    ended = threading.Event()

    @app.task
    def stubborn() -> str:
        started.set()
        release.wait(5)  # never checks taskward.cancelled()
        ended.set()
        return "finished anyway"

    try:
        async with running(fast_worker(app)):
            t = await stubborn.submit()
            assert await asyncio.to_thread(started.wait, 2)
            await app.cancel(tid(t))
            await wait_status(app, tid(t), Status.CANCELLED, timeout=1.0)
            assert not ended.is_set()  # its thread is still going
            release.set()
            assert await asyncio.to_thread(ended.wait, 2)
    finally:
        release.set()
    info = await get(app, tid(t))
    assert (info.status, info.result, info.attempts) == (Status.CANCELLED, None, 1)


async def test_an_async_task_that_swallows_cancellation_still_ends_cancelled(app: App) -> None:
    started = asyncio.Event()
    swallowed = asyncio.Event()

    @app.task
    async def stubborn() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.set()  # ignores the cancel and finishes its work
        await asyncio.sleep(0.1)
        return "finished anyway"

    async with running(fast_worker(app)):
        t = await stubborn.submit()
        await asyncio.wait_for(started.wait(), 2)
        await app.cancel(tid(t))
        await asyncio.wait_for(swallowed.wait(), 1)
        info = await wait_status(app, tid(t), Status.CANCELLED, timeout=1.0)
    assert (info.result, info.attempts) == (None, 1)


async def test_graceful_stop_lets_running_tasks_finish_and_claims_no_more(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    started = asyncio.Event()
    finish = asyncio.Event()

    @app.task
    async def job(i: int) -> int:
        started.set()
        await finish.wait()
        return i

    worker = fast_worker(app, grace=5.0)
    worker_run = asyncio.create_task(worker.run())
    try:
        t = await job.submit(i=1)
        await asyncio.wait_for(started.wait(), 2)
        worker.stop()
        late = await job.submit(i=2)  # after the stop: must not be claimed
        await eventually(lambda: "stopping, waiting up to" in caplog.text)
        assert not worker_run.done()  # waiting for the running task, within the grace
        assert worker.running == 1
        finish.set()
        await asyncio.wait_for(worker_run, 2)
    finally:
        if not worker_run.done():
            worker.stop()
            await asyncio.wait_for(worker_run, 5)
    done = await get(app, tid(t))
    assert (done.status, done.result, done.attempts) == (Status.COMPLETED, 1, 1)
    waiting = await get(app, tid(late))
    assert (waiting.status, waiting.attempts) == (Status.PENDING, 0)


async def test_past_the_grace_running_tasks_are_released_with_the_attempt_refunded(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    started = asyncio.Event()
    finish = asyncio.Event()
    seen: list[str] = []

    @app.task
    async def job() -> str:
        started.set()
        try:
            await finish.wait()
        except asyncio.CancelledError:
            seen.append("CancelledError")
            raise
        return "done"

    worker = fast_worker(app, grace=0.2)
    worker_run = asyncio.create_task(worker.run())
    try:
        t = await job.submit()
        await asyncio.wait_for(started.wait(), 2)
        stopped_at = time.monotonic()
        worker.stop()
        await asyncio.wait_for(worker_run, 3)
        took = time.monotonic() - stopped_at
    finally:
        if not worker_run.done():
            worker.stop()
            await asyncio.wait_for(worker_run, 5)
    assert 0.2 <= took < 1.5
    assert seen == ["CancelledError"]
    released = await get(app, tid(t))
    assert (released.status, released.attempts, released.error) == (Status.PENDING, 0, None)
    row = await (await app.connect()).get(tid(t))
    assert row is not None
    assert (row.lease_token, row.lease_expires_at) == (None, None)  # the lease is given up
    assert "released" in caplog.text
    # The next worker runs it as its first attempt.
    finish.set()
    await drain(app, timeout=5)
    again = await get(app, tid(t))
    assert (again.status, again.attempts, again.result) == (Status.COMPLETED, 1, "done")


async def test_a_second_stop_releases_running_tasks_at_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    started = asyncio.Event()

    @app.task
    async def job() -> None:
        started.set()
        await asyncio.sleep(30)

    worker = fast_worker(app, grace=30.0)
    worker_run = asyncio.create_task(worker.run())
    try:
        t = await job.submit()
        await asyncio.wait_for(started.wait(), 2)
        worker.stop()
        await eventually(lambda: "stopping, waiting up to" in caplog.text)
        assert not worker_run.done()
        stopped_at = time.monotonic()
        worker.stop()
        await asyncio.wait_for(worker_run, 3)
        assert time.monotonic() - stopped_at < 1.0
    finally:
        if not worker_run.done():
            worker_run.cancel()
    released = await get(app, tid(t))
    assert (released.status, released.attempts) == (Status.PENDING, 0)
