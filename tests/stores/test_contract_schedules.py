"""The store contract for durable schedules (every store, see conftest.STORE_FACTORIES):
put/get/list/delete, pause and resume, the compare-and-set `fire_schedule` that inserts a
tick's tasks in the same transaction, and `count_active` by name prefix."""

from __future__ import annotations

import asyncio

import pytest
from store_helpers import START, FakeClock, new

from taskward.errors import DuplicateNameError
from taskward.models import Status
from taskward.stores import Store

DEF = '{"task": "t", "every": 60.0}'


async def test_put_then_get_and_list(store: Store, clock: FakeClock) -> None:
    assert await store.list_schedules() == []
    assert await store.get_schedule("b") is None
    b = await store.put_schedule("b", DEF)
    assert (b.name, b.definition, b.last_tick, b.last_fired, b.paused, b.updated_at) == (
        "b",
        DEF,
        None,
        None,
        False,
        START,
    )
    a = await store.put_schedule("a", '{"x": 1}')
    assert await store.get_schedule("b") == b
    assert await store.list_schedules() == [a, b]  # by name


async def test_put_refuses_a_taken_name_unless_replacing(store: Store, clock: FakeClock) -> None:
    await store.put_schedule("s", DEF)
    with pytest.raises(DuplicateNameError, match="a schedule named 's' already exists"):
        await store.put_schedule("s", '{"other": true}')
    assert await store.fire_schedule("s", None, START, [])
    await store.set_schedule_paused("s", True)
    clock.advance(5)
    replaced = await store.put_schedule("s", '{"other": true}', replace=True)
    # The definition changes; the last tick and the pause stay.
    assert (replaced.definition, replaced.last_tick, replaced.paused) == (
        '{"other": true}',
        START,
        True,
    )
    assert replaced.updated_at == START + 5
    fresh = await store.put_schedule("new", DEF, replace=True)
    assert (fresh.last_tick, fresh.paused) == (None, False)


async def test_delete(store: Store) -> None:
    await store.put_schedule("s", DEF)
    assert await store.delete_schedule("s") is True
    assert await store.delete_schedule("s") is False
    assert await store.get_schedule("s") is None


async def test_fire_compares_and_sets_the_last_tick(store: Store) -> None:
    await store.put_schedule("s", DEF)
    assert await store.fire_schedule("s", None, 100.0, []) is True
    assert await store.fire_schedule("s", None, 200.0, []) is False  # someone fired first
    assert await store.fire_schedule("s", 99.0, 200.0, []) is False
    assert await store.fire_schedule("missing", None, 1.0, []) is False
    tick = await store.get_schedule("s")
    assert tick is not None
    assert tick.last_tick == 100.0
    assert await store.fire_schedule("s", 100.0, 160.5, []) is True
    after = await store.get_schedule("s")
    assert after is not None
    assert after.last_tick == 160.5


async def test_last_fired_moves_only_with_a_fired_tick(store: Store, clock: FakeClock) -> None:
    await store.put_schedule("s", DEF)
    # Counting starts (the cursor moves), nothing fired.
    assert await store.fire_schedule("s", None, 100.0, []) is True
    row = await store.get_schedule("s")
    assert row is not None
    assert (row.last_tick, row.last_fired) == (100.0, None)
    assert await store.fire_schedule("s", 100.0, 160.0, [new("s@160")], fired=160.0) is True
    # A skipped tick moves the cursor only.
    assert await store.fire_schedule("s", 160.0, 220.0, []) is True
    row = await store.get_schedule("s")
    assert row is not None
    assert (row.last_tick, row.last_fired) == (220.0, 160.0)
    # A lost compare-and-set changes neither.
    assert await store.fire_schedule("s", 100.0, 280.0, [new("s@280")], fired=280.0) is False
    # Replacing the definition, pausing and resuming keep what fired last.
    await store.put_schedule("s", '{"other": true}', replace=True)
    await store.set_schedule_paused("s", True)
    resumed = await store.set_schedule_paused("s", False)
    assert resumed is not None
    assert (resumed.last_tick, resumed.last_fired) == (None, 160.0)
    assert [r.last_fired for r in await store.list_schedules()] == [160.0]


