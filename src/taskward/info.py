"""A stored task as users see it: `task_info` turns a store's row (JSON text, POSIX
timestamps) into the public `TaskInfo` (Python values, aware datetimes), and never raises on
a row whose JSON is corrupt; `parse_task_id` reads an id given as text; `worker_info` is a
worker's row as `App.workers` shows it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from taskward._fast import record_factory
from taskward.errors import InvalidArgumentsError
from taskward.models import Progress, TaskInfo, from_timestamp, read_json
from taskward.stores.base import TaskRecord, WorkerRecord

__all__ = ["parse_task_id", "task_info", "worker_info"]


def parse_task_id(task_id: UUID | str) -> UUID:
    """A task id as a UUID; `InvalidArgumentsError` for anything malformed."""
    if isinstance(task_id, UUID):
        return task_id
    if isinstance(task_id, str):
        try:
            return UUID(task_id)
        except ValueError:
            pass
    raise InvalidArgumentsError(f"malformed task id {task_id!r}: expected a UUID")


def _decode(text: str | None) -> tuple[bool, Any]:
    """(True, the value) for JSON text; (False, None) for None or anything not JSON."""
    if text is None:
        return False, None
    try:
        return True, read_json(text)
    except (ValueError, TypeError, RecursionError):
        return False, None


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


_new_info = record_factory(TaskInfo)  # TaskInfo(...), about half the cost (taskward._fast)


def task_info(record: TaskRecord, times: dict[float, datetime] | None = None) -> TaskInfo:
    """The public snapshot of a stored row; corrupt JSON in it never raises here.

    ``times``: creation datetimes already made, by timestamp: the tasks of one batch share
    their creation time (and, unless delayed, their due time), so one datetime serves all.
    """
    ok, args = _decode(record.args)
    if not ok or not isinstance(args, dict):
        args = None
    created_ts, run_ts = record.created_at, record.run_at
    created_at = None if times is None else times.get(created_ts)
    if created_at is None:
        created_at = datetime.fromtimestamp(created_ts, UTC)
        if times is not None:
            times[created_ts] = created_at
    run_at = created_at if run_ts == created_ts else datetime.fromtimestamp(run_ts, UTC)
    started, finished = record.started_at, record.finished_at
    if started is None and finished is None and record.error is None:
        # Never started nor ended (every task just submitted): no outcome, progress or run
        # times to read. Left out, the fields keep their defaults, about 1 us a row cheaper (a bulk
        # submit of 100,000 builds one for each).
        return _new_info(
            id=record.id,
            name=record.name,
            task=record.task,
            status=record.status,
            args=args,
            priority=record.priority,
            queue=record.queue,
            attempts=record.attempts,
            max_attempts=record.max_attempts,
            created_at=created_at,
            run_at=run_at,
        )
    result = None if record.result is None else _decode(record.result)[1]
    progress = None
    if record.progress is not None:  # most rows have none: nothing to decode
        ok, raw = _decode(record.progress)
        if ok and isinstance(raw, dict) and (done := _number(raw.get("done"))) is not None:
            total = raw.get("total")
            message = raw.get("message")
            progress = Progress(
                done=done,
                total=_number(total),
                message=message if isinstance(message, str) else None,
            )
    return _new_info(
        id=record.id,
        name=record.name,
        task=record.task,
        status=record.status,
        args=args,
        result=result,
        error=record.error,
        traceback=record.traceback,
        progress=progress,
        priority=record.priority,
        queue=record.queue,
        attempts=record.attempts,
        max_attempts=record.max_attempts,
        created_at=created_at,
        started_at=None if started is None else datetime.fromtimestamp(started, UTC),
        finished_at=None if finished is None else datetime.fromtimestamp(finished, UTC),
        run_at=run_at,
    )


def worker_info(record: WorkerRecord) -> dict[str, Any]:
    """A worker as `App.workers` shows it; what it said of itself, if readable."""
    try:
        info = json.loads(record.info)
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    return {
        "id": record.id,
        "host": info.get("host"),
        "pid": info.get("pid"),
        "queues": info.get("queues"),
        "queue_limits": info.get("queue_limits"),
        "concurrency": info.get("concurrency"),
        "running": info.get("running"),
        "started_at": from_timestamp(record.started_at),
        "last_seen": from_timestamp(record.last_seen),
    }
