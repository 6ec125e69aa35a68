"""An App's registry of task functions: `@app.task`, lookups, their argument schemas.

`AppRegistry` is the part of `taskward.app.App` that knows the task functions; the
functions themselves are `taskward.tasks.TaskFunction`s.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, cast, overload

from taskward.errors import ConfigurationError, UnknownTaskError
from taskward.options import SubmitKeywords, SubmitOptions
from taskward.redact import Secrets, redact_args
from taskward.retry import Backoff
from taskward.stores.base import NewTask
from taskward.tasks import TaskFunction

if TYPE_CHECKING:
    from taskward.app import App

__all__ = ["AppRegistry"]

P = ParamSpec("P")
R = TypeVar("R")


class AppRegistry:
    """The task-function registry of `App` (which provides the attributes below)."""

    default_task: str | None
    _tasks: dict[str, TaskFunction[Any, Any]]

    @overload
    def task(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        retry: Backoff | None = None,
        executor: str | None = None,
        default: bool = False,
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        retry: Backoff | None = None,
        executor: str | None = None,
        default: bool = False,
    ) -> TaskFunction[P, R] | Callable[[Callable[P, R]], TaskFunction[P, R]]:
        """Register a task function: ``@app.task`` or ``@app.task(queue=..., ...)``."""

        def register(fn: Callable[P, R]) -> TaskFunction[P, R]:
            task_fn = TaskFunction(
                fn,
                app=cast("App", self),  # this registry is always an App's
                name=name,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
                retry=retry,
                executor=executor,
            )
            if task_fn.name in self._tasks:
                raise ConfigurationError(
                    f"a task function named {task_fn.name!r} is already registered; "
                    "give one of them another name="
                )
            if default and self.default_task not in (None, task_fn.name):
                raise ConfigurationError(
                    f"the default task is already {self.default_task!r}, "
                    f"so {task_fn.name!r} cannot be the default too"
                )
            self._tasks[task_fn.name] = task_fn
            if default:
                self.default_task = task_fn.name
            return task_fn

        return register if fn is None else register(fn)

    @property
    def tasks(self) -> Mapping[str, TaskFunction[Any, Any]]:
        """The registered task functions by name (read-only)."""
        return MappingProxyType(self._tasks)

    def get_task(self, name: TaskFunction[Any, Any] | str | None = None) -> TaskFunction[Any, Any]:
        """The task function with this name (None: the default task; a task function: itself)."""
        if isinstance(name, TaskFunction):
            return name
        if name is None:
            if self.default_task is None:
                raise UnknownTaskError("no task given, and the app has no default task")
            name = self.default_task
        task_fn = self._tasks.get(name)
        if task_fn is None:
            known = ", ".join(sorted(self._tasks)) or "none registered"
            raise UnknownTaskError(f"unknown task {name!r}; known: {known}")
        return task_fn

    def secrets(self, task: str | None) -> Secrets | None:
        """Where the task function of this name has arguments typed as secrets (None: it is
        not registered here, so only the redaction names hide arguments).

        For `TaskInfo.to_json` and `ScheduleInfo.to_json`: ``info.to_json(app.secrets(info.task))``.
        """
        task_fn = None if task is None else self._tasks.get(task)
        return None if task_fn is None else task_fn.secrets

    def task_types(self) -> builtins.list[dict[str, Any]]:
        """Each task function with its options and its arguments' JSON Schema, by name."""
        return [
            {
                "name": t.name,
                "description": inspect.getdoc(t.fn),
                "queue": t.queue,
                "priority": t.priority,
                "max_attempts": t.max_attempts,
                "timeout": t.timeout,
                "default": t.name == self.default_task,
                "args": _hide_secret_defaults(t.args_schema(), t.secrets),
            }
            for t in sorted(self._tasks.values(), key=lambda t: t.name)
        ]

    def prepare(
        self,
        task: str | None,
        args: Mapping[str, Any] | None = None,
        options: SubmitOptions | None = None,
        **keywords: Unpack[SubmitKeywords],
    ) -> NewTask:
        """A validated `NewTask` for the task function named ``task`` (None: the default);
        options as one `SubmitOptions` or as keywords."""
        return self.get_task(task).prepare_args(args, options, **keywords)


def _hide_secret_defaults(schema: dict[str, Any], secrets: Secrets) -> dict[str, Any]:
    """The arguments' JSON Schema without the defaults of secret arguments (a default in
    code is a value too; pydantic shows a SecretStr's as stars, a ``password: str``'s not)."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        defaults = {k: p["default"] for k, p in properties.items() if "default" in p}
        shown = redact_args(defaults, secrets)
        for key, value in shown.items():
            if value != defaults[key]:
                del properties[key]["default"]
    return schema