async def test_fire_inserts_the_tick_tasks_in_the_same_transaction(store: Store) -> None:
    await store.put_schedule("s", DEF)
    await store.fire_schedule("s", None, 100.0, [])
    a, b = new("s@1"), new("s@2")
    assert await store.fire_schedule("s", 100.0, 200.0, [a, b]) is True
    got = [await store.get(t.id) for t in (a, b)]
    assert [r.name if r else None for r in got] == ["s@1", "s@2"]
    assert all(r is not None and r.status is Status.PENDING for r in got)
    # A lost compare-and-set inserts nothing.
    c = new("s@3")
    assert await store.fire_schedule("s", 100.0, 300.0, [c]) is False
    assert await store.get(c.id) is None


async def test_a_leader_whose_role_expired_fires_nothing(store: Store, clock: FakeClock) -> None:
    await store.put_schedule("s", DEF)
    tick = new(name="s@1")
    assert await store.lead("a", 5)
    clock.advance(6)  # a's role ran out while its firing was on its way (stopped, cut off)
    assert await store.fire_schedule("s", None, 100.0, [tick], fired=100.0, leader="a") is False
    assert await store.get(tick.id) is None  # nothing inserted
    unchanged = await store.get_schedule("s")
    assert unchanged is not None
    assert (unchanged.last_tick, unchanged.last_fired) == (None, None)
    assert await store.fire_schedule("s", None, 100.0, [tick], leader="b") is False  # no role
    assert await store.lead("b", 5)
    assert await store.fire_schedule("s", None, 100.0, [tick], fired=100.0, leader="b") is True
    assert await store.get(tick.id) is not None


async def test_a_refused_insert_leaves_the_last_tick_unchanged(store: Store) -> None:
    await store.put_schedule("s", DEF)
    await store.fire_schedule("s", None, 100.0, [])
    await store.insert([new("s@2")])
    d = new("s@1")
    with pytest.raises(DuplicateNameError):
        await store.fire_schedule("s", 100.0, 200.0, [d, new("s@2")], fired=200.0)
    row = await store.get_schedule("s")
    assert row is not None
    assert (row.last_tick, row.last_fired) == (100.0, None)
    assert await store.get(d.id) is None


async def test_concurrent_fires_of_one_tick_insert_it_once(store: Store) -> None:
    await store.put_schedule("s", DEF)
    await store.fire_schedule("s", None, 100.0, [])
    tries = [new("s@200") for _ in range(8)]
    results = await asyncio.gather(
        *(store.fire_schedule("s", 100.0, 200.0, [t]) for t in tries), return_exceptions=True
    )
    assert results.count(True) == 1
    assert all(r is False for r in results if r is not True)
    rows = [await store.get(t.id) for t in tries]
    assert sum(r is not None for r in rows) == 1


async def test_pause_stops_firing_and_resume_forgets_the_last_tick(
    store: Store, clock: FakeClock
) -> None:
    await store.put_schedule("s", DEF)
    await store.fire_schedule("s", None, 100.0, [])
    paused = await store.set_schedule_paused("s", True)
    assert paused is not None
    assert (paused.paused, paused.last_tick) == (True, 100.0)
    assert await store.fire_schedule("s", 100.0, 200.0, [new("s@2")]) is False
    again = await store.set_schedule_paused("s", True)  # pausing twice changes nothing
    assert again is not None
    assert (again.paused, again.last_tick) == (True, 100.0)
    clock.advance(1)
    resumed = await store.set_schedule_paused("s", False)
    assert resumed is not None
    assert (resumed.paused, resumed.last_tick, resumed.updated_at) == (False, None, START + 1)
    assert await store.fire_schedule("s", None, 300.0, []) is True
    running = await store.set_schedule_paused("s", False)  # not paused: left as it is
    assert running is not None
    assert running.last_tick == 300.0
    assert await store.set_schedule_paused("missing", True) is None


async def test_count_active_counts_pending_and_running_tasks_by_name_prefix(
    store: Store,
) -> None:
    await store.insert([new("s@1"), new("s@2"), new("s@3"), new("so@1"), new("x"), new()])
    claimed = await store.claim("w", None, 10, 30)
    by_name = {r.name: r for r in claimed}
    done = by_name["s@3"]
    await store.finish(done.id, done.lease_token or "", Status.COMPLETED)
    assert await store.count_active("s@") == 2  # s@1 Running, s@2 Running; s@3 finished
    assert await store.count_active("so@") == 1
    assert await store.count_active("nobody@") == 0
    assert await store.count_active("%") == 0  # no pattern characters
    await store.insert([new("50%@1"), new("50_@1")])
    assert await store.count_active("50%@") == 1
