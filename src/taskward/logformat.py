"""``--log-format json``: one JSON object per log line, and the fields that say which task
and which worker a line is about.

Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; then, when
known, ``task_id``, ``task``, ``attempt``, ``queue`` and ``worker``; ``exc_info`` (the
formatted traceback, one string) when an exception is logged; and any other ``extra=``
a caller passed.

Where the task fields come from: a context variable, not each call. The worker sets them
(`bind_run`) at the start of each run, in the run's own asyncio task, so every line logged
while it runs carries them: the worker's own lines about its outcome, and the task
function's own ``logging`` calls, in a thread too (``asyncio.to_thread`` copies the
context). ``taskward worker`` binds ``worker`` once (`bind`) before the worker starts, and
every task it makes inherits it. A field given with ``extra=`` wins over the context's.
Lines about a run logged from elsewhere (the heartbeat and lease loops) name the task in
their message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal

from taskward.stores.base import TaskRecord

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "bind",
    "bind_run",
    "json_logs",
    "log_fields",
    "use_log_format",
]

LogFormat = Literal["text", "json"]

#: The context fields, in the order they are written.
FIELDS = ("task_id", "task", "attempt", "queue", "worker")
_NONE: Mapping[str, Any] = MappingProxyType({})
_fields: ContextVar[Mapping[str, Any]] = ContextVar("taskward_log_fields", default=_NONE)
# The run of this context: its fields are read from it only when a line is written, so that
# a run costs the worker one context-variable set, not a dict and a UUID's text.
_run: ContextVar[TaskRecord | None] = ContextVar("taskward_log_run", default=None)
# What every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_OWN = frozenset({"time", "level", "logger", "message", "exc_info", "stack_info"})


def log_fields() -> Mapping[str, Any]:
    """The fields bound in this context."""
    bound = _fields.get()
    record = _run.get()
    if record is None:
        return bound
    run = {"task_id": str(record.id), "task": record.task, "attempt": record.attempts}
    return {**bound, **run, "queue": record.queue}


def bind(**fields: Any) -> None:
    """Add fields to every line logged from now on in this context (and in the tasks and
    threads it starts). Call it inside a task of its own: the fields stay until it ends."""
    _fields.set({**_fields.get(), **fields})


def bind_run(record: TaskRecord) -> None:
    """Bind the fields of one run of ``record`` (see the module docstring)."""
    _run.set(record)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON object, without a newline in it."""
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = log_fields()
        for key in FIELDS:
            value = getattr(record, key, bound.get(key))
            if value is not None:
                out[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _OWN and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        # ASCII only: a message may quote any bytes (lone surrogates too) and each line must
        # still be writable and valid JSON. Values JSON cannot hold are written as repr().
        return json.dumps(out, ensure_ascii=True, default=repr)


def use_log_format(fmt: LogFormat) -> None:
    """Make the root logger's handlers write ``fmt`` (``text`` leaves them as they are).

    The CLI configured them already (`logging.basicConfig`); without any handler, one on
    stderr is added.
    """
    if fmt == "text":
        return
    if fmt != "json":
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())


def json_logs() -> bool:
    """Whether the root logger writes JSON (then what a command would print on stderr
    should be logged instead, so that every line there stays one JSON object)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
