"""Text that a store cannot hold is the caller's mistake, refused alike on every store.

A NUL character fits SQLite and memory but not PostgreSQL text; a lone surrogate has no UTF-8
form at all. The App refuses both in names, queues, filters and schedule names before any
store sees them (`InvalidArgumentsError`, never a `StoreError` that callers would retry as an
outage). Arguments are JSON text, where a NUL is an escape: it round-trips on every store.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskward.app import App
from taskward.errors import InvalidArgumentsError
from taskward.scheduler import Schedule
from taskward.stores import Store

NUL_AND_SURROGATES = ["a\x00b", "\x00", "x\ud800", "\udcff"]


def make_app(store: Store) -> App:
    app = App(store)

    @app.task(name="echo")
    async def echo(text: str = "", data: Any = None) -> None:
        pass

    return app


async def nothing_stored(store: Store) -> bool:
    return (await store.list(limit=10)).items == []


@pytest.mark.parametrize("value", NUL_AND_SURROGATES)
@pytest.mark.parametrize("option", ["name", "queue"])
async def test_a_name_or_queue_no_store_can_hold_is_refused(
    store: Store, option: str, value: str
) -> None:
    app = make_app(store)
    options: dict[str, Any] = {option: value}
    with pytest.raises(InvalidArgumentsError, match=f"^{option} must") as caught:
        await app.submit("echo", **options)
    assert caught.value.field == option
    with pytest.raises(InvalidArgumentsError, match=f"^{option} must"):
        await app.submit_many([app.prepare("echo", {}, **options)])
    assert await nothing_stored(store)


@pytest.mark.parametrize("value", NUL_AND_SURROGATES)
@pytest.mark.parametrize("field", ["task", "queue", "name"])
async def test_a_filter_no_store_can_hold_is_refused(store: Store, field: str, value: str) -> None:
    app = make_app(store)
    await app.submit("echo", name="plain")
    filters: dict[str, Any] = {field: value}
    with pytest.raises(InvalidArgumentsError, match=f"^{field} must") as caught:
        await app.list(**filters)
    assert caught.value.field == field
    assert [i.name for i in (await app.list())[0]] == ["plain"]  # the store is fine after


@pytest.mark.parametrize("value", NUL_AND_SURROGATES)
async def test_a_name_to_look_up_no_store_can_hold_is_refused(store: Store, value: str) -> None:
    app = make_app(store)
    with pytest.raises(InvalidArgumentsError, match=r"^name must"):
        await app.get_by_name(value)


@pytest.mark.parametrize("value", NUL_AND_SURROGATES)
async def test_a_schedule_name_no_store_can_hold_is_refused(store: Store, value: str) -> None:
    app = make_app(store)
    with pytest.raises(InvalidArgumentsError, match=r"^schedule name must") as caught:
        await app.add_schedule(Schedule(name=value, task="echo", every=60))
    assert caught.value.field == "name"
    for call in (app.get_schedule, app.remove_schedule, app.pause_schedule, app.resume_schedule):
        with pytest.raises(InvalidArgumentsError, match=r"^schedule name must"):
            await call(value)
    assert await store.list_schedules() == []


async def test_a_nul_in_the_args_round_trips(store: Store) -> None:
    app = make_app(store)
    data = {"nul": "\x00", "mixed": ["a\x00b", "été\x00😀"], "\x00key": 1}
    info = await app.submit("echo", text="a\x00", data=data)
    assert info.id is not None
    row = await store.get(info.id)
    assert row is not None
    assert "\x00" not in row.args  # JSON text holds the escape, which every store keeps
    assert json.loads(row.args) == {"text": "a\x00", "data": data}
    shown = await app.get(info.id)
    assert shown is not None
    assert shown.args == {"text": "a\x00", "data": data}


@pytest.mark.parametrize("value", ["x\ud800", "\udfff"])
async def test_a_lone_surrogate_in_the_args_is_refused_naming_the_argument(
    store: Store, value: str
) -> None:
    app = make_app(store)
    with pytest.raises(InvalidArgumentsError, match="'echo': data: not JSON-serialisable"):
        await app.submit("echo", data={"k": [value]})
    assert await nothing_stored(store)


async def test_unicode_names_and_queues_are_kept_exactly(store: Store) -> None:
    app = make_app(store)
    info = await app.submit("echo", name="rapport-été-😀", queue="файлы")
    again = await app.get_by_name("rapport-été-😀")
    assert again is not None
    assert (again.id, again.queue) == (info.id, "файлы")
    assert [i.id for i in (await app.list(queue="файлы"))[0]] == [info.id]
