"""TaskManager: named, tracked, cancellable asyncio tasks in one process.

A managed alternative to a bare ``asyncio.create_task``: every task has a name and a status
(`Status`), failures are isolated and logged, cancellation has a grace period, waiting tasks
start by priority under a concurrency bound with backpressure, and leaving
``async with TaskManager()`` shuts everything down without leaving tasks pending in the loop.
The durable worker runs its tasks through this class too.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from dataclasses import replace
from types import FunctionType
from typing import Any

from taskward.context import _current
from taskward.errors import (
    ClosedError,
    DuplicateNameError,
    QueueFullError,
    TaskCancelledError,
    TaskFailedError,
    TaskTimeoutError,
    UnknownTaskError,
)
from taskward.models import (
    ACTIVE,
    FINISHED,
    TRANSITIONS,
    Progress,
    Status,
    TaskInfo,
    check_transition,
)
from taskward.periodic import Periodic
from taskward.records import ASYNC, CORO, SYNC, Record, Retention, WaitQueue, describe_error

__all__ = ["Listener", "Retention", "TaskManager"]

logger = logging.getLogger("taskward.manager")

#: A function called with a snapshot after every status or progress change.
Listener = Callable[[TaskInfo], None]

# Tasks abandoned after ignoring cancellation are kept referenced here until they end, so the
# garbage collector never destroys a pending task ("Task was destroyed but it is pending").
_ABANDONED: set[asyncio.Task[Any]] = set()


class TaskManager:
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

    # ----------------------------------------------------------------- submitting

    async def submit(
        self,
        name: str | None,
        fn: Callable[..., Any] | Coroutine[Any, Any, Any],
        *args: Any,
        priority: int = 0,
        **kwargs: Any,
    ) -> str:
        """Add a task and return its name; waits while ``max_pending`` tasks already wait.

        ``fn`` is an async function, a sync function (run in a thread) or a coroutine object.
        A name that is Pending or Running is refused; a finished one is replaced.
        ``None`` picks a unique name.
        """
        if self.max_pending is not None:
            while self._pending >= self.max_pending and self._full() and not self._closed:
                self._check(name, fn, args, priority)
                waiter = self._get_loop().create_future()
                self._space_waiters.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_space()  # woken, but will not use the space: pass it on
                    _close_if_coroutine(fn)
                    raise
        return self._add(name, fn, args, kwargs, priority)

    def submit_nowait(
        self,
        name: str | None,
        fn: Callable[..., Any] | Coroutine[Any, Any, Any],
        *args: Any,
        priority: int = 0,
        **kwargs: Any,
    ) -> str:
        """Like `submit`, but raise `QueueFullError` instead of waiting for space."""
        if self.max_pending is not None and self._pending >= self.max_pending and self._full():
            self._check(name, fn, args, priority)
            _close_if_coroutine(fn)
            waiting = self._pending + self._running - (self.concurrency or 0)
            raise QueueFullError(
                f"{waiting} tasks are already waiting (max_pending={self.max_pending})"
            )
        return self._add(name, fn, args, kwargs, priority)

    def _full(self) -> bool:
        """True when one more task would wait beyond ``max_pending``."""
        # A task that a free slot starts at once does not wait: without this, a burst of
        # submissions was refused while slots were free, and max_pending=0 never let one in.
        return (
            self.concurrency is not None
            and self.max_pending is not None
            and self._pending + self._running >= self.concurrency + self.max_pending
        )

    def _check(self, name: str | None, fn: Any, args: tuple[Any, ...], priority: int) -> int:
        """Validate a submission; return how its fn is run. Kept cheap: it is on the hot path.

        A refused coroutine object is closed, as `asyncio.TaskGroup` does, so that refusing it
        does not also warn that it "was never awaited".
        """
        if self._closed:
            _close_if_coroutine(fn)
            raise ClosedError("the task manager is shutting down and takes no new tasks")
        if name is not None:
            if type(name) is not str or not name:
                _close_if_coroutine(fn)
                raise ValueError(f"a task name must be a non-empty string, not {name!r}")
            old = self._records.get(name)
            if old is not None and old.status in ACTIVE:
                _close_if_coroutine(fn)
                raise DuplicateNameError(f"a task named {name!r} is already {old.status}")
        if type(priority) is not int:
            _close_if_coroutine(fn)
            raise ValueError(f"priority must be an int, not {priority!r}")
        if type(fn) is FunctionType:  # the common case, without inspect's slower checks
            return ASYNC if fn.__code__.co_flags & inspect.CO_COROUTINE else SYNC
        if inspect.iscoroutine(fn):
            if args:
                fn.close()
                raise TypeError("arguments cannot be given with a coroutine object")
            return CORO
        if inspect.iscoroutinefunction(fn):
            return ASYNC
        if not callable(fn):
            raise TypeError(f"a task must be a coroutine or a callable, not {fn!r}")
        return SYNC

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

    def every(
        self,
        interval: float,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        run_now: bool = True,
        **kwargs: Any,
    ) -> str:
        """Run ``fn`` every ``interval`` seconds under ``name`` until cancelled or shut down.

        Runs never overlap: a run that overruns its interval skips the missed ticks. A run
        that raises is logged and recorded as the task's ``error``; the schedule goes on.
        The task stays Running; its progress counts the runs.
        """
        if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        given: object = fn  # typed as a callable, but a coroutine object is a likely mistake
        if inspect.iscoroutine(given):
            given.close()
            raise TypeError("every() needs a function to call each time, not a coroutine object")
        periodic = Periodic(interval, fn, args, kwargs, run_now)
        return self._add(name, periodic.run, (), {}, 0)

    # ----------------------------------------------------------------- running

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

    def _wake_space(self) -> None:
        waiters = self._space_waiters
        while waiters and not self._full():
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._closed:
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

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

    # ----------------------------------------------------------------- cancelling, waiting

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

    # ----------------------------------------------------------------- observers

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(info)`` after every status or progress change; returns a remover."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def events(self, maxsize: int = 1000) -> AsyncIterator[TaskInfo]:
        """Iterate over status and progress changes until the manager shuts down.

        A consumer that falls ``maxsize`` events behind loses the oldest ones.
        """
        if self._closed:
            return
        queue: asyncio.Queue[TaskInfo | None] = asyncio.Queue(maxsize)

        def put(info: TaskInfo | None) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(info)

        remove = self.add_listener(put)
        self._closers.append(lambda: put(None))
        try:
            while (info := await queue.get()) is not None:
                yield info
        finally:
            remove()

    def _emit(self, rec: Record, progress: Progress | None = None) -> None:
        info = rec.snapshot()
        if progress is not None and info.progress is not progress:
            info = replace(info, progress=progress)
        for listener in list(self._listeners):
            try:
                listener(info)
            except Exception:
                logger.exception("a task listener failed on %r", rec.name)

    def _changed_threadsafe(self, rec: Record, progress: Progress) -> None:
        if not self._listeners or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._emit(rec)
        else:
            # The status is read when the loop gets to it (so it never goes backwards), but
            # the progress is the one reported: a thread's quick reports are each seen.
            self._loop.call_soon_threadsafe(self._emit, rec, progress)

    # ----------------------------------------------------------------- shutdown

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

    async def __aenter__(self) -> TaskManager:
        self._get_loop()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()


def _not_started(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _close_if_coroutine(fn: object) -> None:
    if inspect.iscoroutine(fn):
        fn.close()
