"""PostgreSQL rows as the store's records, read by column name (never by position).

Every statement that returns tasks says ``RETURNING *`` or ``SELECT *``, so a column added
by a later migration changes nothing here. A row this code could not have written (an
unknown status, a missing column) is a `StoreError`, not a crash further up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from taskward.errors import StoreError
from taskward.models import Status
from taskward.stores.base import Counts, NewTask, TaskRecord
from taskward.stores.columns import schedule_record, status_of, worker_record
from taskward.stores.rules import new_record, pending_record

__all__ = [
    "counts",
    "inserted",
    "inserted_many",
    "schedule_record",
    "task_record",
    "worker_record",
]


def task_record(row: asyncpg.Record) -> TaskRecord:
    """A row of ``taskward_tasks`` as a `TaskRecord`."""
    try:
        return new_record(
            id=row["id"],
            seq=row["seq"],
            task=row["task"],
            args=row["args"],
            name=row["name"],
            priority=row["priority"],
            queue=row["queue"],
            status=Status(row["status"]),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            timeout=row["timeout"],
            run_at=row["run_at"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            lease_token=row["lease_token"],
            lease_expires_at=row["lease_expires_at"],
            worker_id=row["worker_id"],
            cancel_requested=row["cancel_requested"],
            result=row["result"],
            error=row["error"],
            traceback=row["traceback"],
            progress=row["progress"],
            traceparent=row["traceparent"],
        )
    except (ValueError, TypeError, KeyError) as e:
        raise StoreError(f"task row seq={row.get('seq')!r} is corrupt: {e}") from None


def inserted(task: NewTask, row: asyncpg.Record) -> TaskRecord:
    """The record of ``task`` from what its insert returned (``seq, run_at, created_at``)."""
    return pending_record(task, row["seq"], row["run_at"], row["created_at"])


def inserted_many(tasks: Sequence[NewTask], rows: Iterable[asyncpg.Record]) -> list[TaskRecord]:
    """The records of ``tasks``, in their order, from the rows an insert of all returned
    (``id, seq, run_at, created_at``, in any order)."""
    by_id = {r["id"]: r for r in rows}
    return [inserted(t, by_id[t.id]) for t in tasks]


def counts(rows: Iterable[asyncpg.Record]) -> Counts:
    """`Counts` from rows of ``queue, status, n``."""
    by_queue: dict[str, dict[Status, int]] = {}
    for row in rows:
        by_queue.setdefault(row["queue"], {})[status_of(row["status"])] = row["n"]
    return Counts(by_queue=by_queue)
