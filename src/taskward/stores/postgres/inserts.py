"""How tasks go into PostgreSQL: one row by ``VALUES``, a few by arrays, many by ``COPY``.

- One task (every single submit) is a plain ``INSERT ... VALUES`` on the runner's held
  connection: cheaper to bind and run than arrays.
- A few tasks are one ``INSERT ... SELECT FROM unnest(...)`` of arrays.
- Many tasks (`PostgresStore.copy_from` or more) are one binary ``COPY``, after one query
  that reserves their seqs and reads the store's time, so no row has to be read back.

Each path takes ``connection=`` (the caller's asyncpg connection, inside its transaction)
or runs on the store's own. The insert is all or nothing; a name already held by an active
task is a `DuplicateNameError` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from taskward.errors import DuplicateNameError, StoreError
from taskward.models import Status
from taskward.stores.base import NewTask, TaskRecord
from taskward.stores.postgres.rows import inserted, inserted_many
from taskward.stores.postgres.runner import DB_ERRORS, Runner
from taskward.stores.postgres.statements import QUERIES
from taskward.stores.rules import duplicate_name_error, pending_record, resolve_run_at

__all__ = ["copy_tasks", "insert_conflict", "insert_one", "insert_rows"]

_INSERT_ONE = QUERIES["insert_one"]
_INSERT = QUERIES["insert"]
_RESERVE_SEQS = QUERIES["reserve_seqs"]
_NAME_TAKEN = re.compile(r"Key \(name\)=\((?P<name>.*)\) already exists", re.DOTALL)
_PENDING = Status.PENDING.value
# Records built between two sends of a COPY (about what the socket takes at once).
_COPY_SLICE = 500
# The columns a COPY insert gives (the others take their defaults).
_COPY_COLUMNS = (
    "id",
    "seq",
    "task",
    "args",
    "name",
    "priority",
    "queue",
    "status",
    "max_attempts",
    "timeout",
    "run_at",
    "created_at",
    "traceparent",
)


async def insert_one(runner: Runner, t: NewTask, fake: float | None, connection: Any) -> TaskRecord:
    """One task: a plain ``INSERT ... VALUES``, the path of every single submit."""
    resolve_run_at(t, 0.0)  # refuses delay and run_at together, before any I/O
    params = (
        fake,
        t.id,
        t.task,
        t.args,
        t.name,
        t.priority,
        t.queue,
        t.max_attempts,
        t.timeout,
        t.delay,
        t.run_at,
        t.traceparent,
    )
    try:
        if connection is None:
            row = await runner.run("fetchrow", _INSERT_ONE, params)
        else:
            row = await connection.fetchrow(_INSERT_ONE.sql, *params)
    except asyncpg.UniqueViolationError as e:
        raise insert_conflict(e) from None
    except DB_ERRORS as e:
        raise runner.error(e) from e
    return inserted(t, row)


async def insert_rows(
    runner: Runner, tasks: Sequence[NewTask], fake: float | None, connection: Any
) -> list[TaskRecord]:
    """Several tasks: one ``INSERT ... SELECT FROM unnest(...)`` of arrays."""
    params = (
        fake,
        [t.id for t in tasks],
        [t.task for t in tasks],
        [t.args for t in tasks],
        [t.name for t in tasks],
        [t.priority for t in tasks],
        [t.queue for t in tasks],
        [t.max_attempts for t in tasks],
        [t.timeout for t in tasks],
        [t.delay for t in tasks],
        [t.run_at for t in tasks],
        [t.traceparent for t in tasks],
    )
    if connection is None:
        rows = await runner.run("fetch", _INSERT, params)
    else:
        rows = await connection.fetch(_INSERT.sql, *params)
    return inserted_many(tasks, rows)


async def copy_tasks(conn: Any, tasks: Sequence[NewTask], fake: float | None) -> list[TaskRecord]:
    """COPY the tasks in, with seqs reserved beforehand (no rows to read back).

    COPY is one statement: the insert is all or nothing, and the statement-level trigger
    sends one NOTIFY. Times are those of the reserving query: in the caller's transaction
    the same ``now()``; on its own, a moment before the COPY. The records are built
    while the server writes the rows, a slice at a time between the COPY's sends.
    """
    reserved = await conn.fetchrow(_RESERVE_SEQS.sql, fake, len(tasks))
    now: float = reserved["now"]
    seqs: list[int] = sorted(reserved["seqs"])  # already ascending; sorting makes it sure
    run_ats = [resolve_run_at(t, now) for t in tasks]
    rows = [
        (
            t.id,
            seq,
            t.task,
            t.args,
            t.name,
            t.priority,
            t.queue,
            _PENDING,
            t.max_attempts,
            t.timeout,
            run_at,
            now,
            t.traceparent,
        )
        for t, seq, run_at in zip(tasks, seqs, run_ats, strict=True)
    ]
    copying = asyncio.ensure_future(
        conn.copy_records_to_table("taskward_tasks", columns=_COPY_COLUMNS, records=rows)
    )
    try:
        records: list[TaskRecord] = []
        for first in range(0, len(rows), _COPY_SLICE):
            await asyncio.sleep(0)  # the COPY sends what the socket takes
            last = first + _COPY_SLICE
            records.extend(
                pending_record(t, seq, run_at, now)
                for t, seq, run_at in zip(
                    tasks[first:last], seqs[first:last], run_ats[first:last], strict=True
                )
            )
        await copying
    except BaseException:
        copying.cancel()
        with contextlib.suppress(BaseException):
            await copying
        raise
    return records


def insert_conflict(e: asyncpg.UniqueViolationError) -> Exception:
    """The error for a refused insert, naming the name that is already taken."""
    if e.constraint_name == "taskward_tasks_active_name":
        match = _NAME_TAKEN.search(e.detail or "")
        if match:
            return duplicate_name_error(match.group("name"))
        return DuplicateNameError("a name in this insert is already Pending or Running")
    return StoreError(f"a task with one of these ids already exists: {e}")
