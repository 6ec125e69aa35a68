"""`PostgresStore`: the `Store` operations on PostgreSQL, each one statement or one transaction.

The operations are thin: they bind values, run a named statement through the `Runner` and
map the rows (`rows`). The state rules they follow (a retry's refusal, a rescue's outcome,
finish statuses, due times) come from `taskward.stores.rules`; compare-and-set conditions
on status and lease live in the statements of ``sql/postgres/queries.sql``.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg

from taskward.errors import ConfigurationError
from taskward.models import Status
from taskward.stores.base import (
    ChangeSignal,
    Counts,
    NewTask,
    Outcome,
    Page,
    TaskRecord,
    WorkerRecord,
)
from taskward.stores.postgres import inserts, migrations, rows
from taskward.stores.postgres.listener import Listener
from taskward.stores.postgres.runner import DB_ERRORS, Runner, affected, close_conn
from taskward.stores.postgres.schedules import ScheduleOps
from taskward.stores.postgres.statements import QUERIES, list_statement
from taskward.stores.rules import (
    RETRYABLE,
    check_batch_names,
    check_finish_status,
    check_limit,
    duplicate_name_error,
    encode_cursor,
    rescued_changes,
    resolve_run_at,
    retry_refused_error,
    waiting_since,
)

__all__ = ["PostgresStore"]

_Q = QUERIES
_RETRYABLE = sorted(s.value for s in RETRYABLE)
_PRUNED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)  # the order of prune's ages


class PostgresStore(ScheduleOps):
    """A `Store` in a PostgreSQL database, shared by any number of processes and hosts."""

    url: str
    #: `insert` takes ``connection=``: see `TransactionalStore`.
    transactional: Literal[True] = True
    #: Inserts of this many tasks or more go by COPY. Measured per task, array insert against
    #: COPY: 24 against 33 us at 100 tasks, 24 against 16 us at 300, 17 against 14 at 1,000.
    copy_from: int = 250

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] | None = None,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float | None = 60.0,
    ) -> None:
        """``clock`` is for tests only: None (the default) uses the database's ``now()``."""
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ConfigurationError(
                f"pool sizes need 0 <= min_size <= max_size and max_size >= 1,"
                f" not {min_size} and {max_size}"
            )
        self.url = url
        self._clock = clock
        self._runner = Runner(
            url, min_size=min_size, max_size=max_size, command_timeout=command_timeout
        )
        self._change = ChangeSignal()
        self._listener = Listener(self._runner, self._change)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a pool) and check the schema version. Idempotent.

        Raises `ConfigurationError` when the schema is missing or older than this code
        (run ``taskward migrate``) or newer (upgrade taskward), `StoreError` when the
        database cannot be reached.
        """
        await self._runner.open(self._check_schema)

    async def _check_schema(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        where = self._runner.where
        migrations.check_version(await migrations.read_version(pool, where), where)

    async def migrate(self) -> int:
        """Create or upgrade the schema to `SCHEMA_VERSION`; return the version found before.

        Migrations run in one transaction under an advisory lock, so concurrent callers
        apply each one once. Needs no `open` first.
        """
        conn = await self._runner.connect()
        try:
            return await migrations.migrate(conn, self._runner.where)
        finally:
            await close_conn(conn)

    async def close(self) -> None:
        """Stop listening, close the pool, wake waiters."""
        self._change.notify()
        await self._runner.close()
        await self._listener.stop()

    async def now(self) -> float:
        """The database clock (``now()``), or the test clock given to the constructor."""
        if self._clock is not None:
            return self._clock()
        value: float = await self._runner.fetchval(_Q["now"], None)
        return value

    # -- writes ------------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[NewTask], *, connection: Any = None) -> list[TaskRecord]:
        """Insert all tasks as Pending in one statement, or none of them.

        With ``connection`` (an asyncpg connection, typically inside the caller's own
        transaction) the insert runs there: the tasks, and the wake-up of workers, exist
        only if that transaction commits. A `DuplicateNameError` then aborts the caller's
        transaction, as any constraint violation does. (`inserts` has the three ways in.)
        """
        if not tasks:
            return []
        if len(tasks) == 1:
            records = [await inserts.insert_one(self._runner, tasks[0], self._fake(), connection)]
        else:
            check_batch_names(tasks)
            for t in tasks:
                resolve_run_at(t, 0.0)  # refuses delay and run_at together, before any I/O
            try:
                if len(tasks) < self.copy_from:
                    records = await inserts.insert_rows(
                        self._runner, tasks, self._fake(), connection
                    )
                elif connection is not None:
                    records = await self._copy(connection, tasks)
                else:
                    async with self._runner.need_pool().acquire() as conn:
                        records = await self._copy(conn, tasks)
            except asyncpg.UniqueViolationError as e:
                raise inserts.insert_conflict(e) from None
            except (UnicodeEncodeError, *DB_ERRORS) as e:  # COPY encodes text itself
                raise self._runner.error(e) from e
        if connection is None:
            self._change.notify()  # this process's waiters need not wait for the NOTIFY
        return records

    async def _copy(self, conn: Any, tasks: Sequence[NewTask]) -> list[TaskRecord]:
        return await inserts.copy_tasks(conn, tasks, self._fake())

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due Pending tasks, best first."""
        if limit < 1 or (queues is not None and not queues):
            return []
        head = (self._fake(), worker_id, float(lease), limit)
        if queues is None:
            found = await self._runner.fetch(_Q["claim_all"], *head)
        elif len(set(queues)) == 1:
            found = await self._runner.fetch(_Q["claim_queue"], *head, queues[0])
        else:
            unique = list(dict.fromkeys(queues))
            found = await self._runner.fetch(_Q["claim_queues"], *head, unique)
        records = [rows.task_record(r) for r in found]
        # RETURNING gives rows in no particular order: restore the claim order.
        records.sort(key=lambda r: (r.priority, r.run_at, r.seq))
        return records

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        """Extend the leases still held; return the ids whose lease is lost."""
        if not leases:
            return set()
        found = await self._runner.fetch(
            _Q["heartbeat"],
            self._fake(),
            float(lease),
            [task_id for task_id, _ in leases],
            [token for _, token in leases],
        )
        held = {r["id"] for r in found}
        return {task_id for task_id, _ in leases if task_id not in held}

    async def finish(
        self,
        task_id: UUID,
        token: str,
        status: Status,
        *,
        result: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        """Running -> finished ``status`` while ``token`` holds the lease."""
        check_finish_status(status)
        done = await self._runner.execute(
            _Q["finish"], self._fake(), status.value, result, error, traceback, task_id, token
        )
        return affected(done) == 1

    async def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for each outcome, in one statement."""
        for o in outcomes:
            check_finish_status(o.status)
        if not outcomes:
            return []
        found = await self._runner.fetch(
            _Q["finish_many"],
            self._fake(),
            [o.task_id for o in outcomes],
            [o.token for o in outcomes],
            [o.status.value for o in outcomes],
            [o.result for o in outcomes],
            [o.error for o in outcomes],
            [o.traceback for o in outcomes],
        )
        done = {r["id"] for r in found}
        return [o.task_id in done for o in outcomes]

    async def requeue(
        self,
        task_id: UUID,
        token: str,
        *,
        delay: float = 0.0,
        error: str | None = None,
        traceback: str | None = None,
        refund_attempt: bool = False,
    ) -> bool:
        """Running -> Pending after ``delay``; keeps the previous error when none is given."""
        done = await self._runner.execute(
            _Q["requeue"],
            self._fake(),
            float(delay),
            refund_attempt,
            error,
            traceback,
            task_id,
            token,
        )
        return affected(done) == 1

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        """Record a running task's progress while ``token`` holds the lease."""
        done = await self._runner.execute(_Q["set_progress"], progress, task_id, token)
        return affected(done) == 1

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        """Cancel a Pending task now, or flag a Running one."""
        found = await self._runner.fetch(_Q["request_cancel"], self._fake(), task_id)
        if not found:
            return await self.get(task_id)
        self._change.notify()
        return rows.task_record(found[0])

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these Running tasks have a cancel request waiting."""
        if not task_ids:
            return set()
        found = await self._runner.fetch(_Q["cancel_requested"], list(task_ids))
        return {r["id"] for r in found}

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        """Failed/Cancelled -> Pending, due now, attempts 0, outcome cleared."""
        try:
            found = await self._runner.fetch(_Q["retry"], self._fake(), task_id, _RETRYABLE)
        except asyncpg.UniqueViolationError:
            old = await self.get(task_id)
            raise duplicate_name_error(old.name if old and old.name else "?") from None
        if found:
            self._change.notify()
            return rows.task_record(found[0])
        old = await self.get(task_id)
        if old is None:
            return None
        raise retry_refused_error(old.status)

    async def rescue(self, leader: str | None = None) -> builtins.list[TaskRecord]:
        """Requeue, fail or cancel the Running tasks whose lease expired (only while
        ``leader``, when given, holds the maintenance role)."""
        out: list[TaskRecord] = []
        try:
            async with self._runner.need_pool().acquire() as conn, conn.transaction():
                if leader is not None and not await conn.fetchval(
                    _Q["leading"].sql, self._fake(), leader
                ):
                    return []
                for row in await conn.fetch(_Q["expired"].sql, self._fake()):
                    old = rows.task_record(row)
                    out.append(dataclasses.replace(old, **rescued_changes(old, row["now"])))
                if not out:
                    return []
                await conn.execute(
                    _Q["rescue"].sql,
                    [r.id for r in out],
                    [r.status.value for r in out],
                    [r.finished_at for r in out],
                    [r.error for r in out],
                )
        except DB_ERRORS as e:
            raise self._runner.error(e) from e
        return out

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        """Delete up to ``limit`` finished tasks older than their status's age, oldest first."""
        if limit < 1:
            return 0
        ages = [float(older_than[s]) if s in older_than else None for s in _PRUNED]
        return affected(await self._runner.execute(_Q["prune"], self._fake(), *ages, limit))

    # -- reads -------------------------------------------------------------------------------

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task with this id, or None."""
        found = await self._runner.fetch(_Q["get"], task_id)
        return rows.task_record(found[0]) if found else None

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The active task with this name, else the most recent one."""
        found = await self._runner.fetch(_Q["get_by_name"], name)
        return rows.task_record(found[0]) if found else None

    async def counts(self) -> Counts:
        """How many tasks there are by queue and status."""
        return rows.counts(await self._runner.fetch(_Q["counts"]))

    async def oldest_pending(self) -> dict[str, float]:
        """How long each queue's longest-waiting due task has waited (`Store.oldest_pending`)."""
        found = await self._runner.fetch(_Q["pending_heads"], self._fake())
        if not found:
            return {}
        return waiting_since(((r["queue"], r["run_at"]) for r in found), found[0]["now"])

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` more seconds."""
        await self._runner.execute(_Q["worker_beat"], self._fake(), worker_id, info, float(ttl))

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        await self._runner.execute(_Q["worker_gone"], worker_id)

    async def workers(self) -> builtins.list[WorkerRecord]:
        """The workers alive now, oldest first."""
        return [
            rows.worker_record(r) for r in await self._runner.fetch(_Q["workers"], self._fake())
        ]

    async def wait_for_change(self, timeout: float) -> None:
        """Return when tasks changed here or (by NOTIFY) elsewhere, or at ``timeout``."""
        if self._runner.pool is None:
            return
        self._listener.ensure()
        await self._change.wait(timeout)

    # -- maintenance leader ------------------------------------------------------------------

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the maintenance role for ``holder`` until the database's now + ``ttl``.

        True when ``holder`` leads; False while another holder's role has not expired.
        """
        row = await self._runner.fetchval(_Q["lead"], self._fake(), holder, float(ttl))
        return row is not None

    async def resign(self, holder: str) -> None:
        """Give the maintenance role up, if ``holder`` has it, so another takes it at once."""
        await self._runner.execute(_Q["resign"], holder)

    def _fake(self) -> float | None:
        return None if self._clock is None else self._clock()

    # `list` comes last: inside the class body its name would shadow the builtin.

    async def list(
        self,
        *,
        status: Sequence[Status] | None = None,
        task: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Tasks matching every filter, newest first."""
        check_limit(limit)
        statement, params = list_statement(status, task, queue, name, cursor, limit + 1)
        found = [rows.task_record(r) for r in await self._runner.fetch(statement, *params)]
        if len(found) > limit:
            return Page(items=found[:limit], cursor=encode_cursor(found[limit - 1].seq))
        return Page(items=found, cursor=None)
