"""How `taskward.manager.TaskManager` takes tasks in: the checks and the backpressure.

`Submitting` is mixed into `TaskManager`: ``submit``, ``submit_nowait`` and ``every``, the
cheap check of each submission (on the hot path), and the ``max_pending`` backpressure: who
waits for space, and who is woken when a task leaves. `TaskManager._add` records the task.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import Callable, Coroutine
from types import FunctionType
from typing import TYPE_CHECKING, Any

from taskward.errors import ClosedError, DuplicateNameError, QueueFullError
from taskward.models import ACTIVE
from taskward.periodic import Periodic
from taskward.records import ASYNC, CORO, SYNC, Record

__all__ = ["Submitting"]


class Submitting:
    """The submitting methods of `TaskManager` (which provides the attributes below)."""

    concurrency: int | None
    max_pending: int | None
    _records: dict[str, Record]
    _pending: int
    _running: int
    _space_waiters: deque[asyncio.Future[None]]
    _closed: bool

    if TYPE_CHECKING:

        def _get_loop(self) -> asyncio.AbstractEventLoop: ...

        def _add(
            self,
            name: str | None,
            fn: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            priority: int,
        ) -> str: ...

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


def _close_if_coroutine(fn: object) -> None:
    if inspect.iscoroutine(fn):
        fn.close()
