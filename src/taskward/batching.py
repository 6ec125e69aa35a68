"""Group commit: callers that arrive while one write runs share the next write.

A store round trip costs far more than the rows it carries, so work that arrives together
(outcomes of runs that end together, submits of concurrent requests) is written together.
`GroupCommit` adds no delay: the first caller's items are written at once, and the items of
those that arrive while that write runs go together in the next one. Each caller gets its
own results (one per item it gave, in order), or the error of the write that carried them.

With ``alone_on_error``, a shared write that fails is tried again for each caller alone,
so only the caller at fault gets the error (a name already taken in one request must not
fail the others'); without it, every caller of the failed write gets the error and retries
on its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")
_Caller = tuple[list[T], "asyncio.Future[list[R]]"]  # a caller's items and its answer


class GroupCommit(Generic[T, R]):
    """Writes the items of concurrent callers through ``write``, sharing round trips.

    ``write(items)`` returns one result per item, in order. A write carries at most
    ``max_batch`` items, but never splits one caller's items.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int,
        name: str,
        alone_on_error: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        self._write = write
        self.max_batch = max_batch
        self.name = name
        self.alone_on_error = alone_on_error
        self._waiting: deque[_Caller[T, R]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Write ``items``, maybe in one write with other callers' items; their results."""
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(items), future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name=self.name)
        return await future

    async def _drain(self) -> None:
        group: list[_Caller[T, R]] = []
        try:
            while self._waiting:
                group = [self._waiting.popleft()]
                size = len(group[0][0])
                while self._waiting and size + len(self._waiting[0][0]) <= self.max_batch:
                    caller = self._waiting.popleft()
                    group.append(caller)
                    size += len(caller[0])
                await self._write_group(group)
                group = []
        except BaseException:
            # Cancelled (the loop is closing): nobody may wait forever.
            for _, future in (*group, *self._waiting):
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._writer = None

    async def _write_group(self, group: list[_Caller[T, R]]) -> None:
        try:
            results = await self._write([item for items, _ in group for item in items])
        except Exception as exc:
            if self.alone_on_error and len(group) > 1:
                for items, future in group:
                    await self._write_alone(items, future)
                return
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for items, future in group:
            if not future.done():
                future.set_result(list(results[start : start + len(items)]))
            start += len(items)

    async def _write_alone(self, items: list[T], future: asyncio.Future[list[R]]) -> None:
        try:
            results = await self._write(items)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(list(results))
