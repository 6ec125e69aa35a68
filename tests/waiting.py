"""Bounded waits shared by every test folder: poll a condition until it holds, or fail.

A test waits for something it can observe (a status, a count, a line in a log) and names how
long is too long; it never sleeps for a while and then asserts.

Test folders are not packages. Under pytest's default import mode, the folder of the root
``conftest.py`` (this one) is on ``sys.path``, so every folder imports this module as
``waiting``. mypy checks each folder in a run of its own that sees only that folder: each
folder that imports this module holds a symbolic link to it, ``waiting.py``, for that run.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload
from uuid import UUID

from taskward.app import App
from taskward.models import Status, TaskInfo

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = ..., interval: float = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None], *, timeout: float = ..., interval: float = ...
) -> T: ...


async def eventually(
    check: Callable[[], Any], *, timeout: float = 2.0, interval: float = 0.02
) -> Any:
    """Call ``check`` (a plain or an async function) until it returns something truthy, and
    return that; fail with AssertionError if a call begun ``timeout`` seconds or more after
    the first still finds nothing.

    The last look is always taken after the deadline, so a slow machine never fails a wait
    that a sleep of ``timeout`` seconds followed by one check would pass.
    """
    if not 0 < timeout < math.inf:
        raise ValueError(f"a wait needs a finite timeout > 0, not {timeout!r}")
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if last:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r:.200})")
        await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))


async def get(app: App, task_id: UUID | None) -> TaskInfo:
    """The task's current snapshot (it must exist)."""
    assert task_id is not None, "an in-process task has no id to look up"
    info = await app.get(task_id)
    assert info is not None, f"task {task_id} is gone"
    return info


async def wait_status(
    app: App, task_id: UUID | None, status: Status, *, timeout: float = 2.0
) -> TaskInfo:
    """Poll the store until the task has ``status``; return its snapshot."""

    async def check() -> TaskInfo | None:
        info = await get(app, task_id)
        return info if info.status is status else None

    try:
        return await eventually(check, timeout=timeout)
    except AssertionError:
        now = await get(app, task_id)
        raise AssertionError(
            f"task {task_id} not {status} within {timeout}s: it is {now.status} "
            f"(attempts={now.attempts}, error={now.error!r})"
        ) from None
