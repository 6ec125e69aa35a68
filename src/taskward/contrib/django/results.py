"""A taskward task as Django's `TaskResult`.

=====================  ==============  =================================================
taskward status        Django status   what comes along
=====================  ==============  =================================================
Pending                READY           the last attempt's error, when a retry waits
Running                RUNNING         ``started_at``, ``last_attempted_at``
Completed              SUCCESSFUL      ``return_value`` (the stored JSON result)
Failed, Cancelled      FAILED          ``errors``: one `TaskError`
=====================  ==============  =================================================

taskward stores an error as a sentence and a formatted traceback. Django's `TaskError` wants
the exception's class path: it is read from the traceback's last exception line (Python
writes ``module.Class: message`` there, with no module for built-ins). An error without a
traceback (a task cancelled, a refused path, a result that was not JSON) is a taskward error:
`TaskCancelledError` or `TaskFailedError`, with the sentence as its traceback.

taskward keeps no list of the workers of each attempt: ``worker_ids`` holds ``"taskward"``
once per attempt, so that ``attempts`` (its length, in Django) counts right.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from taskward.contrib.django.compat import (
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from taskward.errors import TaskCancelledError, TaskFailedError
from taskward.models import Status, TaskInfo

__all__ = ["WORKER_ID", "exception_path", "to_result"]

#: What ``worker_ids`` holds for each attempt (taskward does not keep who ran which).
WORKER_ID = "taskward"

_STATUSES = {
    Status.PENDING: "READY",
    Status.RUNNING: "RUNNING",
    Status.COMPLETED: "SUCCESSFUL",
    Status.FAILED: "FAILED",
    Status.CANCELLED: "FAILED",
}
_HEADER = "Traceback (most recent call last):"
_CLASS_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def exception_path(traceback: str | None) -> str | None:
    """The class path of the exception a formatted traceback ends with, or None."""
    if not traceback:
        return None
    lines = traceback.splitlines()
    starts = [i for i, line in enumerate(lines) if line == _HEADER]
    if not starts:
        return None
    # The last exception of a chain follows the last header; its first unindented line is
    # ``path: message`` (or the bare path).
    for line in lines[starts[-1] + 1 :]:
        if line and not line[0].isspace():
            head = line.partition(":")[0].strip()
            if not _CLASS_PATH.fullmatch(head):
                return None
            return head if "." in head else f"builtins.{head}"
    return None


def _error(info: TaskInfo) -> TaskError:
    path = exception_path(info.traceback)
    if path is None:
        kind = TaskCancelledError if info.status is Status.CANCELLED else TaskFailedError
        path = f"{kind.__module__}.{kind.__qualname__}"
        return TaskError(exception_class_path=path, traceback=info.error or kind.__doc__ or "")
    return TaskError(exception_class_path=path, traceback=info.traceback or "")


def _task_of(info: TaskInfo, task: Task[Any, Any], alias: str) -> Task[Any, Any]:
    """``task`` with the priority, queue and due time this row was enqueued with."""
    deferred: datetime | None = None
    if info.run_at is not None and info.run_at != info.created_at:
        deferred = info.run_at
    try:
        return task.using(
            priority=-info.priority,  # taskward runs lower first, Django higher first
            queue_name=info.queue,
            run_after=deferred,
            backend=alias,
        )
    except InvalidTask:
        # Not a Django task's values (say, a priority set through taskward's own API, out of
        # Django's range): the task as declared still says what ran.
        return task


def to_result(
    info: TaskInfo, task: Task[Any, Any], alias: str, *, as_stored: bool = True
) -> TaskResult[Any]:
    """Django's `TaskResult` of a stored task that runs ``task``: with the priority, queue
    and due time it was stored with, or (``as_stored=False``, just enqueued) ``task`` as is."""
    status = TaskResultStatus(_STATUSES[info.status])
    args = info.args or {}
    # A Failed or Cancelled task has its error; a waiting retry keeps its last attempt's.
    failed = status == TaskResultStatus.FAILED
    errors = [_error(info)] if failed or (info.error is not None and not info.is_finished) else []
    result: TaskResult[Any] = TaskResult(
        task=_task_of(info, task, alias) if as_stored else task,
        id=str(info.id),
        status=status,
        enqueued_at=info.created_at,
        started_at=info.started_at,
        finished_at=info.finished_at if info.is_finished else None,
        last_attempted_at=info.started_at,
        args=list(args.get("args") or []),
        kwargs=dict(args.get("kwargs") or {}),
        backend=alias,
        errors=errors,
        worker_ids=[WORKER_ID] * info.attempts,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        # The return value is not a field Django lets one pass (it is read back from a store).
        object.__setattr__(result, "_return_value", info.result)
    return result
