"""Cancelling `taskward.manager.TaskManager` tasks: one with a grace, or all at shutdown.

`Cancelling` is mixed into `TaskManager`. A running task is cancelled and awaited up to a
grace; one that ignores its cancellation is logged, marked Cancelled and abandoned (kept
referenced until it ends), and its slot is replaced. Shutdown is the same for every task:
stop taking tasks, cancel the waiting ones, cancel the running ones with the grace, log
each outcome, then end the ``events()`` streams.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskward.models import Status, TaskInfo
from taskward.records import CORO, Record, WaitQueue

__all__ = ["Cancelling"]

# The manager's logger, not this module's: users filter on it, whichever part of the manager logs.
logger = logging.getLogger("taskward.manager")

# Tasks abandoned after ignoring cancellation are kept referenced here until they end, so the
# garbage collector never destroys a pending task ("Task was destroyed but it is pending").
_ABANDONED: set[asyncio.Task[Any]] = set()


class Cancelling:
    """The cancel and shutdown methods of `TaskManager` (which provides the attributes below)."""

    concurrency: int | None
    grace: float
    _records: dict[str, Record]
    _queue: WaitQueue
    _slots: int
    _closed: bool
    _closers: list[Callable[[], None]]

    if TYPE_CHECKING:

        def _get_loop(self) -> asyncio.AbstractEventLoop: ...

        def _get(self, name: str) -> Record: ...

        async def _slot(self) -> None: ...

        def _wake_space(self) -> None: ...

        def _finish(
            self,
            rec: Record,
            status: Status,
            result: Any = None,
            error: str | None = None,
            exception: BaseException | None = None,
        ) -> None: ...

    async def cancel(self, name: str, grace: float = 5.0) -> TaskInfo:
        """Cancel a task and return its final snapshot.

        Pending: Cancelled at once. Running: cancelled and awaited up to ``grace`` seconds;
        one that ignores cancellation is logged, marked Cancelled and abandoned.
        A finished task is left as it is.
        """
        rec = self._get(name)
        if rec.status is Status.PENDING:
            rec.cancel_requested = True
            self._finish(rec, Status.CANCELLED)
        elif rec.status is Status.RUNNING:
            await self._cancel_running([rec], grace)
        return rec.snapshot()

    async def _cancel_running(self, recs: list[Record], grace: float) -> None:
        loop = self._get_loop()
        waiters: dict[asyncio.Future[None], Record] = {}
        for rec in recs:
            task = rec.task
            if rec.status is not Status.RUNNING or task is None:
                continue
            if not rec.cancel_requested:  # a second cancel would cut into its cleanup
                rec.cancel_requested = True
                task.cancel()
                if _not_started(task):
                    # Submitted (so Running, when unbounded) but never stepped: no handler of
                    # its can run, so finish it now rather than wait out the grace for it.
                    if rec.kind == CORO:
                        rec.fn.close()
                    self._finish(rec, Status.CANCELLED)
                    continue
            if rec.waiter is None:
                rec.waiter = loop.create_future()
            waiters[rec.waiter] = rec
        if not waiters:
            return
        _, stuck = await asyncio.wait(waiters, timeout=grace)
        for waiter in stuck:
            rec = waiters[waiter]
            task = rec.task
            if rec.status is not Status.RUNNING or task is None:
                continue
            logger.warning(
                "task %r ignored cancellation for %.1fs: abandoned while still running"
                " (marked Cancelled; nothing waits for it any more)",
                rec.name,
                grace,
            )
            rec.abandoned = True
            _ABANDONED.add(task)
            task.add_done_callback(_ABANDONED.discard)
            self._finish(rec, Status.CANCELLED, error=f"ignored cancellation for {grace}s")
            if self.concurrency is not None:  # its slot is stuck with it: open another
                self._slots -= 1
                if self._queue and not self._closed:
                    self._slots += 1
                    loop.create_task(self._slot())

    @property
    def closed(self) -> bool:
        """True once shutdown has begun."""
        return self._closed

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop taking tasks, cancel the waiting ones, cancel the running ones and wait up to
        ``grace`` seconds (default: the manager's), then log each task's outcome (or that
        it was abandoned, still running, for one that ignored its cancellation)."""
        grace = self.grace if grace is None else grace
        self._closed = True
        self._wake_space()
        waiting = self._queue.drain()  # emptied first so nothing new starts
        for rec in waiting:
            if rec.status is Status.PENDING:
                rec.cancel_requested = True
                self._finish(rec, Status.CANCELLED)
        running = [r for r in self._records.values() if r.status is Status.RUNNING]
        await self._cancel_running(running, grace)
        for rec in running:
            if rec.abandoned:
                # Nothing was awaited after the grace ran out: it is still running.
                logger.warning(
                    "shutdown: task %r abandoned, still running: it ignored cancellation; an"
                    " event loop that closes now (asyncio.run) waits until it ends",
                    rec.name,
                )
            else:
                logger.info("shutdown: task %r ended %s", rec.name, rec.status)
        for close in self._closers:
            close()


def _not_started(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
