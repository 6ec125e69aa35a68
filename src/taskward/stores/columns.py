"""Rows of the SQL stores read by column name into records: what SQLite and PostgreSQL
share (a row is anything indexed by column name: a dict, an ``asyncpg.Record``).

A value this code could not have written (a status it does not know) is a `StoreError`,
not a crash further on. Task rows, read on the hot paths, are each store's own.
"""

from __future__ import annotations

from typing import Any

from taskward.errors import StoreError
from taskward.models import Status
from taskward.stores.base import ScheduleRecord, WorkerRecord

__all__ = ["schedule_record", "status_of", "worker_record"]


def status_of(value: object) -> Status:
    """A status column's value; an unknown one is a `StoreError`."""
    try:
        return Status(str(value))
    except ValueError:
        raise StoreError(f"the tasks table holds an unknown status {value!r}") from None


def worker_record(row: Any) -> WorkerRecord:
    """A row of the workers table as a `WorkerRecord`."""
    return WorkerRecord(
        id=row["id"],
        info=row["info"],
        started_at=row["started_at"],
        last_seen=row["last_seen"],
        expires_at=row["expires_at"],
    )


def schedule_record(row: Any) -> ScheduleRecord:
    """A row of the schedules table as a `ScheduleRecord` (``paused`` may be 0/1)."""
    return ScheduleRecord(
        name=row["name"],
        definition=row["definition"],
        last_tick=row["last_tick"],
        last_fired=row["last_fired"],
        paused=bool(row["paused"]),
        updated_at=row["updated_at"],
    )
