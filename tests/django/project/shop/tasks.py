"""The test project's Django tasks (and things in their module that are not tasks)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from taskward.contrib.django.compat import TaskContext, task


class BoomError(Exception):
    """What the failing task raises."""


@task
def add(a: int, b: int) -> int:
    """The sum: a task's return value comes back."""
    return a + b


@task(queue_name="emails")
def greet(name: str, *, greeting: str = "hello") -> str:
    """Keyword arguments travel too."""
    return f"{greeting} {name}"


@task
def fail(message: str) -> None:
    """Raises BoomError(message)."""
    raise BoomError(message)


@task
def label(name: str) -> str:
    """Returns its argument: which ran first shows in the results' times."""
    return name


@task
def today() -> date:
    """Returns a date, which is not JSON: the task fails rather than store it as text."""
    return datetime.now(UTC).date()


@task
async def slow_double(value: int) -> int:
    """An async task function, run on the worker's loop."""
    await asyncio.sleep(0.01)
    return value * 2


@task(takes_context=True)
def whoami(context: TaskContext, tag: str) -> dict[str, Any]:
    """What the worker passes as context."""
    return {"id": context.task_result.id, "attempt": context.attempt, "tag": tag}


@task
def write_marker(name: str) -> str:
    """Writes a file under MARKER_DIR (proof that it ran)."""
    Path(os.environ["MARKER_DIR"], name).write_text("ran")
    return name


def plain_helper() -> str:
    """Not a task: a worker must refuse a row that names it, and never call it."""
    Path(os.environ["MARKER_DIR"], "plain_helper").write_text("ran")
    return "should never run"


def _unreachable(value: int) -> int:
    return value


#: A task whose module path (shop.tasks._unreachable) names a plain function, not a task.
hidden = task(_unreachable)
