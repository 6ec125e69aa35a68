"""The observers of `taskward.manager.TaskManager`: listeners and the ``events()`` stream.

`Listeners` is mixed into `TaskManager`. A listener is called with a snapshot after every
status or progress change; progress reported from a thread reaches listeners on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from taskward.models import Progress, TaskInfo
from taskward.records import Record

__all__ = ["Listener", "Listeners"]

# The manager's logger, not this module's: users filter on it, whichever part of the manager logs.
logger = logging.getLogger("taskward.manager")

#: A function called with a snapshot after every status or progress change.
Listener = Callable[[TaskInfo], None]


class Listeners:
    """The observer methods of `TaskManager` (which provides the attributes below)."""

    _listeners: list[Listener]
    _closed: bool
    _closers: list[Callable[[], None]]
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None

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
