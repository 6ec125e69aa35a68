"""All errors taskward raises. Each class's docstring is its default message.

The tree::

    TaskwardError
     ├── UnknownTaskError          no task by that name or id, or no task function by that name
     │    └── UnknownScheduleError  no schedule by that name
     ├── DuplicateNameError        the name belongs to a task that is still Pending or Running
     ├── InvalidTransitionError    a status change not in the transition table
     ├── InvalidArgumentsError     arguments that do not match a task function's signature
     │    └── InvalidJSONError     text that is not strict JSON (NaN, a repeated key, too deep)
     ├── TaskTimeoutError          waiting or running took too long; also a TimeoutError
     ├── TaskCancelledError        the task was cancelled, so it has no result
     ├── TaskFailedError           a durable task failed; carries its stored error
     ├── QueueFullError            max_pending tasks are already waiting
     ├── ClosedError               the manager or app is shutting down or closed
     ├── ConfigurationError        a bad setting (store URL, lease, ...)
     └── StoreError                the store could not be reached or answered wrongly
          └── LeaseLostError       the task's lease went to another worker (a fenced write failed)
"""

from __future__ import annotations

from typing import Any


class TaskwardError(Exception):
    """A taskward error."""

    def __init__(self, message: str | None = None, *args: Any) -> None:
        super().__init__(message or (self.__doc__ or "").strip(), *args)

    @property
    def message(self) -> str:
        """The human sentence that says what went wrong."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message


class UnknownTaskError(TaskwardError, LookupError):
    """No such task."""


class UnknownScheduleError(UnknownTaskError):
    """No such schedule."""


class DuplicateNameError(TaskwardError):
    """A task with this name is already Pending or Running."""


class InvalidTransitionError(TaskwardError):
    """This status change is not allowed."""


class InvalidArgumentsError(TaskwardError, ValueError):
    """The arguments do not match the task function's signature."""

    # ``field`` names what the error is about ("name", "queue", "args", "cron", ...) when it
    # is known, so that the HTTP API can point at it without reading the message.
    def __init__(self, message: str | None = None, *args: Any, field: str | None = None) -> None:
        super().__init__(message, *args)
        self.field = field


class InvalidJSONError(InvalidArgumentsError):
    """The text is not strict JSON."""

    # ``path``: where in the document the problem is (object keys and array indexes; empty for
    # the whole document); ``problem``: the message without that place.
    def __init__(
        self,
        problem: str | None = None,
        path: tuple[str | int, ...] = (),
        field: str | None = None,
    ) -> None:
        problem = problem or (self.__doc__ or "").strip()
        parts = [str(part) for part in path]
        if len(parts) > 6:  # deep in a document: the start says which argument it is
            parts = [*parts[:4], "...", parts[-1]]
        where = ".".join(parts)
        super().__init__(f"{where}: {problem}" if where else problem, field=field)
        self.problem = problem
        self.path = path


class TaskTimeoutError(TaskwardError, TimeoutError):
    """The task did not finish in time."""


class TaskCancelledError(TaskwardError):
    """The task was cancelled."""


class TaskFailedError(TaskwardError):
    """The task failed."""


class QueueFullError(TaskwardError):
    """Too many tasks are already waiting to run."""


class ClosedError(TaskwardError):
    """This is shutting down or closed and takes no new tasks."""


class ConfigurationError(TaskwardError, ValueError):
    """A setting is not valid."""


class StoreError(TaskwardError):
    """The store could not be reached or failed."""


class LeaseLostError(StoreError):
    """The task's lease was lost: another worker owns it now."""
