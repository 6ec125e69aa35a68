"""``--log-format json``: one JSON object per line, the context's task fields, exceptions."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest

from taskward.logformat import (
    JsonFormatter,
    bind,
    bind_run,
    json_logs,
    log_fields,
    use_log_format,
)
from taskward.models import Status
from taskward.stores.base import TaskRecord

FIELDS = ("task_id", "task", "attempt", "queue", "worker")


class Captured:
    """A logger whose lines go, JSON-formatted, into a string."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.logger = logging.getLogger(f"taskward.test.{uuid4().hex}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    def lines(self) -> list[dict[str, Any]]:
        text = self.stream.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    c = Captured()
    try:
        yield c
    finally:
        c.logger.removeHandler(c.handler)


def record(**changes: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "id": uuid4(),
        "seq": 1,
        "task": "reports.build",
        "args": "{}",
        "name": None,
        "priority": 0,
        "queue": "reports",
        "status": Status.RUNNING,
        "attempts": 2,
        "max_attempts": 3,
        "timeout": None,
        "run_at": 0.0,
        "created_at": 0.0,
    }
    values.update(changes)
    return TaskRecord(**values)


def test_a_line_has_time_level_logger_and_message(captured: Captured) -> None:
    before = dt.datetime.now(dt.UTC)
    captured.logger.warning("disk %s is %d%% full", "/srv", 91)
    [line] = captured.lines()
    assert list(line) == ["time", "level", "logger", "message"]
    assert line["level"] == "WARNING"
    assert line["logger"] == captured.logger.name
    assert line["message"] == "disk /srv is 91% full"
    when = dt.datetime.fromisoformat(line["time"])
    assert when.utcoffset() == dt.timedelta(0)  # UTC, said so in the text
    assert before - dt.timedelta(seconds=1) <= when <= dt.datetime.now(dt.UTC)


def test_a_multiline_or_odd_message_stays_one_valid_line(captured: Captured) -> None:
    captured.logger.info('two\nlines, a quote " and a lone surrogate \udcff and é')
    text = captured.stream.getvalue()
    assert text.count("\n") == 1
    assert text.isascii()
    [line] = captured.lines()
    assert line["message"] == 'two\nlines, a quote " and a lone surrogate \udcff and é'


def test_an_exception_is_one_string_field(captured: Captured) -> None:
    try:
        raise ValueError("bad row 7")
    except ValueError:
        captured.logger.exception("import failed")
    [line] = captured.lines()
    assert line["message"] == "import failed"
    assert line["level"] == "ERROR"
    assert isinstance(line["exc_info"], str)
    assert line["exc_info"].startswith("Traceback (most recent call last):")
    assert line["exc_info"].rstrip().endswith("ValueError: bad row 7")


def test_extra_fields_are_written_and_values_json_cannot_hold_as_repr(
    captured: Captured,
) -> None:
    captured.logger.info(
        "sent", extra={"task": "mail.send", "attempt": 3, "recipient_count": 12, "obj": {1}}
    )
    [line] = captured.lines()
    assert (line["task"], line["attempt"], line["recipient_count"]) == ("mail.send", 3, 12)
    assert line["obj"] == "{1}"
    assert "task_id" not in line  # not known: left out, not null


def test_fields_bound_in_a_context_reach_every_line_logged_in_it(captured: Captured) -> None:
    row = record()

    def in_a_run() -> None:
        bind(worker="host:1:abc")
        bind_run(row)
        captured.logger.info("inside")

    contextvars.copy_context().run(in_a_run)
    captured.logger.info("outside")
    inside, outside = captured.lines()
    assert {k: inside[k] for k in FIELDS} == {
        "task_id": str(row.id),
        "task": "reports.build",
        "attempt": 2,
        "queue": "reports",
        "worker": "host:1:abc",
    }
    assert not set(FIELDS) & set(outside)
    assert log_fields() == {}


def test_an_extra_field_wins_over_the_contexts(captured: Captured) -> None:
    def run() -> None:
        bind(task="from.context", queue="q")
        captured.logger.info("x", extra={"task": "from.extra"})

    contextvars.copy_context().run(run)
    [line] = captured.lines()
    assert (line["task"], line["queue"]) == ("from.extra", "q")


async def test_fields_follow_a_run_into_its_tasks_and_threads(captured: Captured) -> None:
    row = record(task="thumbs", queue="images", attempts=1)

    def sync_part() -> None:
        captured.logger.info("in a thread")

    async def run() -> None:
        bind_run(row)
        captured.logger.info("on the loop")
        await asyncio.to_thread(sync_part)

    async def other() -> None:
        await asyncio.sleep(0)
        captured.logger.info("another task")

    await asyncio.gather(asyncio.create_task(run()), asyncio.create_task(other()))
    by_message = {line["message"]: line for line in captured.lines()}
    for message in ("on the loop", "in a thread"):
        assert by_message[message]["task_id"] == str(row.id)
        assert by_message[message]["queue"] == "images"
    assert "task_id" not in by_message["another task"]


def test_use_log_format_json_sets_every_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    first, second = logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(root, "handlers", [first, second])
    use_log_format("text")
    assert not isinstance(first.formatter, JsonFormatter)
    assert not json_logs()
    use_log_format("json")
    assert json_logs()
    assert isinstance(first.formatter, JsonFormatter)
    assert isinstance(second.formatter, JsonFormatter)


def test_use_log_format_adds_a_handler_when_there_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    use_log_format("json")
    [handler] = root.handlers
    assert isinstance(handler.formatter, JsonFormatter)


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'text' or 'json', not 'xml'"):
        use_log_format("xml")  # type: ignore[arg-type]
