"""Group commit for submits: concurrent requests share one store round trip.

Under load, one insert per request spends most of its time handing work to the store's
thread and back (and, with SQLite, waiting for the GIL while the event loop serves other
requests). `GroupSubmitter` adds no delay: the first request is inserted at once, and the
requests that arrive while that insert runs go together in the next one.

Each request stays all or nothing on its own. When a shared insert fails (a name already
active, say), each request in it is inserted again alone, so only the request at fault gets
the error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from taskward.app import App
from taskward.models import TaskInfo
from taskward.stores.base import NewTask

__all__ = ["GroupSubmitter"]

logger = logging.getLogger("taskward.api")

_Waiter = tuple[list[NewTask], "asyncio.Future[list[TaskInfo]]"]


class GroupSubmitter:
    """Submit tasks through ``app.submit_many``, sharing round trips between callers."""

    def __init__(self, app: App, *, max_batch: int = 1000) -> None:
        self.app = app
        self.max_batch = max_batch
        self._waiting: deque[_Waiter] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, tasks: Sequence[NewTask]) -> list[TaskInfo]:
        """Insert ``tasks`` all or nothing, maybe in one transaction with other callers'."""
        future: asyncio.Future[list[TaskInfo]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(tasks), future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="taskward-submit")
        return await future

    async def _flush(self) -> None:
        group: list[_Waiter] = []
        try:
            while self._waiting:
                group = [self._waiting.popleft()]
                size = len(group[0][0])
                while self._waiting and size + len(self._waiting[0][0]) <= self.max_batch:
                    waiter = self._waiting.popleft()
                    group.append(waiter)
                    size += len(waiter[0])
                await self._insert(group)
        except BaseException:
            # Cancelled (the loop is closing): nobody may wait forever.
            for _, future in (*group, *self._waiting):
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._flusher = None

    async def _insert(self, group: list[_Waiter]) -> None:
        if len(group) == 1:
            tasks, future = group[0]
            await _settle(future, self.app.submit_many(tasks))
            return
        try:
            infos = await self.app.submit_many([t for tasks, _ in group for t in tasks])
        except Exception:
            # Someone's request is at fault (or the store failed): each on its own, so the
            # error reaches only whom it concerns.
            for tasks, future in group:
                await _settle(future, self.app.submit_many(tasks))
            return
        start = 0
        for tasks, future in group:
            if not future.done():
                future.set_result(infos[start : start + len(tasks)])
            start += len(tasks)


async def _settle(
    future: asyncio.Future[list[TaskInfo]], insert: Coroutine[Any, Any, list[TaskInfo]]
) -> None:
    try:
        result = await insert
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(result)
