"""`TaskwardBackend`: taskward as the backend of Django's Tasks framework.

Settings::

    TASKS = {
        "default": {
            "BACKEND": "taskward.contrib.django.TaskwardBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"DB": "postgresql://app@db/app", "MAX_ATTEMPTS": 1},
        }
    }

``DB`` is a taskward store URL (default: ``TASKWARD_DB``, else taskward's own default,
``sqlite:///taskward.db``); ``MAX_ATTEMPTS`` how many times a failing task runs (default 1:
Django's tasks have no retries). A bad option is an `ImproperlyConfigured` naming it, raised
when Django first builds the backend.

A Django priority (-100..100, higher first) is stored as its negation (taskward runs lower
first); ``queue_name`` is the taskward queue; ``run_after`` its due time (a naive one, with
``USE_TZ = False``, is read in Django's default time zone). Each backend keeps one
`DjangoApp`; the blocking methods go through its sync facade (a private thread and loop), the
``a...`` methods run on the caller's loop.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation

from taskward.app import DEFAULT_STORE_URL
from taskward.contrib.django.app import DjangoApp
from taskward.contrib.django.compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    task_enqueued,
)
from taskward.contrib.django.results import to_result
from taskward.contrib.django.tasks import find_task, json_value
from taskward.errors import ClosedError, ConfigurationError
from taskward.models import TaskInfo
from taskward.options import MAX_INT32, SubmitOptions
from taskward.stores import NewTask, open_store

__all__ = ["TaskwardBackend"]

T = TypeVar("T")

_OPTIONS = ("DB", "MAX_ATTEMPTS")


def _aware(value: datetime | None) -> datetime | None:
    """A due time taskward can store: a naive one is read in Django's default time zone."""
    if value is None or value.utcoffset() is not None:
        return value
    from django.utils import timezone

    aware: datetime = timezone.make_aware(value, timezone.get_default_timezone())
    return aware


class TaskwardBackend(BaseTaskBackend):
    """Django tasks stored in a taskward store and run by ``manage.py taskward_worker``."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        url, max_attempts = self._read_options()
        self.url = url
        self.app = DjangoApp(
            url, alias=alias, task_class=self.task_class, max_attempts=max_attempts
        )

    def _read_options(self) -> tuple[str, int]:
        where = f"TASKS[{self.alias!r}]['OPTIONS']"
        options = self.options
        if not isinstance(options, dict):
            raise ImproperlyConfigured(f"{where} must be a dict, not {options!r}")
        unknown = sorted(str(key) for key in options if key not in _OPTIONS)
        if unknown:
            raise ImproperlyConfigured(
                f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(_OPTIONS)}"
            )
        url = options.get("DB", os.environ.get("TASKWARD_DB") or DEFAULT_STORE_URL)
        if not isinstance(url, str) or not url.strip():
            raise ImproperlyConfigured(f"{where}['DB'] must be a store URL, not {url!r}")
        try:
            open_store(url)  # checks the URL (and the driver); connects to nothing
        except ConfigurationError as exc:
            raise ImproperlyConfigured(f"{where}['DB']: {exc}") from None
        attempts = options.get("MAX_ATTEMPTS", 1)
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise ImproperlyConfigured(f"{where}['MAX_ATTEMPTS'] must be an int, not {attempts!r}")
        if not 1 <= attempts <= MAX_INT32:
            raise ImproperlyConfigured(f"{where}['MAX_ATTEMPTS'] must be >= 1, not {attempts}")
        return url, attempts

    # -- enqueue ------------------------------------------------------------------------

    def _prepare(self, task: Task[Any, T], args: Any, kwargs: Any) -> NewTask:
        """The row of one call of ``task``, every check done (here, in the caller)."""
        self.validate_task(task)
        found = find_task(task.module_path, self.task_class)
        if isinstance(found, str) or found.func is not task.func:
            why = found if isinstance(found, str) else "another task has that path"
            raise InvalidTask(
                f"{task.module_path} cannot be run by a worker, which finds tasks by their"
                f" module path: {why}"
            )
        payload = {
            "args": json_value(list(args), "args"),
            "kwargs": json_value(dict(kwargs), "kwargs"),
        }
        options = SubmitOptions(
            priority=-task.priority,
            queue=task.queue_name,
            run_at=_aware(task.run_after),
        )
        return self.app.function_of(task).prepare_args(payload, options)

    def _enqueued(self, task: Task[Any, T], info: TaskInfo) -> TaskResult[T]:
        result: TaskResult[T] = to_result(info, task, self.alias, as_stored=False)
        task_enqueued.send(type(self), task_result=result)
        return result

    def enqueue(self, task: Task[Any, T], args: Any, kwargs: Any) -> TaskResult[T]:
        """Store one call of ``task``; its result, READY. Blocks (not inside an event loop)."""
        new = self._prepare(task, args, kwargs)
        _refuse_in_loop("enqueue", "aenqueue")
        return self._enqueued(task, self.app.sync.submit_many([new])[0])

    async def aenqueue(self, task: Task[Any, T], args: Any, kwargs: Any) -> TaskResult[T]:
        """`enqueue` for async code, on the running loop."""
        new = self._prepare(task, args, kwargs)
        return self._enqueued(task, (await self.app.submit_many([new]))[0])

    # -- results ------------------------------------------------------------------------

    def _result(self, result_id: str, info: TaskInfo | None) -> TaskResult[Any]:
        if info is None:
            raise TaskResultDoesNotExist(f"no task result with id {result_id!r}")
        found = find_task(info.task or "", self.task_class)
        if isinstance(found, str):
            raise TaskResultDoesNotExist(
                f"task {result_id} is not a Django task of backend {self.alias!r}: {found}"
            )
        return to_result(info, found, self.alias)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The result with this id; `TaskResultDoesNotExist` if there is none."""
        uid = _task_id(result_id)
        _refuse_in_loop("get_result", "aget_result")
        return self._result(result_id, self.app.sync.get(uid))

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        """`get_result` for async code, on the running loop."""
        return self._result(result_id, await self.app.get(_task_id(result_id)))

    def close(self) -> None:
        """Stop the sync facade's thread and close its store (the backend stays usable:
        the next call starts them again)."""
        try:
            sync = self.app.sync
        except ClosedError:  # the app was closed: so is its facade
            return
        sync.close()


def _task_id(result_id: object) -> UUID:
    """A result id as taskward's task id; a malformed one names no result."""
    if isinstance(result_id, str):
        try:
            return UUID(result_id)
        except ValueError:
            pass
    raise TaskResultDoesNotExist(f"no task result with id {result_id!r} (ids are UUIDs)")


def _refuse_in_loop(method: str, instead: str) -> None:
    """A blocking call inside a running event loop would freeze it: say what to use."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SynchronousOnlyOperation(
        f"{method}() blocks, so it cannot be called inside a running event loop: "
        f"await {instead}() instead"
    )
