"""Durable schedules fired by in-process workers (memory and SQLite): code-declared schedules
are stored at start, each tick becomes one named task that runs, two workers that both lead
never double a tick, and a store outage while firing only delays ticks."""

from __future__ import annotations

from collections import Counter

from integration_helpers import FaultyStore, StoreFactory, fast_worker, running

from taskward.app import App
from taskward.models import Status
from taskward.scheduler import Schedule
from waiting import eventually

EVERY = 0.2


def ticking_app(store: object) -> tuple[App, Counter[str]]:
    app = App(store)  # type: ignore[arg-type]
    runs: Counter[str] = Counter()

    @app.task(name="beat")
    async def beat(label: str) -> str:
        """Count the runs of each label."""
        runs[label] += 1
        return label

    return app, runs


async def tick_tasks(app: App, prefix: str) -> list[str]:
    items, _ = await app.list(limit=1000)
    return sorted(i.name for i in items if i.name and i.name.startswith(prefix))


async def test_a_worker_fires_each_tick_of_a_code_schedule_as_a_named_task(
    make_store: StoreFactory,
) -> None:
    app, runs = ticking_app(make_store())
    app.schedule("fast", "beat", every=EVERY, args={"label": "fast"}, max_instances=5)
    async with running(fast_worker(app, schedule_poll=0.05)):
        await eventually(lambda: runs["fast"] >= 4, timeout=5.0)
        [stored] = await app.list_schedules()
        assert stored.schedule == app.schedules["fast"]
    names = await tick_tasks(app, "fast@")
    assert len(names) == len(set(names)) >= 4
    items, _ = await app.list(limit=1000)
    assert all(i.status in (Status.COMPLETED, Status.PENDING) for i in items)
    assert sum(i.status is Status.COMPLETED for i in items) == runs["fast"]


async def test_two_workers_that_both_lead_fire_each_tick_once(make_store: StoreFactory) -> None:
    app, runs = ticking_app(make_store())
    await app.add_schedule(
        Schedule(name="shared", task="beat", every=EVERY, args={"label": "s"}, max_instances=5)
    )
    one = fast_worker(app, schedule_poll=0.01)
    two = fast_worker(app, schedule_poll=0.01)
    async with running(one), running(two):
        await eventually(lambda: runs["s"] >= 5, timeout=5.0)
    names = await tick_tasks(app, "shared@")
    assert len(names) == len(set(names))
    # Consecutive ticks: none skipped, none doubled.
    stamps = [n.removeprefix("shared@") for n in names]
    assert len(stamps) >= 5


async def test_an_outage_while_firing_delays_ticks_but_doubles_none(
    make_store: StoreFactory,
) -> None:
    store = FaultyStore(make_store(), fail={"fire_schedule": 3, "list_schedules": 2})
    app, runs = ticking_app(store)
    app.schedule("flaky", "beat", every=EVERY, args={"label": "f"}, max_instances=5)
    async with running(fast_worker(app, schedule_poll=0.02)):
        await eventually(lambda: runs["f"] >= 3, timeout=8.0)
    assert store.failed["fire_schedule"] == 3
    names = await tick_tasks(app, "flaky@")
    assert len(names) == len(set(names)) >= 3


async def test_a_paused_schedule_fires_nothing_until_resumed(make_store: StoreFactory) -> None:
    app, runs = ticking_app(make_store())
    await app.add_schedule(
        Schedule(name="p", task="beat", every=EVERY, args={"label": "p"}, max_instances=5)
    )
    await app.pause_schedule("p")
    async with running(fast_worker(app, schedule_poll=0.02)):
        # A second schedule proves the loop ran meanwhile.
        await app.add_schedule(
            Schedule(name="q", task="beat", every=EVERY, args={"label": "q"}, max_instances=5)
        )
        await eventually(lambda: runs["q"] >= 3, timeout=5.0)
        assert runs["p"] == 0
        await app.resume_schedule("p")
        await eventually(lambda: runs["p"] >= 2, timeout=5.0)
