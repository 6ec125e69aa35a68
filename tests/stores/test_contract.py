"""The store contract: every store (see conftest.STORE_FACTORIES) must pass every test here.

Time is the fake clock the store reads, moved with ``clock.advance``; waits are bounded with
``asyncio.wait_for``, never bare sleeps.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from store_helpers import START, FakeClock, new

from taskward.errors import DuplicateNameError, InvalidTransitionError
from taskward.models import Status
from taskward.stores import NewTask, Store, TaskRecord
from taskward.stores.base import Outcome

LEASE = 30.0


async def claim_one(store: Store, worker: str = "w1", lease: float = LEASE) -> TaskRecord:
    """Claim exactly one task."""
    claimed = await store.claim(worker, None, 1, lease)
    assert len(claimed) == 1
    return claimed[0]


async def running(store: Store, task: NewTask | None = None) -> TaskRecord:
    """Insert a task and claim it."""
    await store.insert([task or new()])
    return await claim_one(store)


# -- insert and read -------------------------------------------------------------------------


async def test_insert_then_get_round_trips(store: Store) -> None:
    t = NewTask(
        id=uuid4(),
        task="reports.build",
        args='{"month": 3}',
        name="march",
        priority=-2,
        queue="reports",
        max_attempts=5,
        timeout=12.5,
    )
    [row] = await store.insert([t])
    assert row.id == t.id
    assert (row.task, row.args, row.name) == ("reports.build", '{"month": 3}', "march")
    assert (row.priority, row.queue, row.max_attempts, row.timeout) == (-2, "reports", 5, 12.5)
    assert row.status is Status.PENDING
    assert row.attempts == 0
    assert row.created_at == row.run_at == START
    assert (row.started_at, row.finished_at, row.lease_token, row.worker_id) == (None,) * 4
    assert row.cancel_requested is False
    assert (row.result, row.error, row.traceback, row.progress) == (None,) * 4
    assert await store.get(t.id) == row
    assert await store.get_by_name("march") == row


async def test_unknown_ids_and_names_read_as_none(store: Store) -> None:
    assert await store.get(uuid4()) is None
    assert await store.get_by_name("nobody") is None


async def test_insert_returns_rows_in_order_with_rising_seq(store: Store) -> None:
    tasks = [new(task=f"t{i}") for i in range(5)]
    rows = await store.insert(tasks)
    assert [r.id for r in rows] == [t.id for t in tasks]
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    [later] = await store.insert([new()])
    assert later.seq > seqs[-1]
    assert await store.insert([]) == []


async def test_delay_and_run_at_set_when_a_task_is_due(store: Store) -> None:
    delayed, scheduled = await store.insert([new(delay=60), new(run_at=START + 5)])
    assert delayed.run_at == START + 60
    assert scheduled.run_at == START + 5
    with pytest.raises(ValueError, match="not both"):
        await store.insert([new(delay=1, run_at=START)])


# -- names -----------------------------------------------------------------------------------


async def test_an_active_name_refuses_the_whole_insert(store: Store) -> None:
    await store.insert([new("nightly")])
    before = (await store.counts()).by_status()
    with pytest.raises(DuplicateNameError, match="nightly"):
        await store.insert([new("other"), new(), new("nightly")])
    assert (await store.counts()).by_status() == before
    assert await store.get_by_name("other") is None


async def test_a_name_twice_in_one_insert_is_refused(store: Store) -> None:
    with pytest.raises(DuplicateNameError, match="twin"):
        await store.insert([new("twin"), new("twin")])
    assert (await store.counts()).by_status()[Status.PENDING] == 0


async def test_a_running_task_still_holds_its_name(store: Store) -> None:
    await running(store, new("job"))
    with pytest.raises(DuplicateNameError):
        await store.insert([new("job")])


async def test_a_finished_name_can_be_reused(store: Store, clock: FakeClock) -> None:
    first = await running(store, new("job"))
    assert await store.finish(first.id, _token(first), Status.COMPLETED)
    clock.advance(1)
    [second] = await store.insert([new("job")])
    assert second.id != first.id
    assert await store.get_by_name("job") == second  # the active one
    got = await claim_one(store)
    assert await store.finish(got.id, _token(got), Status.FAILED, error="boom")
    clock.advance(1)
    latest = await store.get_by_name("job")  # none active: the most recent
    assert latest is not None
    assert latest.id == second.id
    assert latest.status is Status.FAILED


async def test_get_by_name_prefers_the_active_task(store: Store) -> None:
    old = await running(store, new("job"))
    await store.finish(old.id, _token(old), Status.CANCELLED)
    [active] = await store.insert([new("job", delay=100)])
    newer = await store.insert([new("unrelated")])
    assert newer
    found = await store.get_by_name("job")
    assert found is not None
    assert found.id == active.id


# -- claim -----------------------------------------------------------------------------------


async def test_claim_order_is_priority_then_run_at_then_insertion(
    store: Store, clock: FakeClock
) -> None:
    rows = await store.insert(
        [
            new(task="late-low", priority=5),
            new(task="b", priority=1, run_at=START - 5),
            new(task="a", priority=1, run_at=START - 10),
            new(task="c1", priority=1, run_at=START - 5),
            new(task="urgent", priority=-1),
        ]
    )
    assert len(rows) == 5
    got = await store.claim("w", None, 10, LEASE)
    assert [r.task for r in got] == ["urgent", "a", "b", "c1", "late-low"]


async def test_claim_one_at_a_time_follows_the_same_order(store: Store) -> None:
    await store.insert([new(task=str(i), priority=i % 3) for i in range(9)])
    order = [(await claim_one(store)).task for _ in range(9)]
    assert order == ["0", "3", "6", "1", "4", "7", "2", "5", "8"]
    assert await store.claim("w", None, 1, LEASE) == []


async def test_claim_marks_the_task_running_under_a_fresh_lease(
    store: Store, clock: FakeClock
) -> None:
    await store.insert([new(), new()])
    clock.advance(3)
    a, b = await store.claim("worker-7", None, 2, 45.0)
    for row in (a, b):
        assert row.status is Status.RUNNING
        assert row.attempts == 1
        assert row.worker_id == "worker-7"
        assert row.started_at == START + 3
        assert row.lease_expires_at == START + 48
        assert row.lease_token
        assert await store.get(row.id) == row
    assert a.lease_token != b.lease_token


async def test_claim_filters_by_queue_and_respects_limit(store: Store) -> None:
    mail = [
        new(task="m1", queue="mail"),
        new(task="r1", queue="reports"),
        new(task="m2", queue="mail"),
    ]
    await store.insert([*mail, new(task="d", queue="default")])
    assert [r.task for r in await store.claim("w", ["mail"], 1, LEASE)] == ["m1"]
    assert await store.claim("w", [], 10, LEASE) == []
    assert await store.claim("w", ["nope"], 10, LEASE) == []
    got = await store.claim("w", ["reports", "mail"], 10, LEASE)
    assert sorted(r.task for r in got) == ["m2", "r1"]
    assert [r.task for r in await store.claim("w", None, 10, LEASE)] == ["d"]


async def test_delayed_tasks_are_not_claimed_before_due(store: Store, clock: FakeClock) -> None:
    await store.insert([new(task="later", delay=10), new(task="at", run_at=START + 20)])
    assert await store.claim("w", None, 10, LEASE) == []
    clock.advance(9.999)
    assert await store.claim("w", None, 10, LEASE) == []
    clock.advance(0.001)
    assert [r.task for r in await store.claim("w", None, 10, LEASE)] == ["later"]
    clock.advance(10)
    assert [r.task for r in await store.claim("w", None, 10, LEASE)] == ["at"]


async def test_a_delayed_urgent_task_does_not_block_due_ones(
    store: Store, clock: FakeClock
) -> None:
    await store.insert([new(task="urgent", priority=-5, delay=10), new(task="normal")])
    assert [r.task for r in await store.claim("w", None, 10, LEASE)] == ["normal"]


async def test_a_clock_set_back_makes_nothing_due_early(store: Store, clock: FakeClock) -> None:
    await store.insert([new(task="x", queue="q", run_at=START + 10)])
    clock.now = START + 20
    assert await store.claim("w", ["other"], 1, LEASE) == []
    clock.now = START
    assert await store.claim("w", None, 1, LEASE) == []
    clock.now = START + 10
    assert [r.task for r in await store.claim("w", None, 1, LEASE)] == ["x"]


async def test_cancelled_tasks_are_not_claimed(store: Store) -> None:
    a, _ = await store.insert([new(task="a"), new(task="b")])
    await store.request_cancel(a.id)
    assert [r.task for r in await store.claim("w", None, 10, LEASE)] == ["b"]


async def test_concurrent_claimers_never_share_a_task(store: Store) -> None:
    tasks = [new(task=str(i), priority=i % 4) for i in range(300)]
    await store.insert(tasks)

    async def claimer(n: int) -> list[TaskRecord]:
        mine: list[TaskRecord] = []
        while batch := await store.claim(f"w{n}", None, 1 + n % 4, LEASE):
            mine.extend(batch)
        return mine

    results = await asyncio.wait_for(asyncio.gather(*(claimer(n) for n in range(20))), 30)
    ids = [r.id for batch in results for r in batch]
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == {t.id for t in tasks}


async def test_concurrent_writes_fail_alone(store: Store) -> None:
    [held] = await store.insert([new("taken")])
    results = await asyncio.gather(
        store.insert([new("one")]),
        store.insert([new("taken")]),
        store.insert([new("two"), new("three")]),
        store.request_cancel(uuid4()),
        store.retry(held.id),
        store.insert([new("four")]),
        return_exceptions=True,
    )
    assert isinstance(results[1], DuplicateNameError)
    assert isinstance(results[4], InvalidTransitionError)
    assert results[3] is None
    for name in ("one", "two", "three", "four"):
        assert await store.get_by_name(name) is not None
    assert (await store.counts()).by_status()[Status.PENDING] == 5


# -- fencing: finish, requeue, progress, heartbeat -------------------------------------------


async def test_finish_records_the_outcome(store: Store, clock: FakeClock) -> None:
    row = await running(store)
    clock.advance(2)
    assert await store.finish(row.id, _token(row), Status.COMPLETED, result='{"ok": 1}')
    done = await store.get(row.id)
    assert done is not None
    assert done.status is Status.COMPLETED
    assert done.result == '{"ok": 1}'
    assert done.finished_at == START + 2
    assert done.attempts == 1


async def test_finish_with_failure_details(store: Store) -> None:
    row = await running(store)
    assert await store.finish(row.id, _token(row), Status.FAILED, error="E", traceback="tb")
    done = await store.get(row.id)
    assert done is not None
    assert (done.status, done.error, done.traceback) == (Status.FAILED, "E", "tb")


async def test_finish_many_finishes_each_held_lease_in_one_call(
    store: Store, clock: FakeClock
) -> None:
    a, b, c = [await running(store) for _ in range(3)]
    clock.advance(3)
    done = await store.finish_many(
        [
            Outcome(task_id=a.id, token=_token(a), status=Status.COMPLETED, result="1"),
            Outcome(task_id=b.id, token="stale", status=Status.COMPLETED, result="2"),
            Outcome(task_id=c.id, token=_token(c), status=Status.FAILED, error="E", traceback="tb"),
        ]
    )
    assert done == [True, False, True]
    ra, rb, rc = [await store.get(r.id) for r in (a, b, c)]
    assert ra is not None
    assert (ra.status, ra.result, ra.finished_at) == (Status.COMPLETED, "1", START + 3)
    assert rb == b  # the stale token changed nothing
    assert rc is not None
    assert (rc.status, rc.error, rc.traceback) == (Status.FAILED, "E", "tb")
    assert await store.finish_many([]) == []


async def test_finish_needs_a_finished_status(store: Store) -> None:
    row = await running(store)
    for status in (Status.PENDING, Status.RUNNING):
        with pytest.raises(InvalidTransitionError):
            await store.finish(row.id, _token(row), status)
    assert await store.get(row.id) == row


async def test_writes_with_a_wrong_token_change_nothing(store: Store) -> None:
    row = await running(store)
    assert not await store.finish(row.id, "not-the-token", Status.COMPLETED)
    assert not await store.requeue(row.id, "not-the-token")
    assert not await store.set_progress(row.id, "not-the-token", '{"done": 1}')
    assert await store.heartbeat("w1", [(row.id, "not-the-token")], LEASE) == {row.id}
    assert not await store.finish(uuid4(), _token(row), Status.COMPLETED)
    assert await store.get(row.id) == row


async def test_a_finished_task_rejects_further_writes(store: Store) -> None:
    row = await running(store)
    token = _token(row)
    assert await store.finish(row.id, token, Status.COMPLETED)
    after = await store.get(row.id)
    assert not await store.finish(row.id, token, Status.FAILED)
    assert not await store.requeue(row.id, token)
    assert not await store.set_progress(row.id, token, "{}")
    assert await store.heartbeat("w1", [(row.id, token)], LEASE) == {row.id}
    assert await store.get(row.id) == after


async def test_an_old_lease_is_fenced_off_after_a_new_claim(store: Store, clock: FakeClock) -> None:
    first = await running(store)
    assert await store.requeue(first.id, _token(first))
    second = await claim_one(store, "w2")
    assert second.id == first.id
    assert second.attempts == 2
    assert not await store.finish(first.id, _token(first), Status.COMPLETED)
    assert await store.finish(second.id, _token(second), Status.COMPLETED)


async def test_set_progress_is_stored(store: Store) -> None:
    row = await running(store)
    assert await store.set_progress(row.id, _token(row), '{"done": 3, "total": 10}')
    got = await store.get(row.id)
    assert got is not None
    assert got.progress == '{"done": 3, "total": 10}'


async def test_heartbeat_extends_held_leases_and_reports_lost_ones(
    store: Store, clock: FakeClock
) -> None:
    await store.insert([new(), new()])
    a, b = await store.claim("w1", None, 2, LEASE)
    clock.advance(20)
    unknown = uuid4()
    lost = await store.heartbeat("w1", [(a.id, _token(a)), (b.id, "stale"), (unknown, "x")], 60)
    assert lost == {b.id, unknown}
    got = await store.get(a.id)
    assert got is not None
    assert got.lease_expires_at == START + 80
    clock.advance(40)  # past b's lease, inside a's new one
    assert [r.id for r in await store.rescue()] == [b.id]
    assert await store.heartbeat("w1", [], LEASE) == set()


async def test_requeue_puts_a_task_back_after_a_delay(store: Store, clock: FakeClock) -> None:
    row = await running(store)
    assert await store.requeue(row.id, _token(row), delay=5, error="flaky", traceback="tb1")
    back = await store.get(row.id)
    assert back is not None
    assert back.status is Status.PENDING
    assert (back.error, back.traceback) == ("flaky", "tb1")
    assert back.attempts == 1
    assert back.lease_token is None
    assert back.lease_expires_at is None
    assert back.run_at == START + 5
    assert await store.claim("w", None, 1, LEASE) == []
    clock.advance(5)
    again = await claim_one(store)
    assert again.attempts == 2
    # A release without an error keeps the last one; a refund gives the attempt back.
    assert await store.requeue(again.id, _token(again), refund_attempt=True)
    released = await store.get(row.id)
    assert released is not None
    assert released.attempts == 1
    assert (released.error, released.traceback) == ("flaky", "tb1")
    assert released.run_at == START + 5


async def test_requeue_clears_a_cancel_request(store: Store) -> None:
    row = await running(store)
    await store.request_cancel(row.id)
    assert await store.requeue(row.id, _token(row), refund_attempt=True)
    back = await store.get(row.id)
    assert back is not None
    assert back.cancel_requested is False
    assert back.attempts == 0
    assert (await claim_one(store)).id == row.id


# -- rescue ----------------------------------------------------------------------------------


async def test_rescue_returns_expired_tasks_to_pending(store: Store, clock: FakeClock) -> None:
    row = await running(store)
    clock.advance(LEASE)  # exactly at expiry: still held
    assert await store.rescue() == []
    clock.advance(0.5)
    [rescued] = await store.rescue()
    assert rescued.id == row.id
    assert rescued.status is Status.PENDING
    assert rescued.attempts == 1
    assert rescued.lease_token is None
    assert rescued.lease_expires_at is None
    assert await store.get(row.id) == rescued
    assert await store.rescue() == []
    # The stale worker cannot complete it any more; the next claim counts a new attempt.
    assert not await store.finish(row.id, _token(row), Status.COMPLETED)
    again = await claim_one(store, "w2")
    assert again.attempts == 2
    assert not await store.finish(row.id, _token(row), Status.COMPLETED)
    assert await store.finish(row.id, _token(again), Status.COMPLETED)


async def test_rescue_fails_a_task_that_used_all_attempts(store: Store, clock: FakeClock) -> None:
    await store.insert([new(max_attempts=3)])
    for _ in range(3):
        row = await claim_one(store)
        clock.advance(LEASE + 1)
        [rescued] = await store.rescue()
    assert rescued.status is Status.FAILED
    assert rescued.error == "lease expired after 3 attempts: the worker was lost"
    assert rescued.finished_at == clock.now
    assert rescued.attempts == 3
    assert await store.get(row.id) == rescued
    assert await store.claim("w", None, 1, LEASE) == []
    assert not await store.finish(row.id, _token(row), Status.COMPLETED)


async def test_rescue_honours_a_pending_cancel_request(store: Store, clock: FakeClock) -> None:
    row = await running(store)
    await store.request_cancel(row.id)
    clock.advance(LEASE + 1)
    [rescued] = await store.rescue()
    assert rescued.status is Status.CANCELLED
    assert rescued.finished_at == clock.now


# -- cancel ----------------------------------------------------------------------------------


async def test_request_cancel_on_each_status(store: Store, clock: FakeClock) -> None:
    pending, _ = await store.insert([new(), new()])
    clock.advance(1)
    cancelled = await store.request_cancel(pending.id)
    assert cancelled is not None
    assert cancelled.status is Status.CANCELLED
    assert cancelled.finished_at == START + 1
    assert await store.get(pending.id) == cancelled

    row = await claim_one(store)
    flagged = await store.request_cancel(row.id)
    assert flagged is not None
    assert flagged.status is Status.RUNNING
    assert flagged.cancel_requested is True
    assert await store.cancel_requested([row.id, pending.id, uuid4()]) == {row.id}
    assert await store.request_cancel(row.id) == flagged  # asking twice changes nothing
    # The worker notices and finishes it as Cancelled, with its lease.
    assert await store.finish(row.id, _token(row), Status.CANCELLED)
    done = await store.get(row.id)
    assert done is not None
    assert await store.request_cancel(row.id) == done  # finished: unchanged
    assert await store.cancel_requested([row.id]) == set()
    assert await store.request_cancel(uuid4()) is None
    assert await store.cancel_requested([]) == set()


async def test_cancel_requested_checks_many_ids(store: Store) -> None:
    await store.insert([new() for _ in range(700)])
    rows = await store.claim("w", None, 700, LEASE)
    for r in rows[::7]:
        await store.request_cancel(r.id)
    assert await store.cancel_requested([r.id for r in rows]) == {r.id for r in rows[::7]}


# -- retry -----------------------------------------------------------------------------------


async def test_retry_puts_a_failed_task_back_fresh(store: Store, clock: FakeClock) -> None:
    row = await running(store, new("job"))
    await store.set_progress(row.id, _token(row), '{"done": 1}')
    await store.finish(row.id, _token(row), Status.FAILED, error="E", traceback="tb")
    clock.advance(100)
    again = await store.retry(row.id)
    assert again is not None
    assert again.status is Status.PENDING
    assert again.attempts == 0
    assert again.run_at == START + 100
    assert again.seq == row.seq
    assert (again.error, again.traceback, again.result, again.progress) == (None,) * 4
    assert (again.started_at, again.finished_at, again.lease_token) == (None,) * 3
    assert await store.get(row.id) == again
    assert (await claim_one(store)).id == row.id


async def test_retry_a_cancelled_task(store: Store) -> None:
    [row] = await store.insert([new()])
    await store.request_cancel(row.id)
    again = await store.retry(row.id)
    assert again is not None
    assert again.status is Status.PENDING
    assert again.cancel_requested is False


async def test_retry_refuses_active_and_completed_tasks(store: Store) -> None:
    pending, _ = await store.insert([new(), new()])
    with pytest.raises(InvalidTransitionError):
        await store.retry(pending.id)
    row = await claim_one(store)
    with pytest.raises(InvalidTransitionError):
        await store.retry(row.id)
    await store.finish(row.id, _token(row), Status.COMPLETED)
    with pytest.raises(InvalidTransitionError):
        await store.retry(row.id)
    assert await store.retry(uuid4()) is None


async def test_retry_refuses_a_name_taken_meanwhile(store: Store) -> None:
    [old] = await store.insert([new("job")])
    await store.request_cancel(old.id)
    await store.insert([new("job")])
    with pytest.raises(DuplicateNameError, match="job"):
        await store.retry(old.id)
    still = await store.get(old.id)
    assert still is not None
    assert still.status is Status.CANCELLED


# -- prune, counts, list ---------------------------------------------------------------------


async def test_prune_deletes_old_finished_tasks_by_status(store: Store, clock: FakeClock) -> None:
    done = await _finished(store, Status.COMPLETED, 3)
    failed = await _finished(store, Status.FAILED, 2)
    cancelled = await _finished(store, Status.CANCELLED, 1)
    [pending] = await store.insert([new()])
    clock.advance(50)
    fresh = await _finished(store, Status.COMPLETED, 1)
    ages = {Status.COMPLETED: 40.0, Status.FAILED: 60.0, Status.PENDING: 0.0}
    assert await store.prune(ages, limit=2) == 2
    assert await store.prune(ages, limit=10) == 1
    assert await store.prune(ages) == 0
    for r in done:
        assert await store.get(r.id) is None
    for r in failed + cancelled + fresh + [pending]:
        assert await store.get(r.id) is not None  # too young, not asked for, or active
    clock.advance(20)
    assert await store.prune(ages) == 2
    assert await store.prune({}) == 0
    assert await store.get(cancelled[0].id) is not None
    clock.now = START + 90  # the fresh task is exactly 40 s old: not older than 40 s
    assert await store.prune(ages) == 0
    clock.advance(0.5)
    assert await store.prune(ages) == 1


async def test_counts_by_queue_and_status(store: Store) -> None:
    assert (await store.counts()).by_queue == {}
    await store.insert([new(queue="a"), new(queue="a"), new(queue="b")])
    row = (await store.claim("w", ["a"], 1, LEASE))[0]
    await store.finish(row.id, _token(row), Status.FAILED)
    counts = await store.counts()
    assert counts.by_queue == {
        "a": {Status.PENDING: 1, Status.FAILED: 1},
        "b": {Status.PENDING: 1},
    }
    totals = counts.by_status()
    assert totals[Status.PENDING] == 2
    assert totals[Status.FAILED] == 1
    assert totals[Status.RUNNING] == 0


async def test_list_filters_newest_first(store: Store) -> None:
    a, b, c, d = await store.insert(
        [
            new("x", task="mail", queue="q1"),
            new(task="mail", queue="q2"),
            new(task="report", queue="q1"),
            new("y", task="mail", queue="q1"),
        ]
    )
    got = await claim_one(store)
    assert got.id == a.id

    async def ids(**filters: object) -> list[int]:
        page = await store.list(**filters)  # type: ignore[arg-type]
        assert page.cursor is None
        return [r.seq for r in page.items]

    assert await ids() == [d.seq, c.seq, b.seq, a.seq]
    assert await ids(task="mail") == [d.seq, b.seq, a.seq]
    assert await ids(queue="q1") == [d.seq, c.seq, a.seq]
    assert await ids(name="y") == [d.seq]
    assert await ids(status=[Status.RUNNING]) == [a.seq]
    assert await ids(status=[Status.PENDING, Status.RUNNING], task="mail", queue="q1") == [
        d.seq,
        a.seq,
    ]
    assert await ids(status=[]) == []
    assert await ids(task="nothing") == []


async def test_list_pages_without_gaps_or_repeats(store: Store) -> None:
    rows = await store.insert([new(task=f"t{i}", queue="q" if i % 2 else "p") for i in range(23)])
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list(limit=5, cursor=cursor)
        pages += 1
        seen.extend(r.seq for r in page.items)
        if page.cursor is None:
            break
        cursor = page.cursor
        if pages == 2:
            await store.insert([new()])  # newer tasks do not disturb the pages below
    assert pages == 5
    assert seen == sorted((r.seq for r in rows), reverse=True)
    # Paging with a filter too.
    q_seqs: list[int] = []
    cursor = None
    while True:
        page = await store.list(queue="q", limit=4, cursor=cursor)
        q_seqs.extend(r.seq for r in page.items)
        if (cursor := page.cursor) is None:
            break
    assert q_seqs == sorted((r.seq for r in rows if r.queue == "q"), reverse=True)


async def test_list_exact_multiple_of_limit_ends_cleanly(store: Store) -> None:
    await store.insert([new() for _ in range(4)])
    first = await store.list(limit=2)
    assert first.cursor is not None
    second = await store.list(limit=2, cursor=first.cursor)
    assert len(second.items) == 2
    assert second.cursor is None


@pytest.mark.parametrize("cursor", ["", "garbage", "12", "c2VxOi0x", "!!!", "c2VxOg"])
async def test_list_refuses_a_cursor_it_did_not_make(store: Store, cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await store.list(cursor=cursor)


async def test_list_refuses_a_zero_limit(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list(limit=0)


# -- wait_for_change -------------------------------------------------------------------------


async def test_wait_for_change_wakes_on_insert(store: Store) -> None:
    waiter = asyncio.create_task(store.wait_for_change(30))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiter.done()
    await store.insert([new()])
    await asyncio.wait_for(waiter, 2)


async def test_wait_for_change_wakes_on_cancel_request_and_retry(store: Store) -> None:
    [row] = await store.insert([new()])
    waiter = asyncio.create_task(store.wait_for_change(30))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiter.done()
    await store.request_cancel(row.id)
    await asyncio.wait_for(waiter, 2)
    waiter = asyncio.create_task(store.wait_for_change(30))
    await asyncio.sleep(0)
    assert not waiter.done()
    await store.retry(row.id)
    await asyncio.wait_for(waiter, 2)


async def test_a_change_between_two_waits_is_not_lost(store: Store) -> None:
    loop = asyncio.get_running_loop()
    await store.wait_for_change(0.01)  # this task has waited once...
    await store.insert([new()])  # ...then a change comes while it is busy elsewhere
    started = loop.time()
    await store.wait_for_change(5)  # awaited directly: the same task as before
    assert loop.time() - started < 1  # it returned at once, not at its timeout


async def test_wait_for_change_returns_at_its_timeout(store: Store) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(store.wait_for_change(0.05), 2)
    assert loop.time() - started >= 0.04


async def test_close_wakes_waiters(store: Store) -> None:
    waiter = asyncio.create_task(store.wait_for_change(30))
    await asyncio.sleep(0)
    await store.close()
    await asyncio.wait_for(waiter, 2)
    await asyncio.wait_for(store.wait_for_change(30), 2)  # closed: returns at once


async def test_open_is_idempotent(store: Store) -> None:
    [row] = await store.insert([new()])
    await store.open()
    assert await store.get(row.id) == row


async def test_workers_are_alive_while_they_beat(store: Store, clock: FakeClock) -> None:
    assert await store.workers() == []
    await store.worker_beat("w1", '{"pid": 1}', ttl=30)
    clock.advance(1)
    await store.worker_beat("w2", '{"pid": 2}', ttl=5)
    await store.worker_beat("w1", '{"pid": 1, "running": 3}', ttl=30)  # a later beat
    w1, w2 = await store.workers()
    assert (w1.id, w1.info, w1.started_at, w1.last_seen) == (
        "w1",
        '{"pid": 1, "running": 3}',
        START,
        START + 1,
    )
    assert (w2.id, w2.expires_at) == ("w2", START + 6)
    clock.advance(6)  # w2 missed its beat: it is gone
    assert [w.id for w in await store.workers()] == ["w1"]
    await store.worker_gone("w1")  # a clean stop
    assert await store.workers() == []


async def test_the_maintenance_role_is_a_lease_on_the_store_clock(
    store: Store, clock: FakeClock
) -> None:
    assert await store.lead("a", 10)
    assert not await store.lead("b", 10)  # a holds it
    clock.advance(5)
    assert await store.lead("a", 10)  # renewed, now until START + 15
    clock.advance(9.5)
    assert not await store.lead("b", 10)
    clock.advance(0.5)  # a did not renew in time (stopped, stalled or cut off)
    assert await store.lead("b", 10)
    assert not await store.lead("a", 10)  # the old leader comes back as a follower
    assert await store.lead("b", 10)


async def test_resigning_hands_the_role_on_at_once(store: Store) -> None:
    assert await store.lead("a", 10)
    await store.resign("b")  # not b's to give up: nothing changes
    assert not await store.lead("b", 10)
    await store.resign("a")
    assert await store.lead("b", 10)


async def test_a_leader_whose_role_expired_rescues_nothing(store: Store, clock: FakeClock) -> None:
    row = await running(store)
    assert await store.lead("a", 5)
    clock.advance(LEASE + 1)  # the task's lease and a's role both ran out
    assert await store.rescue(leader="a") == []
    assert (await store.get(row.id)).status is Status.RUNNING  # type: ignore[union-attr]
    assert await store.rescue(leader="b") == []  # b never took the role
    assert await store.lead("b", 5)
    [rescued] = await store.rescue(leader="b")
    assert (rescued.id, rescued.status) == (row.id, Status.PENDING)


async def test_now_is_the_store_clock(store: Store, clock: FakeClock) -> None:
    assert await store.now() == START
    clock.advance(7)
    assert await store.now() == START + 7


# -- helpers ---------------------------------------------------------------------------------


def _token(row: TaskRecord) -> str:
    assert row.lease_token is not None
    return row.lease_token


async def _finished(store: Store, status: Status, n: int) -> list[TaskRecord]:
    await store.insert([new() for _ in range(n)])
    rows = await store.claim("w", None, n, LEASE)
    for r in rows:
        assert await store.finish(r.id, _token(r), status)
    return rows
