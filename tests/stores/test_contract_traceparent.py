"""The store contract for a task's trace context: every store keeps ``traceparent`` as it was
inserted, through every way in (one row, a few, a bulk COPY) and every change of state.

The stores neither check nor read the text: `taskward.tracing` checks it before an insert
and after a read. What is stored here is any text the column takes.
"""

from __future__ import annotations

import dataclasses

from store_helpers import FakeClock, new

from taskward.models import Status
from taskward.stores import NewTask, Store
from taskward.stores.base import Outcome

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def traced(name: str | None = None, traceparent: str | None = TRACEPARENT) -> NewTask:
    """A NewTask carrying ``traceparent``."""
    return dataclasses.replace(new(name), traceparent=traceparent)


async def test_a_new_task_has_no_traceparent(store: Store) -> None:
    [row] = await store.insert([new()])
    assert row.traceparent is None
    got = await store.get(row.id)
    assert got is not None
    assert got.traceparent is None


async def test_one_task_keeps_its_traceparent_through_its_life(
    store: Store, clock: FakeClock
) -> None:
    [row] = await store.insert([traced("one")])
    assert row.traceparent == TRACEPARENT
    assert await store.get(row.id) == row
    assert await store.get_by_name("one") == row
    [claimed] = await store.claim("w1", None, 1, 30.0)
    assert claimed.traceparent == TRACEPARENT  # what the worker's run continues from
    assert claimed.lease_token is not None
    assert await store.requeue(row.id, claimed.lease_token, error="boom")
    [again] = await store.claim("w1", None, 1, 30.0)
    assert (again.attempts, again.traceparent) == (2, TRACEPARENT)
    assert again.lease_token is not None
    assert await store.finish(again.id, again.lease_token, Status.FAILED, error="boom")
    retried = await store.retry(row.id)
    assert retried is not None
    assert (retried.status, retried.traceparent) == (Status.PENDING, TRACEPARENT)
    [claimed] = await store.claim("w1", None, 1, 30.0)
    clock.advance(31.0)
    [rescued] = await store.rescue()
    assert rescued.traceparent == TRACEPARENT
    page = await store.list()
    assert [r.traceparent for r in page.items] == [TRACEPARENT]


async def test_a_batch_keeps_each_task_s_own_traceparent(store: Store) -> None:
    batch = [traced(traceparent=TRACEPARENT), traced(traceparent=None), traced(traceparent=OTHER)]
    rows = await store.insert(batch)
    expected = [TRACEPARENT, None, OTHER]
    assert [r.traceparent for r in rows] == expected
    for row in rows:
        assert await store.get(row.id) == row
    claimed = await store.claim("w1", None, 3, 30.0)
    assert {r.id: r.traceparent for r in claimed} == {r.id: r.traceparent for r in rows}
    outcomes = [
        Outcome(task_id=r.id, token=r.lease_token or "", status=Status.COMPLETED, result="1")
        for r in claimed
    ]
    assert await store.finish_many(outcomes) == [True] * 3
    for row in rows:
        done = await store.get(row.id)
        assert done is not None
        assert (done.status, done.traceparent) == (Status.COMPLETED, row.traceparent)


async def test_a_bulk_insert_keeps_traceparents(store: Store) -> None:
    # 300 rows: past the PostgreSQL store's COPY threshold (250), a path of its own.
    batch = [traced(traceparent=TRACEPARENT if i % 2 else None) for i in range(300)]
    rows = await store.insert(batch)
    assert [r.traceparent for r in rows] == [t.traceparent for t in batch]
    for row in (rows[0], rows[1], rows[-1]):
        assert await store.get(row.id) == row


async def test_a_cancelled_task_keeps_its_traceparent(store: Store) -> None:
    [row] = await store.insert([traced()])
    cancelled = await store.request_cancel(row.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.traceparent) == (Status.CANCELLED, TRACEPARENT)
