"""The bookkeeping of `taskward.manager.TaskManager`: one mutable record per task (its
public snapshot is a `TaskInfo`), the queue of waiting tasks by priority, and how long
finished tasks are kept (`Retention`).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskward.models import Progress, Status, TaskInfo
from taskward.models import from_timestamp as _dt

if TYPE_CHECKING:
    from taskward.manager import TaskManager

__all__ = ["ASYNC", "CORO", "SYNC", "Record", "Retention", "WaitQueue", "describe_error"]


@dataclass(frozen=True, slots=True)
class Retention:
    """How many finished tasks a manager keeps, and for how long (seconds); None: no bound."""

    max_finished: int | None = 10_000
    max_age: float | None = None

    def __post_init__(self) -> None:
        if self.max_finished is not None and self.max_finished < 0:
            raise ValueError("max_finished must be >= 0 or None")
        if self.max_age is not None and not self.max_age >= 0:
            raise ValueError("max_age must be >= 0 or None")


# How a record's fn is run.
CORO, ASYNC, SYNC = 0, 1, 2


class Record:
    """The manager's mutable record of one task; `TaskInfo` is its public snapshot."""

    __slots__ = (
        "abandoned",
        "args",
        "cancel_requested",
        "created",
        "error",
        "exception",
        "finished",
        "fn",
        "kind",
        "kwargs",
        "manager",
        "name",
        "priority",
        "progress",
        "result",
        "started",
        "status",
        "task",
        "waiter",
    )

    def __init__(
        self,
        manager: TaskManager,
        name: str,
        fn: Any,
        kind: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
    ) -> None:
        self.manager = manager
        self.name = name
        self.fn = fn
        self.kind = kind
        self.args: tuple[Any, ...] | None = args
        self.kwargs: dict[str, Any] | None = kwargs
        self.priority = priority
        self.status = Status.PENDING
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.error: str | None = None
        self.result: Any = None
        self.exception: BaseException | None = None
        self.progress: Progress | None = None
        self.task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.cancel_requested = False
        self.abandoned = False

    def report(self, progress: Progress) -> None:
        """Record progress; safe to call from the task's thread."""
        self.progress = progress
        self.manager._changed_threadsafe(self, progress)

    def snapshot(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            status=self.status,
            error=self.error,
            result=self.result,
            progress=self.progress,
            priority=self.priority,
            created_at=datetime.fromtimestamp(self.created, UTC),
            started_at=_dt(self.started),
            finished_at=_dt(self.finished),
        )


class WaitQueue:
    """Waiting records, lowest priority number first, then in submission order.

    One FIFO lane per priority plus a heap of the priorities in use: O(1) for the usual handful
    of priorities, where one heap of all records would cost O(log n) per task.
    """

    __slots__ = ("_lanes", "_order")

    def __init__(self) -> None:
        self._lanes: dict[int, deque[Record]] = {}
        self._order: list[int] = []

    def push(self, rec: Record) -> None:
        lane = self._lanes.get(rec.priority)
        if lane is None:
            lane = self._lanes[rec.priority] = deque()
            heapq.heappush(self._order, rec.priority)
        lane.append(rec)

    def pop(self) -> Record | None:
        if not self._order:
            return None
        priority = self._order[0]
        lane = self._lanes[priority]
        rec = lane.popleft()
        if not lane:
            heapq.heappop(self._order)
            del self._lanes[priority]
        return rec

    def drain(self) -> list[Record]:
        recs = [rec for priority in sorted(self._order) for rec in self._lanes[priority]]
        self._lanes.clear()
        self._order.clear()
        return recs

    def __bool__(self) -> bool:
        return bool(self._order)


def describe_error(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
