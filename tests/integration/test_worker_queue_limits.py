"""Per-queue limits: a worker runs at most N tasks of a queue listed as ``name:N`` at once,
within its overall slots, while its other queues go on (memory and SQLite stores)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence

import pytest
from integration_helpers import count, fast_worker, running, tid

from taskward.app import App
from taskward.errors import StoreError
from taskward.loading import parse_queues
from taskward.models import Status
from taskward.stores.base import TaskRecord
from taskward.worker import Worker
from waiting import eventually


async def test_a_limited_queue_runs_at_most_its_limit_while_others_use_the_rest(
    app: App,
) -> None:
    # Each run waits for its own gate: the test frees one slot at a time and looks at what
    # the worker starts in it (no time window to "see nothing more happen").
    sizes = {"reports": 3, "emails": 5}
    gates = {(queue, i): asyncio.Event() for queue, n in sizes.items() for i in range(n)}
    started: list[tuple[str, int]] = []
    active: collections.Counter[str] = collections.Counter()
    peak: collections.Counter[str] = collections.Counter()

    @app.task(queue="reports")
    async def report(i: int) -> int:
        return await gated("reports", i)

    @app.task(queue="emails")
    async def email(i: int) -> int:
        return await gated("emails", i)

    async def gated(queue: str, i: int) -> int:
        started.append((queue, i))
        active[queue] += 1
        peak[queue] = max(peak[queue], active[queue])
        try:
            await gates[queue, i].wait()
            return i
        finally:
            active[queue] -= 1

    def running_now() -> tuple[int, int]:
        return active["reports"], active["emails"]

    worker = fast_worker(
        app, queues=["reports", "emails"], queue_limits={"reports": 1}, concurrency=4
    )
    async with running(worker):
        ids = [tid(await report.submit(i=i)) for i in range(sizes["reports"])]
        ids += [tid(await email.submit(i=i)) for i in range(sizes["emails"])]
        # One report (its limit) and three emails (the rest of the four slots).
        await eventually(lambda: len(started) == 4)
        assert running_now() == (1, 3)
        # A freed email slot goes to an email, though the reports waiting are older.
        gates[next(key for key in started if key[0] == "emails")].set()
        await eventually(lambda: len(started) == 5)
        assert started[4][0] == "emails"
        assert running_now() == (1, 3)
        # A freed report slot goes to the next report.
        gates[next(key for key in started if key[0] == "reports")].set()
        await eventually(lambda: len(started) == 6)
        assert started[5][0] == "reports"
        assert running_now() == (1, 3)
        for gate in gates.values():
            gate.set()
        for task_id in ids:
            await app.wait(task_id, timeout=5)
    assert sorted(started) == sorted(gates)
    assert peak["reports"] == 1
    assert peak["emails"] == 3
    assert await count(app, Status.COMPLETED) == len(ids)


class Gated:
    """Runs of one queue that each wait for the test to open their gate, counted as they go."""

    def __init__(self, n: int) -> None:
        self.gates = [asyncio.Event() for _ in range(n)]
        self.started: list[int] = []
        self.active = 0
        self.peak = 0

    async def run(self, i: int) -> int:
        self.started.append(i)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await self.gates[i].wait()
            return i
        finally:
            self.active -= 1

    def started_at_least(self, n: int) -> Callable[[], bool]:
        """A check for `eventually`: ``n`` runs have started."""
        return lambda: len(self.started) >= n


async def test_a_freed_slot_of_a_limited_queue_is_refilled_soon(app: App) -> None:
    # All four slots could run reports, but only two at a time may: each finished one is
    # replaced without waiting for a store change (there is none) or the 5 s poll. Each
    # wait below is bounded well under that poll interval.
    runs = Gated(6)

    @app.task(queue="reports")
    async def report(i: int) -> int:
        return await runs.run(i)

    worker = fast_worker(
        app, queues=["reports"], queue_limits={"reports": 2}, concurrency=4, poll_interval=5.0
    )
    async with running(worker):
        ids = [tid(await report.submit(i=i)) for i in range(6)]
        await eventually(runs.started_at_least(2))
        assert runs.active == 2
        for n in range(4):  # each of the first four to end makes room for one more
            runs.gates[runs.started[n]].set()
            await eventually(runs.started_at_least(n + 3), timeout=2.0)
            assert runs.active == 2
        for gate in runs.gates:
            gate.set()
        assert [await app.wait(task_id, timeout=5) for task_id in ids] == list(range(6))
    assert runs.peak == 2


async def test_a_limited_queue_is_refilled_soon_while_another_queue_is_idle(app: App) -> None:
    # Here the claim loop has room (for emails) so it does not wait for a freed slot; it
    # looks again after LIMITED_QUEUE_POLL rather than after the 5 s poll interval: each
    # wait below is bounded well under that interval.
    runs = Gated(3)

    @app.task(queue="reports")
    async def report(i: int) -> int:
        return await runs.run(i)

    worker = fast_worker(
        app,
        queues=["reports", "emails"],
        queue_limits={"reports": 1},
        concurrency=4,
        poll_interval=5.0,
    )
    async with running(worker):
        ids = [tid(await report.submit(i=i)) for i in range(3)]
        await eventually(runs.started_at_least(1))
        assert runs.active == 1
        for n in range(2):  # each of the first two to end makes room for the next
            runs.gates[runs.started[n]].set()
            await eventually(runs.started_at_least(n + 2), timeout=2.0)
            assert runs.active == 1
        runs.gates[runs.started[2]].set()
        assert [await app.wait(task_id, timeout=5) for task_id in ids] == [0, 1, 2]
    assert runs.peak == 1
    assert runs.started == [0, 1, 2]  # one at a time, in the order submitted


def test_queue_lists_read_with_their_limits() -> None:
    assert parse_queues("emails:5, reports:1,default") == (
        ["emails", "reports", "default"],
        {"emails": 5, "reports": 1},
    )
    assert parse_queues("a,,b,") == (["a", "b"], {})
    for spec, message in [
        ("a:0", "integer >= 1"),
        ("a:-2", "integer >= 1"),
        ("a:x", "integer >= 1"),
        ("a:", "integer >= 1"),
        (":3", "no queue name"),
        ("a,a:2", "listed twice"),
        (" , ", "names no queue"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_queues(spec)


def test_limits_must_name_served_queues_and_be_positive(app: App) -> None:
    with pytest.raises(ValueError, match="need the queues listed"):
        Worker(app, queue_limits={"a": 1})
    with pytest.raises(ValueError, match="not among the served"):
        Worker(app, queues=["a"], queue_limits={"b": 1})
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="integer >= 1"):
            Worker(app, queues=["a"], queue_limits={"a": bad})  # type: ignore[dict-item]
    assert Worker(app, queues=["a", "b"], queue_limits={"a": 2}).queue_limits == {"a": 2}


async def test_tasks_claimed_before_a_failed_claim_still_run(app: App) -> None:
    # With limits a worker makes one claim per limited queue, then one for the rest. When a
    # later claim fails, what the earlier ones took is leased to this worker: it must run it
    # now, not leave it to a rescue after the lease.
    @app.task(queue="a")
    async def first() -> str:
        return "ran"

    store = await app.connect()
    real_claim = store.claim
    failed: list[Sequence[str] | None] = []

    async def flaky_claim(
        worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        if queues == ["b"] and not failed:
            failed.append(queues)
            raise StoreError("the store is down for a moment")
        return await real_claim(worker_id, queues, limit, lease)

    info = await first.submit()
    store.claim = flaky_claim  # type: ignore[method-assign]
    worker = fast_worker(app, queues=["a", "b"], queue_limits={"a": 1}, lease=30.0)
    async with running(worker):
        assert await app.wait(tid(info), timeout=2) == "ran"
    assert failed == [["b"]]
    done = await app.get(tid(info))
    assert done is not None
    assert done.attempts == 1
