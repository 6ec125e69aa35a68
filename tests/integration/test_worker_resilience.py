"""Lost leases, store outages and pruning, with the worker in this process, on memory and on
a SQLite file. Real processes and signals are in tests/e2e/test_worker_faults.py."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import pytest
from integration_helpers import FaultyStore, StoreFactory, fast_worker, running, tid

from taskward.app import App
from taskward.errors import StoreError
from taskward.models import Status
from taskward.stores.base import TaskRecord
from taskward.testing import FakeClock
from taskward.worker import Pruning
from waiting import eventually, get, wait_status


async def _hand_over(app: App, task_id: UUID) -> TaskRecord:
    """Do to a running task what a rescue plus another worker's claim do: take its lease."""
    store = await app.connect()
    row = await store.get(task_id)
    assert row is not None
    assert row.status is Status.RUNNING
    assert row.lease_token is not None
    assert await store.requeue(row.id, row.lease_token)
    [stolen] = await store.claim("another-worker", None, 1, 30.0)
    assert stolen.id == row.id
    assert stolen.lease_token != row.lease_token
    return stolen


async def test_a_late_completion_after_the_lease_was_lost_is_rejected(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    started = asyncio.Event()
    finish = asyncio.Event()
    returned = asyncio.Event()

    @app.task
    async def job() -> str:
        started.set()
        await finish.wait()
        returned.set()
        return "stale result"

    # One slot (so this worker cannot re-claim the task) and a long lease (so no heartbeat
    # notices the loss first): the stale run reaches its end and tries to write it.
    worker = fast_worker(app, concurrency=1, lease=30.0)
    async with running(worker) as worker_run:
        t = await job.submit()
        await asyncio.wait_for(started.wait(), 2)
        stolen = await _hand_over(app, tid(t))
        finish.set()
        await asyncio.wait_for(returned.wait(), 2)
        await eventually(lambda: "lease lost" in caplog.text)
        await eventually(lambda: worker.running == 0)
        assert not worker_run.done()
    row = await (await app.connect()).get(tid(t))
    assert row == stolen  # unchanged: still the other worker's, no result, no finish
    assert (row.status, row.worker_id, row.result, row.finished_at) == (
        Status.RUNNING,
        "another-worker",
        None,
        None,
    )


async def test_a_heartbeat_that_finds_the_lease_lost_stops_the_stale_run(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    started = asyncio.Event()
    stopped = asyncio.Event()

    @app.task
    async def job() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "stale result"

    worker = fast_worker(app, concurrency=1, lease=0.3)  # a heartbeat every 0.1 s
    async with running(worker):
        t = await job.submit()
        await asyncio.wait_for(started.wait(), 2)
        stolen = await _hand_over(app, tid(t))
        await asyncio.wait_for(stopped.wait(), 2)
        await eventually(lambda: worker.running == 0)
    assert "lease lost to another worker" in caplog.text
    row = await (await app.connect()).get(tid(t))
    assert row is not None
    assert (row.status, row.worker_id, row.lease_token, row.error, row.finished_at) == (
        Status.RUNNING,
        "another-worker",
        stolen.lease_token,
        None,
        None,
    )


async def test_an_expired_lease_is_rescued_and_the_stalled_worker_cannot_overwrite(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    store = make_store()
    broken = FaultyStore(store)
    broken.broken.add("heartbeat")  # this worker's leases can no longer be renewed
    stalled_app, healthy_app = App(broken), App(store)
    first_started = asyncio.Event()
    finish_first = asyncio.Event()
    calls = 0

    async def job() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            first_started.set()
            await finish_first.wait()
            return "from the stalled worker"
        return "from the rescuer"

    stalled_app.task(name="job")(job)
    healthy_app.task(name="job")(job)
    stalled = fast_worker(stalled_app, concurrency=1, lease=0.3, worker_id="stalled")
    rescuer = fast_worker(healthy_app, concurrency=1, lease=0.3, worker_id="rescuer")
    async with running(stalled):
        t = await stalled_app.submit("job")
        await asyncio.wait_for(first_started.wait(), 2)
        async with running(rescuer):
            assert await healthy_app.wait(tid(t), timeout=3) == "from the rescuer"
        # It found out by itself: its lease ran out unrenewed, so it stopped the run and
        # wrote nothing (the store's fence would have refused it anyway).
        await eventually(lambda: "lease not renewed" in caplog.text)
        finish_first.set()
    info = await get(healthy_app, tid(t))
    assert (info.status, info.result, info.attempts) == (
        Status.COMPLETED,
        "from the rescuer",
        2,  # the rescue counted as an attempt
    )
    assert calls == 2
    assert broken.failed["heartbeat"] >= 1


async def test_a_store_outage_is_retried_and_loses_nothing(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    store = FaultyStore(make_store(), fail={"claim": 3, "finish": 2})
    app = App(store)
    calls = 0

    @app.task
    async def job(x: int) -> int:
        nonlocal calls
        calls += 1
        return x + 1

    async with running(fast_worker(app)) as worker_run:
        t = await job.submit(x=1)
        assert await app.wait(tid(t), timeout=5) == 2
        assert not worker_run.done()  # the worker rode it out
        # ... and goes on serving.
        again = await job.submit(x=10)
        assert await app.wait(tid(again), timeout=2) == 11
    assert store.failed == {"claim": 3, "finish": 2}
    assert calls == 2  # an outage does not rerun a task
    info = await get(app, tid(t))
    assert (info.status, info.attempts, info.error) == (Status.COMPLETED, 1, None)
    assert "store claim failed" in caplog.text
    assert "store write failed" in caplog.text


async def test_an_outage_of_every_store_call_heals_without_crash(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    store = FaultyStore(make_store())
    app = App(store)
    started = asyncio.Event()
    go_on = asyncio.Event()

    @app.task
    async def job() -> str:
        started.set()
        await go_on.wait()
        return "ok"

    async with running(fast_worker(app, lease=3.0)) as worker_run:
        t = await job.submit()
        await asyncio.wait_for(started.wait(), 2)
        # While the task runs, the store goes away for every call the worker makes.
        store.broken.update({"claim", "finish", "set_progress", "heartbeat", "rescue"})
        go_on.set()
        await eventually(lambda: store.failed["claim"] >= 2 and store.failed["finish"] >= 2)
        assert not worker_run.done()
        assert (await get(app, tid(t))).status is Status.RUNNING
        store.broken.clear()
        assert await app.wait(tid(t), timeout=5) == "ok"
    assert (await get(app, tid(t))).attempts == 1
    assert "store claim failed" in caplog.text
    assert "store write failed" in caplog.text


async def test_the_worker_prunes_finished_tasks_past_their_retention(
    make_store: StoreFactory,
) -> None:
    clock = FakeClock()
    store = FaultyStore(make_store(clock))  # counts prune calls, injects nothing
    app = App(store)

    @app.task
    async def ok() -> str:
        return "ok"

    @app.task(max_attempts=1)
    async def bad() -> None:
        raise RuntimeError("no")

    completed, failed = await ok.submit(), await bad.submit()
    cancelled = await ok.submit(delay=3600)
    await app.cancel(tid(cancelled))
    retention = Pruning(completed=10.0, failed=None, cancelled=20.0, every=0.05)
    worker = fast_worker(app, lease=0.3, pruning=retention)  # maintenance every 0.1 s

    async def passes(n: int) -> None:
        """Wait for ``n`` more prune passes of the worker's maintenance loop."""
        target = store.calls["prune"] + n
        await eventually(lambda: store.calls["prune"] >= target)

    async with running(worker):
        await wait_status(app, tid(completed), Status.COMPLETED)
        await wait_status(app, tid(failed), Status.FAILED)
        await passes(2)
        for t in (completed, failed, cancelled):
            await get(app, tid(t))  # young: all kept
        clock.advance(15)
        await passes(2)
        assert await app.get(tid(completed)) is None  # 15 s > 10 s
        await get(app, tid(cancelled))  # 15 s < 20 s
        clock.advance(10)
        await passes(2)
        assert await app.get(tid(cancelled)) is None
        assert (await get(app, tid(failed))).status is Status.FAILED  # kept: failed=None


async def test_a_store_that_cannot_be_opened_yet_is_tried_again_at_start(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    # The database is still starting when the worker does: its first three opens fail.
    store = FaultyStore(make_store(), fail={"open": 3})
    submitter, app = App(store.inner), App(store)

    async def hello() -> str:
        return "hi"

    submitter.task(name="hello")(hello)
    app.task(name="hello")(hello)
    t = await submitter.submit("hello")
    async with running(fast_worker(app)):
        assert await submitter.wait(tid(t), timeout=5) == "hi"
    assert store.failed["open"] == 3
    assert "store open failed (injected outage: open failed)" in caplog.text


async def test_a_store_that_stays_unreachable_fails_the_start_with_one_clear_error(
    make_store: StoreFactory,
) -> None:
    store = FaultyStore(make_store())
    store.broken.add("open")
    worker = fast_worker(App(store), connect_timeout=0.3)
    with pytest.raises(StoreError, match=r"stayed unreachable for 0.3s: injected outage"):
        await asyncio.wait_for(worker.run(), 5)
    assert store.calls["open"] >= 2
