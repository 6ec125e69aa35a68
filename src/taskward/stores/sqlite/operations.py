"""The SQLite store's operations: each a function ``op(conn, ...)`` that the runner calls in
a transaction (writes) or outside one (reads), on the loop's connection or the thread's.

An operation runs statements of ``sql/sqlite.sql`` and maps their rows with `rows`. Where a
change depends on the row as it is (cancel, retry, rescue, pausing and firing a schedule)
the operation reads the row, asks `taskward.stores.rules`, and writes what the rule says:
the write lock, taken by ``BEGIN IMMEDIATE`` before the read, keeps anyone from changing the
row in between. The claim, finish, requeue and heartbeat are single statements instead: they
are the workers' hot path.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from taskward.errors import StoreError
from taskward.models import Status
from taskward.stores.base import NewTask, ScheduleRecord, TaskRecord, WorkerRecord
from taskward.stores.rules import (
    cancel_changes,
    decode_cursor,
    duplicate_name_error,
    duplicate_schedule_error,
    fired_changes,
    holds,
    may_fire,
    may_lead,
    paused_changes,
    pending_record,
    rescued_changes,
    resolve_run_at,
    retried_changes,
)
from taskward.stores.sqlite import rows
from taskward.stores.sqlite.schema import SQL

_CHUNK = 500  # ids per IN (...) list, well under SQLite's limit on bound parameters
_PICKS = {"one": SQL["pick_queue"], "some": SQL["pick_queues"], "all": SQL["pick_all"]}

Statement = tuple[str, tuple[Any, ...]]

# -- tasks -------------------------------------------------------------------------------------


def insert(conn: sqlite3.Connection, tasks: Sequence[NewTask], now: float) -> list[TaskRecord]:
    """Insert tasks as Pending; a taken name is `DuplicateNameError`, the rows stay unread."""
    run_ats = [resolve_run_at(t, now) for t in tasks]
    base = 2**63 - 1  # until known, every existing row is "before" this insert
    try:
        if len(tasks) == 1:
            t = tasks[0]
            params = (str(t.id), t.task, t.args, t.name, t.priority, t.queue, t.max_attempts)
            cur = conn.execute(
                SQL["insert_one"], (*params, t.timeout, run_ats[0], now, t.traceparent)
            )
            if cur.lastrowid is None:
                raise StoreError("SQLite did not report the new task's seq")
            base = cur.lastrowid - 1
        else:
            # The write lock is ours, so nobody else can take these seqs meanwhile.
            base = conn.execute(SQL["last_seq"]).fetchone()[0]
            conn.executemany(
                SQL["insert_many"],
                [
                    (
                        base + i,
                        str(t.id),
                        t.task,
                        t.args,
                        t.name,
                        t.priority,
                        t.queue,
                        t.max_attempts,
                        t.timeout,
                        run_at,
                        now,
                        t.traceparent,
                    )
                    for i, (t, run_at) in enumerate(zip(tasks, run_ats, strict=True), 1)
                ],
            )
    except sqlite3.IntegrityError as e:
        raise _insert_conflict(conn, tasks, base, e) from None
    return [
        pending_record(t, base + i, run_at, now)
        for i, (t, run_at) in enumerate(zip(tasks, run_ats, strict=True), 1)
    ]


def _insert_conflict(
    conn: sqlite3.Connection, tasks: Sequence[NewTask], below: int, e: sqlite3.IntegrityError
) -> Exception:
    """The error for a refused insert, naming the name that is already taken."""
    if "tasks.id" in str(e):
        return StoreError(f"a task with one of these ids already exists: {e}")
    # Rows of this batch before the failing one are still in the transaction: only rows
    # with seq <= ``below`` existed before it.
    names = [t.name for t in tasks if t.name is not None]
    for chunk in _chunks(names, _CHUNK):
        sql = SQL["active_names_in"].format(marks(len(chunk)))
        taken = rows.named(conn.execute(sql, (below, *chunk)))
        if taken:
            return duplicate_name_error(taken[0]["name"])
    return StoreError(f"SQLite refused the insert: {e}")


def claim_statements(
    worker_id: str, queues: Sequence[str] | None, limit: int, lease: float, now: float
) -> tuple[Statement, Statement]:
    """The claim of up to ``limit`` due tasks of ``queues`` (None: all), and a cheap look
    (for `exists`) whether there is one to claim at all."""
    if queues is None:
        pick = _PICKS["all"]
        probe: tuple[Any, ...] = (now, 1, 1)
        params: tuple[Any, ...] = (now, limit, limit)
    elif len(queues) == 1:
        pick = _PICKS["one"]
        probe, params = (queues[0], now, 1), (queues[0], now, limit)
    else:
        unique = tuple(dict.fromkeys(queues))
        pick = _PICKS["some"].format(", ".join(["(?)"] * len(unique)))
        probe, params = (*unique, now, 1, 1), (*unique, now, limit, limit)
    claim = SQL["claim"].format(pick)
    return (pick, probe), (claim, (now, worker_id, now + lease, *params))


def claim(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[TaskRecord]:
    """Run a claim of `claim_statements`: the claimed tasks, best first."""
    records = rows.tasks(conn.execute(sql, params))
    # RETURNING gives rows in no particular order: restore the claim order.
    records.sort(key=lambda r: (r.priority, r.run_at, r.seq))
    return records


def exists(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> bool:
    """Whether a query finds a row."""
    return conn.execute(sql, params).fetchone() is not None


def heartbeat(
    conn: sqlite3.Connection, leases: Sequence[tuple[UUID, str]], expires: float
) -> set[UUID]:
    """Extend the leases still held until ``expires``; the ids whose lease is lost."""
    lost: set[UUID] = set()
    for task_id, token in leases:
        if conn.execute(SQL["heartbeat"], (expires, str(task_id), token)).rowcount != 1:
            lost.add(task_id)
    return lost


def request_cancel(
    conn: sqlite3.Connection, task_id: str, now: float
) -> tuple[TaskRecord | None, bool]:
    """The task after a cancel request, and whether the request changed it."""
    old = get(conn, task_id)
    changes = None if old is None else cancel_changes(old, now)
    if old is None or changes is None:
        return old, False
    return _set_state(conn, old, changes), True


def retry(conn: sqlite3.Connection, task_id: str, now: float) -> TaskRecord | None:
    """A Failed or Cancelled task made Pending again (`taskward.stores.rules.retried_changes`)."""
    old = get(conn, task_id)
    if old is None:
        return None
    changes = retried_changes(old, now)
    try:
        return _set_state(conn, old, changes)
    except sqlite3.IntegrityError:
        assert old.name is not None  # only the active-name index can refuse this update
        raise duplicate_name_error(old.name) from None


def rescue(conn: sqlite3.Connection, now: float, leader: str | None) -> list[TaskRecord]:
    """Requeue, fail or cancel the Running tasks whose lease expired, while ``leader``
    (when given) holds the maintenance role."""
    if leader is not None and not holds(_leader(conn), leader, now):
        return []
    out = [
        _set_state(conn, old, rescued_changes(old, now))
        for old in rows.tasks(conn.execute(SQL["expired"], (now,)))
    ]
    out.sort(key=lambda r: r.seq)
    return out


def cancel_requested(conn: sqlite3.Connection, ids: Sequence[str]) -> set[UUID]:
    """Which of these Running tasks have a cancel request waiting."""
    out: set[UUID] = set()
    for chunk in _chunks(ids, _CHUNK):
        sql = SQL["cancel_requested"].format(marks(len(chunk)))
        out.update(UUID(r["id"]) for r in rows.named(conn.execute(sql, chunk)))
    return out


def get(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    """The task with this id (as text), or None."""
    return rows.task_or_none(conn.execute(SQL["get"], (task_id,)))


def one(conn: sqlite3.Connection, sql: str, params: Any) -> TaskRecord | None:
    """The first task a query finds, or None."""
    return rows.task_or_none(conn.execute(sql, params))


def many(conn: sqlite3.Connection, sql: str, params: Any) -> list[TaskRecord]:
    """Every task a query finds."""
    return rows.tasks(conn.execute(sql, params))


def counts(conn: sqlite3.Connection) -> dict[str, dict[Status, int]]:
    """How many tasks there are, by queue and status."""
    by_queue: dict[str, dict[Status, int]] = {}
    for r in rows.named(conn.execute(SQL["counts"])):
        by_queue.setdefault(r["queue"], {})[rows.status(r["status"])] = r["n"]
    return by_queue


def pending_heads(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    """(queue, earliest run_at) of each (queue, priority) pair with claimable tasks."""
    return [(r["queue"], r["run_at"]) for r in rows.named(conn.execute(SQL["pending_heads"]))]


def _set_state(conn: sqlite3.Connection, old: TaskRecord, changes: dict[str, Any]) -> TaskRecord:
    """Write what a rule decided for ``old`` (read in this transaction); the new record."""
    new = dataclasses.replace(old, **changes)
    if conn.execute(SQL["set_state"], rows.state_params(new, old.status)).rowcount != 1:
        raise StoreError(f"task seq={old.seq} changed under this transaction's write lock")
    return new


# -- leadership and workers -------------------------------------------------------------------


def _leader(conn: sqlite3.Connection) -> tuple[str, float] | None:
    found = rows.named(conn.execute(SQL["leader"]))
    return None if not found else (found[0]["holder"], found[0]["expires_at"])


def lead(conn: sqlite3.Connection, holder: str, now: float, ttl: float) -> bool:
    """Take or renew the maintenance role for ``holder`` until ``now + ttl``, if it may."""
    if not may_lead(_leader(conn), holder, now):
        return False
    conn.execute(SQL["set_leader"], (holder, now + ttl))
    return True


def workers(conn: sqlite3.Connection) -> list[WorkerRecord]:
    """The workers in the table, oldest first."""
    return [rows.worker(r) for r in rows.named(conn.execute(SQL["workers"]))]


# -- schedules --------------------------------------------------------------------------------


def put_schedule(
    conn: sqlite3.Connection, sql: str, params: tuple[str, str, float]
) -> ScheduleRecord:
    """Insert (or replace) a schedule; a taken name is `DuplicateNameError`."""
    try:
        [row] = rows.named(conn.execute(sql, params))
    except sqlite3.IntegrityError:
        raise duplicate_schedule_error(params[0]) from None
    return rows.schedule(row)


def get_schedule(conn: sqlite3.Connection, name: str) -> ScheduleRecord | None:
    """The schedule of this name, or None."""
    found = rows.named(conn.execute(SQL["schedule_get"], (name,)))
    return rows.schedule(found[0]) if found else None


def list_schedules(conn: sqlite3.Connection) -> list[ScheduleRecord]:
    """Every schedule, by name."""
    return [rows.schedule(r) for r in rows.named(conn.execute(SQL["schedule_list"]))]


def pause_schedule(
    conn: sqlite3.Connection, name: str, paused: bool, now: float
) -> ScheduleRecord | None:
    """The schedule after pausing or resuming it (`taskward.stores.rules.paused_changes`)."""
    old = get_schedule(conn, name)
    changes = None if old is None else paused_changes(old, paused, now)
    if old is None or changes is None:
        return old
    return _set_schedule(conn, old, changes)


def fire_schedule(
    conn: sqlite3.Connection,
    name: str,
    expected: float | None,
    new: tuple[float | None, float | None],
    tasks: Sequence[NewTask],
    now: float,
    leader: str | None = None,
) -> bool:
    """Move a schedule's last tick from ``expected`` and insert the tick's tasks, or do
    nothing and answer False when someone else fired it first (or ``leader``, when given,
    does not hold the maintenance role)."""
    if leader is not None and not holds(_leader(conn), leader, now):
        return False
    old = get_schedule(conn, name)
    if old is None or not may_fire(old, expected):
        return False
    new_last_tick, fired = new
    _set_schedule(conn, old, fired_changes(old, new_last_tick, fired, now))
    if tasks:
        insert(conn, tasks, now)  # raises DuplicateNameError: the whole call rolls back
    return True


def _set_schedule(
    conn: sqlite3.Connection, old: ScheduleRecord, changes: dict[str, Any]
) -> ScheduleRecord:
    new = dataclasses.replace(old, **changes)
    params = {
        "name": new.name,
        "last_tick": new.last_tick,
        "last_fired": new.last_fired,
        "paused": int(new.paused),
        "updated_at": new.updated_at,
    }
    conn.execute(SQL["schedule_set"], params)
    return new


# -- small helpers ----------------------------------------------------------------------------


def list_statement(
    status: Sequence[Status] | None,
    filters: Iterable[tuple[str, str | None]],
    limit: int,
    cursor: str | None,
) -> Statement:
    """The query of one page of tasks newest first, ``limit + 1`` rows (one tells whether
    there is more); ``filters`` are (column, value) pairs, a None value not filtering."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        statuses = [Status(s).value for s in status]
        where.append(f"status IN ({marks(len(statuses))})" if statuses else "0")
        params.extend(statuses)
    for column, value in filters:
        if value is not None:
            where.append(f"{column} = ?")  # column names are ours, values are bound
            params.append(value)
    if cursor is not None:
        where.append("seq < ?")
        params.append(decode_cursor(cursor))
    params.append(limit + 1)
    return SQL["list"].format(where=" AND ".join(where) or "1"), tuple(params)


def changed_one(conn: sqlite3.Connection, sql: str, params: Any) -> bool:
    """Whether a statement changed exactly one row."""
    return conn.execute(sql, params).rowcount == 1


def changed_each(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[bool]:
    """For each parameter set, whether the statement changed exactly one row."""
    return [conn.execute(sql, p).rowcount == 1 for p in params]


def rowcount(conn: sqlite3.Connection, sql: str, params: Any) -> int:
    """How many rows a statement changed."""
    return conn.execute(sql, params).rowcount


def scalar(conn: sqlite3.Connection, sql: str, params: Any = ()) -> Any:
    """The one value a query answers (a count, a pragma)."""
    return conn.execute(sql, params).fetchone()[0]


def marks(n: int) -> str:
    """``n`` parameter marks: ``?, ?, ...``."""
    return ", ".join("?" * n)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
