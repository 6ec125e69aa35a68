"""The store contract of `Store.oldest_pending`: how long each queue's longest-waiting due
task has waited, on every store (see conftest.STORE_FACTORIES).

Time is the fake clock the store reads: an age is exact arithmetic on it.
"""

from __future__ import annotations

import random

import pytest
from store_helpers import START, FakeClock, new

from taskward.models import Status
from taskward.stores import NewTask, Store

LEASE = 30.0


async def test_an_empty_store_has_no_waiting_queue(store: Store) -> None:
    assert await store.oldest_pending() == {}


async def test_age_is_since_the_earliest_due_task_of_each_queue(
    store: Store, clock: FakeClock
) -> None:
    await store.insert([new(queue="mail"), new(queue="reports")])
    clock.advance(3)
    await store.insert([new(queue="mail"), new(queue="other")])
    clock.advance(2)
    assert await store.oldest_pending() == {"mail": 5.0, "reports": 5.0, "other": 2.0}


async def test_tasks_not_yet_due_are_not_waiting(store: Store, clock: FakeClock) -> None:
    await store.insert([new(queue="later", delay=10), new(queue="mixed", delay=10)])
    await store.insert([new(queue="mixed", delay=4)])
    assert await store.oldest_pending() == {}
    clock.advance(6)
    # The one due 4 s after the insert has waited 2 s; the others are not due yet.
    assert await store.oldest_pending() == {"mixed": 2.0}
    clock.advance(5)
    assert await store.oldest_pending() == {"later": 1.0, "mixed": 7.0}


async def test_the_oldest_task_counts_whatever_its_priority(store: Store, clock: FakeClock) -> None:
    # The claim order puts priority first; the age looks past it to the earliest run_at.
    await store.insert([new(queue="q", priority=9)])
    clock.advance(4)
    await store.insert([new(queue="q", priority=-3), new(queue="q", priority=0)])
    clock.advance(1)
    assert await store.oldest_pending() == {"q": 5.0}


async def test_running_finished_and_cancelled_tasks_are_not_waiting(
    store: Store, clock: FakeClock
) -> None:
    a, b, c = await store.insert([new(queue="q"), new(queue="q"), new(queue="q")])
    clock.advance(1)
    [claimed] = await store.claim("w", ["q"], 1, LEASE)
    assert claimed.id == a.id
    await store.request_cancel(b.id)  # Pending -> Cancelled at once
    clock.advance(1)
    assert await store.oldest_pending() == {"q": 2.0}  # c alone still waits
    [again] = await store.claim("w", ["q"], 1, LEASE)
    assert again.id == c.id
    assert again.lease_token is not None
    await store.finish(again.id, again.lease_token, Status.COMPLETED)
    assert await store.oldest_pending() == {}


async def test_a_retry_waits_from_when_it_falls_due(store: Store, clock: FakeClock) -> None:
    [task] = await store.insert([new(queue="q")])
    clock.advance(10)
    [run] = await store.claim("w", None, 1, LEASE)
    assert run.lease_token is not None
    assert await store.requeue(task.id, run.lease_token, delay=3, error="boom")
    clock.advance(2)
    assert await store.oldest_pending() == {}
    clock.advance(4)
    assert await store.oldest_pending() == {"q": 3.0}


async def test_many_queues_and_priorities_match_a_plain_scan(
    store: Store, clock: FakeClock
) -> None:
    rng = random.Random(7)
    queues = ["a", "b", "b2", "c", "default", "z"]
    tasks: list[NewTask] = []
    for _ in range(120):
        tasks.append(
            new(
                queue=rng.choice(queues),
                priority=rng.choice([-5, 0, 0, 3, 100]),
                run_at=START + rng.uniform(-50, 50),
            )
        )
    rows = await store.insert(tasks)
    claimed = await store.claim("w", ["b", "c"], 15, LEASE)  # some leave the backlog
    gone = {row.id for row in claimed}
    now = START
    expected: dict[str, float] = {}
    for row in rows:
        if row.id not in gone and row.run_at <= now:
            expected[row.queue] = max(expected.get(row.queue, 0.0), now - row.run_at)
    got = await store.oldest_pending()
    assert got.keys() == expected.keys()
    for queue, age in expected.items():
        assert got[queue] == pytest.approx(age, abs=1e-6), queue
