"""The taskward `App` of one Django task backend: its task functions are Django tasks, found
by their ``module_path`` when first asked for (`find_task`), never registered by hand.

Each Django task becomes a `DjangoTaskFunction` named by its path, whose function is
`DjangoApp._runner`'s: it calls the Django function with the stored ``args`` and ``kwargs``
(and a `TaskContext` when the task takes one), an async one on the worker's loop and a plain
one in a thread with Django's database connections tidied around it, as a request would.

A path that names no Django task is an `UnknownTaskError` (with the reason) wherever a task is
submitted. In the worker (``refuse_in_run``) the row is run by a stand-in that fails at once
with that reason and calls nothing, so the reason is what the task's error says.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from taskward.app import App
from taskward.context import current_task
from taskward.contrib.django.compat import Task, TaskContext
from taskward.contrib.django.results import to_result
from taskward.contrib.django.tasks import DjangoTaskFunction, find_task, json_value, signature_of
from taskward.errors import TaskwardError, UnknownTaskError
from taskward.tasks import TaskFunction

__all__ = ["DjangoApp", "RefusedTaskError"]


_REFUSED = "taskward.contrib.django.refused"


class RefusedTaskError(TaskwardError):
    """The stored path does not name a Django task of this backend, so nothing was run."""


class _Refused(TaskFunction[Any, Any]):
    """What a worker runs for a refused path: nothing but the refusal (any stored args)."""

    def validate_json_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """No arguments: whatever is stored, the refusal is the outcome."""
        return {}


class DjangoApp(App):
    """A taskward App whose task functions are the Django tasks of backend ``alias``."""

    def __init__(
        self,
        store: str,
        *,
        alias: str,
        task_class: type[Task[Any, Any]],
        max_attempts: int,
    ) -> None:
        super().__init__(store)
        self.alias = alias
        self.task_class = task_class
        self.max_attempts = max_attempts
        #: Set by the worker command: a refused path runs as a failure that says why.
        self.refuse_in_run = False
        self._register_lock = threading.Lock()

    def get_task(self, name: TaskFunction[Any, Any] | str | None = None) -> TaskFunction[Any, Any]:
        """The task function of the Django task at path ``name`` (found on first use)."""
        if isinstance(name, TaskFunction):
            return name
        known = self._tasks.get(name) if isinstance(name, str) else None
        if known is not None:
            return known
        if name is None:
            raise UnknownTaskError("no task given: name a Django task by its module path")
        found = find_task(name, self.task_class)
        if isinstance(found, str):
            if self.refuse_in_run:
                return self._refusal(found)
            raise UnknownTaskError(f"unknown task {name!r}: {found}")
        return self.function_of(found)

    def function_of(self, task: Task[Any, Any]) -> DjangoTaskFunction:
        """The task function of ``task`` (made and kept on first use)."""
        path = task.module_path
        with self._register_lock:
            fn = self._tasks.get(path)
            if not isinstance(fn, DjangoTaskFunction):
                fn = DjangoTaskFunction(
                    self._runner(task), app=self, name=path, max_attempts=self.max_attempts
                )
                fn.django_task = task
                fn.django_signature = signature_of(task)
                self._tasks[path] = fn
            return fn

    def _refusal(self, reason: str) -> TaskFunction[Any, Any]:
        async def refuse() -> None:
            raise RefusedTaskError(reason)

        # Not kept (a store full of bogus paths must not grow this app), and not named by
        # the path, which may be anything at all: the row keeps it.
        return _Refused(refuse, app=self, name=_REFUSED, max_attempts=1)

    def _runner(self, task: Task[Any, Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
        """The function a worker calls for ``task``: Django's, with the stored arguments."""
        func = task.func
        is_async = inspect.iscoroutinefunction(func)

        async def run(args: list[Any], kwargs: dict[str, Any]) -> Any:
            if task.takes_context:
                args = [TaskContext(task_result=await self._current_result(task)), *args]
            if is_async:
                value = await func(*args, **kwargs)
            else:
                value = await asyncio.to_thread(_call_plain, func, args, kwargs)
            return json_value(value, f"the return value of {task.module_path}")

        return run

    async def _current_result(self, task: Task[Any, Any]) -> Any:
        """The `TaskResult` of the run in progress (what `TaskContext` carries)."""
        task_id = current_task()
        info = None if task_id is None else await self.get(task_id)
        if info is None:
            raise RuntimeError(f"{task.module_path} takes a context but runs outside a worker")
        return to_result(info, task, self.alias)


def _call_plain(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call a plain task function in this worker thread, with the database connections
    Django would have tidied before and after a request (dropping stale or broken ones)."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()
