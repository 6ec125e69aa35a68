"""Task functions: registration, argument binding and validation, schemas and submit options."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pydantic
import pytest

from taskward.app import App
from taskward.errors import ConfigurationError, InvalidArgumentsError
from taskward.retry import Backoff
from taskward.stores.memory import MemoryStore
from taskward.tasks import TaskFunction


@pytest.fixture
def app() -> App:
    return App(MemoryStore())


class Address(pydantic.BaseModel):
    city: str
    zip: str | None = None


def test_a_sync_function_keeps_working_when_called(app: App) -> None:
    @app.task
    def add(a: int, b: int = 2) -> int:
        return a + b

    assert isinstance(add, TaskFunction)
    assert add(1) == 3
    assert add.name == "test_a_sync_function_keeps_working_when_called.<locals>.add"
    assert not add.is_async
    assert (add.queue, add.priority, add.max_attempts, add.timeout) == ("default", 0, 3, None)
    assert add.retry == Backoff()
    assert add.__doc__ is None
    assert add.__name__ == "add"  # type: ignore[attr-defined]


async def test_an_async_function_is_marked_async_and_callable(app: App) -> None:
    @app.task(name="emails.send", queue="emails", priority=5, max_attempts=7, timeout=30)
    async def send(to: str) -> str:
        """Send an email."""
        return f"sent to {to}"

    assert send.is_async
    assert await send("a@b.c") == "sent to a@b.c"
    assert (send.name, send.queue, send.priority, send.max_attempts, send.timeout) == (
        "emails.send",
        "emails",
        5,
        7,
        30,
    )
    assert app.tasks["emails.send"] is send


def test_a_function_of_main_is_named_by_its_qualname_only(app: App) -> None:
    def job() -> None:
        pass

    job.__module__ = "__main__"
    assert (
        app.task(job).name == "test_a_function_of_main_is_named_by_its_qualname_only.<locals>.job"
    )


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def f(*items: int) -> None: ...", r"\*items is not allowed"),
        ("def f(a: int, **extra: int) -> None: ...", r"\*\*extra is not allowed"),
        ("def f(a: int, /) -> None: ...", "positional-only parameter 'a'"),
        ("def f(a: 'NoSuchType') -> None: ...", "cannot resolve its type hints"),
        (
            "def f(n: int, a: threading.Lock) -> None: ...",
            "argument 'a' has type allocate_lock, which cannot travel as JSON: annotate it",
        ),
        ("def f(a: object = object()) -> None: ...", "default of 'a'.*not JSON-serialisable"),
    ],
)
def test_functions_whose_arguments_cannot_be_json_are_refused(
    app: App, source: str, words: str
) -> None:
    namespace: dict[str, Any] = {"threading": threading}
    exec(source, namespace)
    with pytest.raises(ConfigurationError, match=words) as refused:
        app.task(namespace["f"])
    assert not app.tasks
    # One line that says what to change: no pydantic advice, no chained traceback.
    assert "\n" not in str(refused.value)
    assert "arbitrary_types_allowed" not in str(refused.value)
    assert "errors.pydantic.dev" not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None or refused.value.__suppress_context__


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"name": " "}, "name must be a non-empty string"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"priority": 2**31}, "priority must be an integer"),
        ({"priority": 1.5}, "priority must be an integer"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"timeout": 0}, "timeout must be a number > 0"),
        ({"retry": 5}, "retry must be a Backoff"),
    ],
)
def test_bad_decorator_options_are_configuration_errors(
    app: App, options: dict[str, Any], words: str
) -> None:
    def job() -> None:
        pass

    with pytest.raises(ConfigurationError, match=words):
        app.task(**options)(job)


def test_bind_names_the_arguments_applies_defaults_and_gives_json(app: App) -> None:
    @app.task
    def report(user_id: int, since: datetime, tags: list[str] | None = None, scale=1.5):  # type: ignore[no-untyped-def]
        return None

    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert report.bind(7, since=when) == {
        "user_id": 7,
        "since": "2024-05-01T12:00:00Z",
        "tags": None,
        "scale": 1.5,
    }
    # Lax like pydantic: "7" is accepted as an int, and the JSON says 7.
    assert report.bind("7", when, ["a"], scale="x")["user_id"] == 7


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((), {"b": 1}, "a: missing required argument"),
        ((1, 2, 3), {}, "takes 2 positional arguments but 3 were given"),
        ((1,), {"c": 3}, "c: unexpected argument"),
        ((1,), {"a": 3}, "got multiple values for argument 'a'"),
        (("x",), {"b": 5}, r"a: Input should be a valid integer.*; b: Input should be a valid"),
        ((1,), {"b": object()}, "b: Input should be a valid string"),
    ],
)
def test_bind_errors_name_the_argument(
    app: App, args: tuple[Any, ...], kwargs: dict[str, Any], words: str
) -> None:
    @app.task(name="pair")
    def pair(a: int, b: str = "") -> None:
        pass

    with pytest.raises(InvalidArgumentsError, match="invalid arguments for task 'pair': " + words):
        pair.bind(*args, **kwargs)


def test_an_untyped_argument_must_still_be_json(app: App) -> None:
    @app.task
    def anything(value):  # type: ignore[no-untyped-def]
        return value

    assert anything.bind({"a": [1, None]}) == {"value": {"a": [1, None]}}
    with pytest.raises(InvalidArgumentsError, match="not JSON-serialisable"):
        anything.bind(object())


class Point(pydantic.BaseModel):
    x: float
    y: float = 0.0


class Reading(pydantic.BaseModel):
    """A model that would write NaN as a string in JSON, by its own config."""

    model_config = pydantic.ConfigDict(ser_json_inf_nan="strings")
    values: list[float]


@dataclasses.dataclass
class Sample:
    level: float


@pytest.mark.parametrize(
    ("kwargs", "where", "what"),
    [
        ({"ratio": math.nan}, "ratio", "NaN"),
        ({"ratio": math.inf}, "ratio", "Infinity"),
        ({"ratio": -math.inf}, "ratio", "-Infinity"),
        ({"ratios": [1.0, math.nan]}, "ratios.1", "NaN"),
        ({"anything": {"a": [1, {"b": math.inf}]}}, "anything.a.1.b", "Infinity"),
        ({"anything": (math.nan,)}, "anything.0", "NaN"),
        ({"point": Point(x=math.inf)}, "point.x", "Infinity"),
        ({"point": {"x": 1.0, "y": math.nan}}, "point.y", "NaN"),
        ({"anything": Point(x=math.nan)}, "anything.x", "NaN"),
        ({"reading": Reading(values=[0.5, math.nan])}, "reading.values.1", "NaN"),
        ({"sample": Sample(level=-math.inf)}, "sample.level", "-Infinity"),
    ],
)
def test_nan_and_infinity_anywhere_in_the_args_are_refused_naming_the_argument(
    app: App, kwargs: dict[str, Any], where: str, what: str
) -> None:
    @app.task(name="measure")
    def measure(
        ratio: float = 1.0,
        ratios: list[float] | None = None,
        anything: Any = None,
        point: Point | None = None,
        reading: Reading | None = None,
        sample: Sample | None = None,
    ) -> None:
        pass

    expected = f"invalid arguments for task 'measure': {where}: {what} is not valid JSON"
    for make in (measure.prepare, measure.bind, lambda **kw: measure.prepare_args(kw)):
        with pytest.raises(InvalidArgumentsError, match=re.escape(expected)) as caught:
            make(**kwargs)
        assert caught.value.field == "args"


async def test_submit_with_nan_stores_nothing(app: App) -> None:
    @app.task(name="scale")
    async def scale(x: float) -> None:
        pass

    with pytest.raises(InvalidArgumentsError, match="x: NaN is not valid JSON"):
        await scale.submit(float("nan"))
    with pytest.raises(InvalidArgumentsError, match="x: Infinity is not valid JSON"):
        await app.submit("scale", x=float("inf"))
    assert (await app.list())[0] == []


def test_the_words_nan_and_infinity_in_strings_are_plain_text(app: App) -> None:
    @app.task(name="say")
    def say(text: str, extra: Any = None) -> None:
        pass

    new = say.prepare("NaN", extra={"Infinity": ["-Infinity", "NaN"]})
    assert json.loads(new.args) == {"text": "NaN", "extra": {"Infinity": ["-Infinity", "NaN"]}}


def test_args_nested_deeper_than_64_levels_are_refused(app: App) -> None:
    @app.task(name="nest")
    def nest(tree: Any) -> None:
        pass

    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    # The args object is the first level: 63 more fit, 64 more do not.
    assert json.loads(nest.prepare(nested(63)).args) == {"tree": nested(63)}
    with pytest.raises(
        InvalidArgumentsError, match=re.escape("tree.0.0.0.....0: nested deeper than 64")
    ):
        nest.prepare(nested(64))
    with pytest.raises(InvalidArgumentsError, match="nested deeper than 64"):
        nest.prepare(nested(100_000))  # refused without recursion


def test_a_nul_in_an_argument_is_kept_and_a_lone_surrogate_refused(app: App) -> None:
    @app.task(name="echo")
    def echo(text: str, extra: Any = None) -> None:
        pass

    new = echo.prepare("a\x00b", extra=["\x00"])
    assert "\\u0000" in new.args  # escaped in the JSON text: any store holds it
    assert echo.validate_json_args(json.loads(new.args)) == {"text": "a\x00b", "extra": ["\x00"]}
    with pytest.raises(InvalidArgumentsError, match="'echo': extra: not JSON-serialisable") as e:
        echo.prepare("ok", extra={"k": "\ud800"})
    assert "surrogates not allowed" in str(e.value)
    with pytest.raises(InvalidArgumentsError, match="'echo': text: not JSON-serialisable"):
        echo.prepare("\udcff")


def test_validate_json_args_gives_python_values_to_call_with(app: App) -> None:
    @app.task
    def ship(to: Address, at: datetime, count: int = 1) -> None:
        pass

    kwargs = ship.validate_json_args({"to": {"city": "Oslo"}, "at": "2024-05-01T12:00:00+02:00"})
    assert kwargs == {
        "to": Address(city="Oslo"),
        "at": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "count": 1,
    }
    assert isinstance(kwargs["to"], Address)


def test_validate_json_args_lists_every_problem_without_echoing_values(app: App) -> None:
    @app.task(name="mail")
    def mail(to: str, user_id: int) -> None:
        pass

    with pytest.raises(InvalidArgumentsError) as caught:
        mail.validate_json_args({"user_id": "s3cr3t", "cc": "x"})
    assert str(caught.value) == (
        "invalid arguments for task 'mail': to: missing required argument; "
        "user_id: Input should be a valid integer, unable to parse string as an integer; "
        "cc: unexpected argument"
    )
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(InvalidArgumentsError, match="args must be a mapping"):
        mail.validate_json_args(["a", 1])  # type: ignore[arg-type]


def test_parameters_may_be_named_like_pydantic_internals(app: App) -> None:
    @app.task
    def odd(json: str, model_config: int = 0, _private: bool = False, schema: str = "") -> None:
        pass

    assert odd.bind("j") == {"json": "j", "model_config": 0, "_private": False, "schema": ""}
    assert odd.validate_json_args({"json": "j", "_private": True})["_private"] is True
    assert set(odd.args_schema()["properties"]) == {"json", "model_config", "_private", "schema"}


def test_args_schema_is_json_schema_with_defaults(app: App) -> None:
    @app.task(name="send")
    def send(to: str, user_id: int, when: datetime | None = None, retries: int = 2) -> None:
        pass

    schema = send.args_schema()
    assert schema["type"] == "object"
    assert schema["title"] == "send"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["to", "user_id"]
    assert schema["properties"]["to"]["type"] == "string"
    assert schema["properties"]["user_id"]["type"] == "integer"
    assert schema["properties"]["retries"]["default"] == 2
    schema["properties"].clear()
    assert send.args_schema()["properties"], "callers get a copy"


def test_dump_result_is_json_text(app: App) -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    @app.task(name="r")
    def r() -> None:
        pass

    assert r.dump_result(None) is None
    assert r.dump_result({"a": [1, 2.5, "é"]}) == '{"a":[1,2.5,"é"]}'
    assert r.dump_result(Point(1, 2)) == '{"x":1,"y":2}'
    assert r.dump_result(UUID(int=1)) == '"00000000-0000-0000-0000-000000000001"'
    with pytest.raises(
        ValueError, match="result of task 'r' \\(object\\) is not JSON-serialisable"
    ):
        r.dump_result(object())


def test_prepare_fills_a_new_task_with_the_decorator_defaults(app: App) -> None:
    @app.task(name="send", queue="emails", priority=3, max_attempts=5, timeout=9)
    def send(to: str) -> None:
        pass

    new = send.prepare("a@b.c")
    assert isinstance(new.id, UUID)
    assert (new.task, new.args, new.name) == ("send", '{"to":"a@b.c"}', None)
    assert (new.queue, new.priority, new.max_attempts, new.timeout) == ("emails", 3, 5, 9.0)
    assert (new.delay, new.run_at) == (None, None)
    other = send.prepare(
        to="x", name="n", priority=-1, queue="q", delay=2, max_attempts=1, timeout=0.5
    )
    assert (other.name, other.priority, other.queue, other.delay) == ("n", -1, "q", 2.0)
    assert (other.max_attempts, other.timeout) == (1, 0.5)
    assert other.id != new.id


def test_run_at_must_be_aware_and_becomes_posix_time(app: App) -> None:
    @app.task(name="later")
    def later() -> None:
        pass

    at = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert later.prepare(run_at=at).run_at == at.timestamp()
    with pytest.raises(InvalidArgumentsError, match="run_at must be timezone-aware"):
        later.prepare(run_at=datetime(2030, 1, 1))
    with pytest.raises(InvalidArgumentsError, match="not both"):
        later.prepare(run_at=at, delay=1)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"delay": -1}, "delay must be a number of seconds in \\[0, "),
        ({"delay": float("nan")}, "delay must be a number"),
        ({"run_at": "2030-01-01"}, "run_at must be a datetime"),
        ({"priority": True}, "priority must be an integer"),
        ({"priority": -(2**31) - 1}, "priority must be an integer"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"timeout": -1}, "timeout must be a number > 0"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": "n" * 201}, "name must be at most 200 characters"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"name": "a\x00b"}, "name must not contain a NUL character"),
        ({"queue": "\x00"}, "queue must not contain a NUL character"),
        ({"name": "x\ud800"}, "name must be Unicode text, without lone surrogates"),
        ({"queue": "\udcff"}, "queue must be Unicode text, without lone surrogates"),
    ],
)
def test_bad_submit_options_are_invalid_arguments(
    app: App, options: dict[str, Any], words: str
) -> None:
    @app.task(name="job")
    def job() -> None:
        pass

    with pytest.raises(InvalidArgumentsError, match=words) as caught:
        job.prepare(**options)
    assert caught.value.field == next(iter(options))


def test_non_ascii_names_and_queues_are_fine(app: App) -> None:
    @app.task(name="job")
    def job() -> None:
        pass

    new = job.prepare(name="rapport-été-😀", queue="файлы")
    assert (new.name, new.queue) == ("rapport-été-😀", "файлы")


def test_a_task_function_name_or_queue_with_a_nul_is_a_configuration_error(app: App) -> None:
    with pytest.raises(ConfigurationError, match="name must not contain a NUL character"):
        app.task(name="a\x00")(lambda: None)
    with pytest.raises(ConfigurationError, match="queue must be Unicode text"):
        app.task(name="q", queue="\ud800")(lambda: None)


def test_submit_options_win_over_parameters_of_the_same_name(app: App) -> None:
    @app.task(name="greet")
    def greet(name: str, priority: int) -> None:
        pass

    with pytest.raises(InvalidArgumentsError, match="name: missing required argument"):
        greet.prepare(name="task-1", priority=1)
    new = greet.prepare_args({"name": "Ada", "priority": 9}, name="task-1", priority=1)
    assert (new.args, new.name, new.priority) == ('{"name":"Ada","priority":9}', "task-1", 1)


def test_prepare_args_validates_like_bind(app: App) -> None:
    @app.task(name="job")
    def job(n: int = 1) -> None:
        pass

    assert job.prepare_args().args == '{"n":1}'
    assert job.prepare_args({"n": "2"}).args == '{"n":2}'
    with pytest.raises(InvalidArgumentsError, match="m: unexpected argument"):
        job.prepare_args({"m": 1})


@pytest.mark.parametrize("delay", [1e300, float("inf"), float("nan"), -0.5])
def test_delays_that_no_datetime_can_show_are_refused(app: App, delay: float) -> None:
    @app.task(name="later")
    def later() -> None:
        pass

    with pytest.raises(InvalidArgumentsError, match="delay must be a number of seconds"):
        later.prepare(delay=delay)


def test_run_at_beyond_year_9000_is_refused(app: App) -> None:
    @app.task(name="far")
    def far() -> None:
        pass

    with pytest.raises(InvalidArgumentsError, match="between the years 1900 and 9000"):
        far.prepare(run_at=datetime(9500, 1, 1, tzinfo=UTC))


def test_decorator_options_changed_after_registration_are_checked_again(app: App) -> None:
    @app.task(queue="mail", priority=2)
    async def ping() -> None: ...

    plain = ping.prepare()  # the options checked at registration, not again
    assert (plain.queue, plain.priority, plain.max_attempts) == ("mail", 2, 3)
    ping.queue = "other"
    assert ping.prepare().queue == "other"
    ping.queue = ""
    with pytest.raises(InvalidArgumentsError, match="queue"):
        ping.prepare()
