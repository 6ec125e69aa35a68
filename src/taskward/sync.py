"""Blocking access to an `App` for code without an event loop (Flask, Django, scripts)."""

from __future__ import annotations

import asyncio
import atexit
import builtins
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar, Unpack
from uuid import UUID

from taskward.app import App
from taskward.errors import ClosedError
from taskward.models import Status, TaskInfo
from taskward.stores.base import Counts, NewTask
from taskward.tasks import SubmitOptions, TaskFunction

__all__ = ["SyncApp"]

T = TypeVar("T")


class SyncApp:
    """Blocking access to an `App` for code without an event loop (Flask, Django, scripts).

    The coroutines run on one private daemon thread with its own event loop, started on first
    use and stopped by `close` (also at interpreter exit, or by ``await app.close()``).
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._target: App | None = None
        self.closed = False

    def _start(self) -> tuple[asyncio.AbstractEventLoop, App]:
        with self._lock:
            if self.closed:
                raise ClosedError("app.sync is closed")
            if self._loop is None or self._target is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="taskward-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                self._target = self._app._for_sync()
                atexit.register(self.close)
            return self._loop, self._target

    def _run(self, make: Callable[[App], Coroutine[Any, Any, T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "app.sync blocks, so it cannot be used inside a running event loop: "
                "await the App's coroutine methods instead"
            )
        loop, target = self._start()
        future = asyncio.run_coroutine_threadsafe(make(target), loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt while blocked: do not leave the coroutine running behind.
            future.cancel()
            raise

    def submit(
        self,
        task: TaskFunction[Any, Any] | str,
        *args: Any,
        name: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> TaskInfo:
        """Submit one task of a task function (or its name)."""
        # Validate here, in the caller's thread: its errors need no trip through the loop.
        new = self._app._resolve(task).prepare(
            *args,
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout=timeout,
            **kwargs,
        )
        return self.submit_many([new])[0]

    def submit_args(
        self,
        task: str | None,
        args: Mapping[str, Any] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> TaskInfo:
        """Submit one task with its arguments as one dict (see `App.prepare`)."""
        return self.submit_many([self._app.prepare(task, args, **options)])[0]

    def submit_many(self, items: Iterable[NewTask]) -> builtins.list[TaskInfo]:
        """Insert prepared tasks in one round trip, all or nothing."""
        batch = builtins.list(items)
        return self._run(lambda app: app.submit_many(batch))

    def get(self, task_id: UUID | str) -> TaskInfo | None:
        """The task with this id, or None."""
        return self._run(lambda app: app.get(task_id))

    def get_by_name(self, name: str) -> TaskInfo | None:
        """The active task with this name, else the latest one, else None."""
        return self._run(lambda app: app.get_by_name(name))

    def list(
        self,
        *,
        status: Status | str | Iterable[Status | str] | None = None,
        task: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[builtins.list[TaskInfo], str | None]:
        """A page of tasks, newest first, and the next page's cursor."""
        return self._run(
            lambda app: app.list(
                status=status, task=task, queue=queue, name=name, limit=limit, cursor=cursor
            )
        )

    def cancel(self, task_id: UUID | str) -> TaskInfo:
        """Cancel a task (see `App.cancel`)."""
        return self._run(lambda app: app.cancel(task_id))

    def retry(self, task_id: UUID | str) -> TaskInfo:
        """Run a Failed or Cancelled task again."""
        return self._run(lambda app: app.retry(task_id))

    def counts(self) -> Counts:
        """Task counts by queue and status."""
        return self._run(lambda app: app.counts())

    def wait(self, task_id: UUID | str, timeout: float | None = None) -> Any:
        """Block until the task finishes; its result, or the error `App.wait` raises."""
        return self._run(lambda app: app.wait(task_id, timeout))

    def close(self) -> None:
        """Close the facade's store (if it has its own) and stop its thread."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            loop, thread, target = self._loop, self._thread, self._target
        atexit.unregister(self.close)
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("app.sync cannot be closed from its own thread")

        async def shutdown() -> None:
            if target is not None and target is not self._app:
                await target.close()
            else:
                self._app._unbind(loop)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for other in others:
                other.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()
