"""TaskManager: named, tracked, cancellable asyncio tasks in one process.

A managed alternative to a bare ``asyncio.create_task``: every task has a name and a status
(`Status`), failures are isolated and logged, cancellation has a grace period, waiting tasks
start by priority under a concurrency bound with backpressure, and leaving
``async with TaskManager()`` shuts everything down without leaving tasks pending in the loop.
The durable worker runs its tasks through this class too.

This module holds the manager's state and runs its tasks: the slots, one run, how it ends,
retention, and reading tasks and waiting for them. The rest is mixed in: taking tasks in
(`taskward.submitting`), cancelling and shutdown (`taskward.cancelling`), listeners and the
``events()`` stream (`taskward.listeners`). Bookkeeping is in `taskward.records`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from typing import Any

from taskward.cancelling import Cancelling
from taskward.context import _current
from taskward.errors import TaskCancelledError, TaskFailedError, TaskTimeoutError, UnknownTaskError
from taskward.listeners import Listener, Listeners
from taskward.models import (
    ACTIVE,
    FINISHED,
    TRANSITIONS,
    Progress,
    Status,
    TaskInfo,
    check_transition,
)
from taskward.records import ASYNC, CORO, Record, Retention, WaitQueue, describe_error
from taskward.submitting import Submitting

__all__ = ["Listener", "Retention", "TaskManager"]

logger = logging.getLogger("taskward.manager")


class TaskManager(Submitting, Cancelling, Listeners):
    """Runs named asyncio tasks with status tracking, bounded concurrency and clean shutdown."""

    def __init__(
        self,
        concurrency: int | None = None,
        max_pending: int | None = None,
        *,
        grace: float = 5.0,
        retain: Retention | None = None,
    ) -> None:
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ValueError(f"concurrency must be a positive int or None, not {concurrency!r}")
        if max_pending is not None and (not isinstance(max_pending, int) or max_pending < 0):
            raise ValueError(f"max_pending must be an int >= 0 or None, not {max_pending!r}")
        if not grace >= 0:
            raise ValueError(f"grace must be >= 0, not {grace!r}")
        self.concurrency = concurrency
        self.max_pending = max_pending
        self.grace = grace
        self.retain = retain
        self._records: dict[str, Record] = {}
        # Finished records in finishing order, kept only when a retention bound needs it.
        self._finished: OrderedDict[str, Record] | None = None if retain is None else OrderedDict()
        self._queue = WaitQueue()
        self._auto_names = itertools.count(1)
        self._pending = 0
        self._running = 0
        self._slots = 0
        self._space_waiters: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._listeners: list[Listener] = []
        self._closed = False
        self._closers: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # ----------------------------------------------------------------- running

    def _add(
        self,
        name: str | None,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
    ) -> str:
        kind = self._check(name, fn, args, priority)
        if name is None:
            name = f"task-{next(self._auto_names)}"
            while name in self._records:
                name = f"task-{next(self._auto_names)}"
        elif self._finished is not None:
            self._finished.pop(name, None)
        rec = Record(self, name, fn, kind, args, kwargs, priority)
        self._records[name] = rec
        loop = self._get_loop()
        if self._listeners:
            self._emit(rec)
        if self.concurrency is None:
            self._start(rec)
            rec.task = loop.create_task(self._execute(rec), name=name)
        else:
            self._pending += 1
            self._queue.push(rec)
            if self._slots < self.concurrency:
                self._slots += 1
                loop.create_task(self._slot())
        return name

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        return self._loop

    def _start(self, rec: Record) -> None:
        if Status.RUNNING not in TRANSITIONS[rec.status]:
            check_transition(rec.status, Status.RUNNING)
        rec.status = Status.RUNNING
        rec.started = time.time()
        self._running += 1
        if self._listeners:
            self._emit(rec)

    async def _slot(self) -> None:
        """One of ``concurrency`` slots: runs waiting tasks, best first, until none is left.

        Running tasks one after another in a few long-lived slots, instead of a new asyncio
        task for each, is what keeps a bounded manager close to a plain queue's speed.
        """
        task = asyncio.current_task()
        assert task is not None
        queue = self._queue
        rec: Record | None = None
        try:
            while (rec := queue.pop()) is not None:
                if rec.status is not Status.PENDING:  # cancelled while waiting
                    continue
                self._pending -= 1
                rec.task = task
                self._start(rec)
                if self._space_waiters:
                    self._wake_space()
                await self._execute(rec)
                if rec.abandoned:
                    return
        except BaseException as exc:
            # A KeyboardInterrupt-like error ends this slot; the tasks still waiting need
            # another one. Not on cancellation: that is the loop being torn down.
            if not isinstance(exc, asyncio.CancelledError) and queue and not self._closed:
                self._slots += 1
                self._get_loop().create_task(self._slot())
            raise
        finally:
            if rec is None or not rec.abandoned:  # an abandoned one handed its slot on already
                self._slots -= 1

    async def _execute(self, rec: Record) -> None:
        _current.set(rec)
        fn, kind = rec.fn, rec.kind
        try:
            if kind == ASYNC:
                result = await fn(*rec.args, **rec.kwargs)  # type: ignore[misc,arg-type]
            elif kind == CORO:
                result = await fn
            else:
                result = await asyncio.to_thread(fn, *rec.args, **rec.kwargs)  # type: ignore[misc,arg-type]
                if inspect.isawaitable(result):
                    result = await result
        except BaseException as exc:
            self._failed(rec, exc)
        else:
            self._finish(
                rec, Status.CANCELLED if rec.cancel_requested else Status.COMPLETED, result
            )

    def _failed(self, rec: Record, exc: BaseException) -> None:
        """Record how a run that raised ended; re-raise what must stop the slot."""
        if isinstance(exc, asyncio.CancelledError):
            self._finish(rec, Status.CANCELLED)
            if not rec.cancel_requested:
                raise exc  # not ours: whoever cancelled the slot wants it stopped
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()  # our cancellation of this one task is consumed
        elif isinstance(exc, Exception):
            if rec.cancel_requested:
                self._finish(rec, Status.CANCELLED, error=describe_error(exc))
            else:
                if not rec.abandoned:
                    logger.error("task %r failed: %s", rec.name, describe_error(exc), exc_info=exc)
                self._finish(rec, Status.FAILED, error=describe_error(exc), exception=exc)
        else:
            # KeyboardInterrupt, SystemExit: record, then let them stop the program.
            logger.error(
                "task %r raised %s; passing it on", rec.name, describe_error(exc), exc_info=exc
            )
            self._finish(rec, Status.FAILED, error=describe_error(exc))
            task = asyncio.current_task()
            if task is not None:  # logged just now: asyncio need not report it once more
                task.add_done_callback(_retrieve)
            raise exc

    def _finish(
        self,
        rec: Record,
        status: Status,
        result: Any = None,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        old = rec.status
        if old in FINISHED:  # abandoned earlier: it stays as it was reported
            return
        if status not in TRANSITIONS[old]:
            check_transition(old, status)
        rec.status = status
        rec.finished = time.time()
        rec.result = result
        rec.error = error
        if exception is not None:
            exception.__traceback__ = None  # logged already; frames would pin memory
            rec.exception = exception
        if rec.kind == CORO and old is Status.PENDING:
            rec.fn.close()  # never started: close it so no "never awaited" warning appears
        rec.fn = rec.args = rec.kwargs = rec.task = None
        if rec.waiter is not None:
            if not rec.waiter.done():
                rec.waiter.set_result(None)
            rec.waiter = None
        if old is Status.RUNNING:
            self._running -= 1
            if self._space_waiters:
                self._wake_space()
        else:
            self._pending -= 1
            self._wake_space()
        if self._finished is not None:
            self._retain(rec)
        if self._listeners:
            self._emit(rec)
        if self._idle_waiters and self._pending == 0 and self._running == 0:
            for idle in self._idle_waiters:
                if not idle.done():
                    idle.set_result(None)
            self._idle_waiters.clear()

    def _retain(self, rec: Record) -> None:
        finished, retain = self._finished, self.retain
        assert finished is not None
        assert retain is not None
        finished[rec.name] = rec
        if retain.max_finished is not None:
            while len(finished) > retain.max_finished:
                self._forget(finished.popitem(last=False)[1])
        if retain.max_age is not None:
            self._expire(time.time() - retain.max_age)

    def _expire(self, before: float) -> int:
        """Forget tasks finished at or before ``before``; return how many."""
        finished = self._finished
        if finished is None:
            old = [
                r for r in self._records.values() if r.finished is not None and r.finished <= before
            ]
            for rec in old:
                self._forget(rec)
            return len(old)
        n = 0
        while finished:
            rec = next(iter(finished.values()))
            if rec.finished is not None and rec.finished > before:
                break
            finished.popitem(last=False)
            self._forget(rec)
            n += 1
        return n

    def _forget(self, rec: Record) -> None:
        if self._records.get(rec.name) is rec:
            del self._records[rec.name]

    # ----------------------------------------------------------------- querying

    def status(self, name: str) -> TaskInfo | None:
        """A snapshot of the task called ``name``, or None when there is none."""
        rec = self._records.get(name)
        return None if rec is None else rec.snapshot()

    def progress_of(self, name: str) -> Progress | None:
        """The last progress the task reported (None: none yet, or no such task).

        The same as ``status(name).progress`` without building a snapshot.
        """
        rec = self._records.get(name)
        return None if rec is None else rec.progress

    def has(self, name: str) -> bool:
        """True when a task of that name is known (active, or finished and not cleaned up)."""
        return name in self._records

    def count(self) -> int:
        """All known tasks, finished ones included until they are cleaned up."""
        return len(self._records)

    def running_count(self) -> int:
        """Tasks Running now."""
        return self._running

    def pending_count(self) -> int:
        """Tasks waiting for a slot."""
        return self._pending

    def names(self, status: Status | Collection[Status] | None = None) -> list[str]:
        """Names of known tasks, in submission order, optionally of the given status(es)."""
        if status is None:
            return list(self._records)
        wanted = {status} if isinstance(status, Status) else set(status)
        return [name for name, rec in self._records.items() if rec.status in wanted]

    def cleanup_finished(self, older_than: float | None = None) -> int:
        """Forget finished tasks (or those finished over ``older_than`` s ago); return the count."""
        return self._expire(time.time() - (older_than or 0.0))

    # ----------------------------------------------------------------- waiting

    async def wait(self, name: str, timeout: float | None = None) -> Any:
        """The task's result once it finishes; raises its exception, `TaskCancelledError`, or
        `TaskTimeoutError` after ``timeout`` seconds."""
        rec = self._get(name)
        if rec.status in ACTIVE:
            if rec.waiter is None:
                rec.waiter = self._get_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(rec.waiter), timeout)
            except TimeoutError:
                raise TaskTimeoutError(f"task {name!r} did not finish within {timeout}s") from None
        if rec.status is Status.COMPLETED:
            return rec.result
        if rec.status is Status.CANCELLED:
            raise TaskCancelledError(f"task {name!r} was cancelled")
        if rec.exception is not None:
            # The same instance each time: drop the frames an earlier wait() added to it.
            raise rec.exception.with_traceback(None)
        raise TaskFailedError(f"task {name!r} failed: {rec.error}")

    async def join(self, timeout: float | None = None) -> None:
        """Wait until no task is Pending or Running (new submissions are still accepted)."""
        if self._pending == 0 and self._running == 0:
            return
        idle = self._get_loop().create_future()
        self._idle_waiters.append(idle)
        try:
            await asyncio.wait_for(asyncio.shield(idle), timeout)
        except TimeoutError:
            raise TaskTimeoutError(f"tasks still active after {timeout}s") from None

    def _get(self, name: str) -> Record:
        rec = self._records.get(name)
        if rec is None:
            raise UnknownTaskError(f"no task named {name!r}")
        return rec

    async def __aenter__(self) -> TaskManager:
        self._get_loop()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
