"""Blocking access to an `App` for code without an event loop (Flask, Django, scripts)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Unpack
from uuid import UUID

from taskward.app import App
from taskward.models import Status, TaskInfo
from taskward.options import SubmitKeywords, SubmitOptions, submit_options
from taskward.stores.base import Counts, NewTask
from taskward.tasks import TaskFunction

__all__ = ["SyncApp"]


class SyncApp:
    """Blocking access to an `App` for code without an event loop (Flask, Django, scripts).

    The coroutines run through the app's `Portal`: on one private daemon thread with its own
    event loop, started on first use and stopped by `close` (also at interpreter exit, or by
    ``await app.close()``).
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._portal = app.portal()

    @property
    def closed(self) -> bool:
        """True once `close` has run (``app.sync`` then makes a new facade)."""
        return self._portal.closed

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
        options = submit_options(
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        # Validate here, in the caller's thread: its errors need no trip through the loop.
        new = self._app.get_task(task).prepare_call(options, args, kwargs)
        return self.submit_many([new])[0]

    def submit_args(
        self,
        task: str | None,
        args: Mapping[str, Any] | None = None,
        options: SubmitOptions | None = None,
        **keywords: Unpack[SubmitKeywords],
    ) -> TaskInfo:
        """Submit one task with its arguments as one dict (see `App.prepare`)."""
        return self.submit_many([self._app.prepare(task, args, options, **keywords)])[0]

    def submit_many(self, items: Iterable[NewTask]) -> builtins.list[TaskInfo]:
        """Insert prepared tasks in one round trip, all or nothing."""
        batch = builtins.list(items)
        if self._app._tracing is not None:  # the caller's span is not current on the portal
            batch = self._app._tracing.continue_current(batch)
        return self._portal.call(lambda app: app.submit_many(batch))

    def get(self, task_id: UUID | str) -> TaskInfo | None:
        """The task with this id, or None."""
        return self._portal.call(lambda app: app.get(task_id))

    def get_by_name(self, name: str) -> TaskInfo | None:
        """The active task with this name, else the latest one, else None."""
        return self._portal.call(lambda app: app.get_by_name(name))

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
        return self._portal.call(
            lambda app: app.list(
                status=status, task=task, queue=queue, name=name, limit=limit, cursor=cursor
            )
        )

    def cancel(self, task_id: UUID | str) -> TaskInfo:
        """Cancel a task (see `App.cancel`)."""
        return self._portal.call(lambda app: app.cancel(task_id))

    def retry(self, task_id: UUID | str) -> TaskInfo:
        """Run a Failed or Cancelled task again."""
        return self._portal.call(lambda app: app.retry(task_id))

    def counts(self) -> Counts:
        """Task counts by queue and status."""
        return self._portal.call(lambda app: app.counts())

    def wait(self, task_id: UUID | str, timeout: float | None = None) -> Any:
        """Block until the task finishes; its result, or the error `App.wait` raises."""
        return self._portal.call(lambda app: app.wait(task_id, timeout))

    def close(self) -> None:
        """Close the facade's store (if it has its own) and stop its thread."""
        self._portal.close()
