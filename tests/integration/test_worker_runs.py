"""The worker in this process, on memory and on a SQLite file: running, results, progress,
sync functions, retries with backoff, timeouts, delays, slots, and `taskward.testing.drain`."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

import pytest
from integration_helpers import StoreFactory, count, fast_worker, running, tid

import taskward
from taskward.app import App
from taskward.errors import TaskFailedError
from taskward.models import Progress, Status
from taskward.retry import Backoff
from taskward.stores.base import NewTask, TaskRecord
from taskward.testing import FakeClock, drain
from waiting import eventually, get, wait_status


async def test_a_task_runs_and_its_result_is_stored_as_json(app: App) -> None:
    @app.task
    async def crunch(n: int, label: str) -> dict[str, Any]:
        return {"n": n * 2, "label": label, "items": [1, 2.5, None]}

    async with running(fast_worker(app)):
        t = await crunch.submit(n=21, label="x")
        assert await app.wait(tid(t), timeout=2) == {"n": 42, "label": "x", "items": [1, 2.5, None]}
    info = await get(app, tid(t))
    assert info.status is Status.COMPLETED
    assert (info.attempts, info.error, info.traceback) == (1, None, None)
    assert info.started_at is not None
    assert info.finished_at is not None
    assert info.started_at <= info.finished_at
    row = await (await app.connect()).get(tid(t))
    assert row is not None
    assert row.result is not None
    assert json.loads(row.result) == {"n": 42, "label": "x", "items": [1, 2.5, None]}
    assert row.lease_token is None


async def test_progress_is_visible_while_running_and_final_at_the_end(app: App) -> None:
    reported = asyncio.Event()
    go_on = asyncio.Event()

    @app.task
    async def steps(total: int) -> str:
        taskward.progress(1, total, "first step")
        reported.set()
        await go_on.wait()
        taskward.progress(total, total, "all done")
        return "ok"

    async with running(fast_worker(app, cancel_poll=0.05)):
        t = await steps.submit(total=3)
        await asyncio.wait_for(reported.wait(), 2)

        async def shows_first_step() -> bool:
            info = await get(app, tid(t))
            return info.status is Status.RUNNING and info.progress == Progress(1, 3, "first step")

        await eventually(shows_first_step)  # flushed by the watch, every cancel_poll
        go_on.set()
        assert await app.wait(tid(t), timeout=2) == "ok"
    info = await get(app, tid(t))
    assert info.progress == Progress(3, 3, "all done")
    assert info.progress.fraction == 1.0


async def test_progress_is_flushed_when_the_task_ends(app: App) -> None:
    @app.task
    async def quick() -> None:
        taskward.progress(5, 10, "half")

    # The watch would flush only every 60 s: what is stored comes from the end-of-run flush.
    async with running(fast_worker(app, cancel_poll=60.0)):
        t = await quick.submit()
        await app.wait(tid(t), timeout=2)
    assert (await get(app, tid(t))).progress == Progress(5, 10, "half")


async def test_sync_task_functions_run_in_a_thread(app: App) -> None:
    release = threading.Event()
    loop_thread = threading.get_ident()

    @app.task
    def blocking(x: int) -> dict[str, int]:
        taskward.progress(1, 2, "in a thread")
        release.wait(5)  # blocks its thread, never the event loop
        return {"x": x * 2, "thread": threading.get_ident()}

    @app.task
    async def quick() -> str:
        return "done"

    try:
        async with running(fast_worker(app, concurrency=2)):
            slow = await blocking.submit(x=4)
            await wait_status(app, tid(slow), Status.RUNNING)
            # The loop keeps serving other tasks while the sync one blocks.
            fast = await quick.submit()
            assert await app.wait(tid(fast), timeout=2) == "done"
            assert (await get(app, tid(slow))).status is Status.RUNNING
            release.set()
            result = await app.wait(tid(slow), timeout=2)
    finally:
        release.set()
    assert result["x"] == 8
    assert result["thread"] != loop_thread
    assert (await get(app, tid(slow))).progress == Progress(1, 2, "in a thread")


async def test_failing_task_backs_off_exponentially_then_fails_for_good(app: App) -> None:
    starts: list[float] = []
    backoff = Backoff(base=0.02, cap=0.05, jitter=0.0)  # delays 0.02, 0.04, then capped 0.05

    @app.task(max_attempts=4, retry=backoff)
    async def flaky() -> None:
        starts.append(time.time())
        raise ValueError(f"boom {len(starts)}")

    async with running(fast_worker(app)):
        t = await flaky.submit()
        info = await wait_status(app, tid(t), Status.FAILED)
    assert len(starts) == 4
    assert info.attempts == 4
    assert info.error == "ValueError: boom 4"
    assert info.traceback is not None
    assert "Traceback (most recent call last)" in info.traceback
    assert "in flaky" in info.traceback
    assert "ValueError: boom 4" in info.traceback
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    expected = [backoff.next_delay(n, rand=0.0) for n in (1, 2, 3)]
    assert expected == [0.02, 0.04, 0.05]
    for gap, delay in zip(gaps, expected, strict=True):
        assert delay - 0.002 <= gap < delay + 1.0, (gaps, expected)
    with pytest.raises(TaskFailedError, match="boom 4"):
        await app.wait(tid(t), timeout=1)


async def test_a_retry_keeps_the_last_error_until_a_later_attempt_succeeds(app: App) -> None:
    second_started = asyncio.Event()
    finish = asyncio.Event()
    calls = 0

    @app.task(max_attempts=3, retry=Backoff(base=0.01, cap=0.05))
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first try")
        second_started.set()
        await finish.wait()
        return "second try"

    async with running(fast_worker(app)):
        t = await flaky.submit()
        await asyncio.wait_for(second_started.wait(), 2)
        during = await get(app, tid(t))
        assert (during.status, during.attempts) == (Status.RUNNING, 2)
        assert during.error == "RuntimeError: first try"
        finish.set()
        assert await app.wait(tid(t), timeout=2) == "second try"
    after = await get(app, tid(t))
    assert (after.status, after.attempts, after.error, after.traceback) == (
        Status.COMPLETED,
        2,
        None,
        None,
    )


async def test_a_timeout_cancels_the_run_and_counts_as_a_failed_attempt(app: App) -> None:
    cancelled_runs = 0

    @app.task(max_attempts=2, retry=Backoff(base=0.01, cap=0.05))
    async def stuck() -> None:
        nonlocal cancelled_runs
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled_runs += 1
            raise

    async with running(fast_worker(app)):
        started = time.monotonic()
        t = await stuck.submit(timeout=0.1)
        info = await wait_status(app, tid(t), Status.FAILED)
        took = time.monotonic() - started
    assert cancelled_runs == 2  # each attempt's run was really cancelled
    assert info.attempts == 2
    assert info.error == "timed out after 0.1s"
    assert info.traceback is not None
    assert "TimeoutError" in info.traceback
    assert 0.2 <= took < 2.0


async def test_a_timed_out_attempt_is_retried(app: App) -> None:
    calls = 0

    @app.task(timeout=0.1, max_attempts=3, retry=Backoff(base=0.01, cap=0.05))
    async def slow_then_fast() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(30)
        return calls

    async with running(fast_worker(app)):
        t = await slow_then_fast.submit()
        assert await app.wait(tid(t), timeout=2) == 2
    info = await get(app, tid(t))
    assert (info.status, info.attempts, info.error) == (Status.COMPLETED, 2, None)


async def test_a_delayed_task_runs_at_its_time_and_not_before(app: App) -> None:
    ran_at: list[float] = []

    @app.task
    async def later() -> None:
        ran_at.append(time.time())

    @app.task
    async def now() -> None:
        pass

    poll = 0.02
    async with running(fast_worker(app, poll_interval=poll)):
        t = await later.submit(delay=0.3)
        assert t.run_at is not None
        due = t.run_at.timestamp()
        # A task submitted after it runs first: the worker claimed since, and left this one.
        q = await now.submit()
        await app.wait(tid(q), timeout=2)
        early = await get(app, tid(t))
        if time.time() < due:  # (on a very slow machine the barrier itself may be late)
            assert (early.status, ran_at) == (Status.PENDING, [])
        await app.wait(tid(t), timeout=2)
    assert len(ran_at) == 1
    assert due <= ran_at[0] < due + poll + 0.3


async def test_claims_only_as_many_tasks_as_free_slots(app: App) -> None:
    release = asyncio.Semaphore(0)
    active = peak = returned = 0

    @app.task
    async def gated(i: int) -> int:
        nonlocal active, peak, returned
        active += 1
        peak = max(peak, active)
        try:
            await release.acquire()
            return i
        finally:
            active -= 1
            returned += 1

    # Tasks become Running only by a claim: the store is looked at right after each one (no
    # sampling, no time window), and each claim is checked against the slots free then.
    store = await app.connect()
    real_claim = store.claim
    store_peak = 0
    over_asked: list[tuple[int, int]] = []

    async def claim_and_look(
        worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        nonlocal store_peak
        if limit > 2 - active:
            over_asked.append((limit, active))
        got = await real_claim(worker_id, queues, limit, lease)
        by_status = (await app.counts()).by_status()
        # A run whose function has returned frees its slot at once, and stays Running in the
        # store until its outcome is written, which the next claim may overlap: it does not
        # count here. The others are the runs the worker holds or is starting.
        unwritten = returned - by_status[Status.COMPLETED]
        store_peak = max(store_peak, by_status[Status.RUNNING] - unwritten)
        return got

    store.claim = claim_and_look  # type: ignore[method-assign]

    def counts_are(running: int, completed: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            by_status = (await app.counts()).by_status()
            return (by_status[Status.RUNNING], by_status[Status.COMPLETED]) == (running, completed)

        return check

    async with running(fast_worker(app, concurrency=2)):
        ids = [tid(await gated.submit(i=i)) for i in range(5)]
        await eventually(counts_are(running=2, completed=0))
        assert await count(app, Status.PENDING) == 3  # the rest wait in the store
        for done in range(1, 6):
            release.release()  # one run ends: one more is claimed, while any is left
            await eventually(counts_are(running=min(2, 5 - done), completed=done))
            assert await count(app, Status.PENDING) == max(0, 3 - done)
    assert over_asked == []
    assert peak == 2
    assert store_peak == 2
    assert sorted([await app.wait(i, timeout=1) for i in ids]) == [0, 1, 2, 3, 4]


async def test_unknown_task_and_unstorable_result_fail_without_retry(app: App) -> None:
    @app.task(max_attempts=3)
    async def unstorable() -> object:
        return object()

    store = await app.connect()
    [ghost] = await store.insert([NewTask(id=uuid4(), task="ghost", max_attempts=3)])
    bad = await unstorable.submit()
    await drain(app, timeout=5)
    ghost_info = await get(app, ghost.id)
    assert (ghost_info.status, ghost_info.attempts) == (Status.FAILED, 1)
    assert ghost_info.error is not None
    assert "unknown task 'ghost'" in ghost_info.error
    bad_info = await get(app, tid(bad))
    assert (bad_info.status, bad_info.attempts) == (Status.FAILED, 1)
    assert bad_info.error is not None
    assert "cannot be stored as JSON" in bad_info.error


async def test_drain_runs_due_tasks_and_returns(app: App) -> None:
    ran: list[int] = []

    @app.task
    async def record(i: int) -> int:
        ran.append(i)
        return i

    ids = [tid(await record.submit(i=i)) for i in range(3)]
    later = await record.submit(i=99, delay=3600)
    await drain(app, timeout=5)
    assert sorted(ran) == [0, 1, 2]
    assert [(await get(app, i)).status for i in ids] == [Status.COMPLETED] * 3
    assert (await get(app, tid(later))).status is Status.PENDING  # not due: left alone
    await drain(app, timeout=5)  # nothing due: returns at once
    assert sorted(ran) == [0, 1, 2]


async def test_drain_with_a_fake_clock_runs_delays_and_retries_when_time_moves(
    make_store: StoreFactory,
) -> None:
    clock = FakeClock()
    app = App(make_store(clock))
    calls = 0

    @app.task(max_attempts=2, retry=Backoff(base=10, cap=10, jitter=0))
    async def send(to: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first run of the second task fails once
            raise ConnectionError("smtp down")
        return to

    first = await send.submit(to="a@b.c", delay=60)
    await drain(app, timeout=5)
    assert calls == 0
    assert (await get(app, tid(first))).status is Status.PENDING
    clock.advance(60)
    await drain(app, timeout=5)
    assert await app.wait(tid(first), timeout=1) == "a@b.c"

    second = await send.submit(to="d@e.f")
    await drain(app, timeout=5)  # fails once; the retry waits 10 s of fake time
    info = await get(app, tid(second))
    assert (info.status, info.attempts, info.error) == (
        Status.PENDING,
        1,
        "ConnectionError: smtp down",
    )
    clock.advance(10)
    await drain(app, timeout=5)
    assert await app.wait(tid(second), timeout=1) == "d@e.f"
    assert (await get(app, tid(second))).attempts == 2


async def test_an_error_text_no_store_could_hold_is_stored_escaped(app: App) -> None:
    @app.task(max_attempts=1)
    async def garbled() -> None:
        raise RuntimeError("bytes \x00 and \ud800 from a socket")

    t = await app.submit(garbled)
    async with running(fast_worker(app)):
        info = await wait_status(app, tid(t), Status.FAILED)
    assert info.error == "RuntimeError: bytes \\x00 and \\ud800 from a socket"
    assert info.traceback is not None
    assert "\x00" not in info.traceback
