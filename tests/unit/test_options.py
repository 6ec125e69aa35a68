"""Submit options as one value: checked when made, naming the bad field, the same task whether
given as keywords or as one `SubmitOptions`; schedule errors name their field too."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskward.app import App
from taskward.errors import InvalidArgumentsError
from taskward.options import NO_OPTIONS, SubmitKeywords, SubmitOptions, submit_options
from taskward.scheduler import Schedule
from taskward.stores.memory import MemoryStore
from taskward.testing import memory_app

AT = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def app() -> App:
    app = App(MemoryStore())

    @app.task(name="send", queue="emails", priority=3, max_attempts=5, timeout=9)
    def send(to: str) -> None:
        pass

    return app


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"priority": 1.5}, "priority"),
        ({"queue": "x" * 201}, "queue"),
        ({"delay": -1}, "delay"),
        ({"run_at": AT.replace(tzinfo=None)}, "run_at"),
        ({"delay": 1, "run_at": AT}, "run_at"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_a_bad_option_is_refused_when_made_naming_its_field(
    options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgumentsError) as caught:
        SubmitOptions(**options)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_options_are_a_frozen_value() -> None:
    options = SubmitOptions(name="n", priority=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.priority = 2  # type: ignore[misc]
    assert options == SubmitOptions(priority=1, name="n")
    assert hash(options) == hash(SubmitOptions(priority=1, name="n"))
    assert not hasattr(options, "__dict__")


def test_one_value_or_keywords_make_the_same_task(app: App) -> None:
    keywords: SubmitKeywords = {"name": "n", "priority": -1, "queue": "q", "run_at": AT}
    given = SubmitOptions(**keywords)
    send = app.get_task("send")
    made = [
        send.prepare_args({"to": "a@b.c"}, given),
        send.prepare_args({"to": "a@b.c"}, **keywords),
        app.prepare("send", {"to": "a@b.c"}, given),
        app.prepare("send", {"to": "a@b.c"}, options=given),
        send.prepare_call(given, ("a@b.c",), {}),
        send.prepare("a@b.c", **keywords),
    ]
    for new in made:
        assert (new.args, new.name, new.priority, new.queue) == ('{"to":"a@b.c"}', "n", -1, "q")
        # Left out: the decorator's own.
        assert (new.max_attempts, new.timeout, new.delay, new.run_at) == (
            5,
            9.0,
            None,
            AT.timestamp(),
        )


def test_options_given_both_ways_are_refused(app: App) -> None:
    with pytest.raises(TypeError, match="not both"):
        app.prepare("send", {"to": "x"}, SubmitOptions(priority=1), name="n")
    with pytest.raises(TypeError, match="must be a SubmitOptions"):
        app.prepare("send", {"to": "x"}, {"priority": 1})  # type: ignore[arg-type]


def test_no_option_given_is_the_one_empty_value(app: App) -> None:
    # The common submit makes no options object (the hot path stays as cheap as before).
    assert submit_options() is NO_OPTIONS
    assert submit_options(delay=0) == SubmitOptions(delay=0)
    new = app.get_task("send").prepare("a@b.c")
    assert (new.name, new.queue, new.priority, new.max_attempts, new.timeout) == (
        None,
        "emails",
        3,
        5,
        9.0,
    )
    assert (new.delay, new.run_at) == (None, None)


def test_delay_and_timeout_reach_the_task_as_seconds(app: App) -> None:
    new = app.prepare("send", {"to": "x"}, SubmitOptions(delay=2, timeout=1))
    assert (new.delay, new.timeout) == (2.0, 1.0)
    assert isinstance(new.delay, float)
    assert isinstance(new.timeout, float)


async def test_submit_args_and_the_sync_facade_take_one_value() -> None:
    app = memory_app()

    @app.task(name="add")
    def add(a: int = 1) -> int:
        return a

    info = await add.submit_args({"a": 2}, SubmitOptions(name="two", priority=7))
    assert (info.name, info.priority, info.args) == ("two", 7, {"a": 2})
    await app.close()


def test_the_keywords_are_the_fields_of_the_value() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(SubmitOptions)}
    assert set(typing.get_type_hints(SubmitKeywords)) == set(fields)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a@b"}, "name"),
        ({"task": ""}, "task"),
        ({"args": ["x"]}, "args"),
        ({"every": None, "cron": None}, "every"),
        ({"every": 0}, "every"),
        ({"every": timedelta(days=365 * 200)}, "every"),
        ({"every": None, "cron": "61 * * * *"}, "cron"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"max_instances": 0}, "max_instances"),
        ({"catch_up": "yes"}, "catch_up"),
    ],
)
def test_every_schedule_error_names_its_field(change: dict[str, Any], field: str) -> None:
    definition: dict[str, Any] = {"name": "s", "task": "t", "every": 60, **change}
    with pytest.raises(InvalidArgumentsError) as caught:
        Schedule(**definition)
    assert caught.value.field == field
