"""The PostgreSQL store: many worker processes on many hosts sharing one database.

- **Claims** are one statement: ``UPDATE ... FROM (SELECT ... ORDER BY priority, run_at, seq
  LIMIT n FOR UPDATE SKIP LOCKED)``. Concurrent claimers pass over each other's rows instead
  of waiting for them, and partial indexes on Pending tasks keep a claim's cost flat however
  long the history grows.
- **Clock.** Every lease and due time is computed by the database (``now()``), never by a
  host, so workers with skewed clocks agree. ``clock=`` replaces it for the contract tests
  only (a fake clock passed as a parameter to every statement).
- **Schema.** Plain numbered migrations in ``sql/postgres/`` (``0001_init.sql``, ...),
  recorded in ``taskward_schema_version``. `PostgresStore.migrate` (``taskward migrate``)
  applies them; `open` only checks: a database behind this code is refused with the advice
  to migrate, one ahead of it is a `ConfigurationError` (upgrade taskward).
- **Wake-ups.** Triggers NOTIFY the channel ``taskward`` when tasks are inserted, become
  Pending again, or are asked to cancel. `wait_for_change` LISTENs on a dedicated connection
  (reconnected in the background) behind a `ChangeSignal`; when notifications are lost (a
  transaction-mode pooler, a dropped connection) it still returns at its timeout, so callers
  that poll on that timeout (the worker does) keep working, only slower.
- **Maintenance leader.** `lead` takes or renews a lease row (``taskward_leaders``) on the
  database clock. A leader that stops renewing (it died, was stopped, or is cut off while
  its TCP session stays open) loses the role after one lease, and `rescue` with ``leader=``
  checks the row in its own transaction, so a stale leader rescues nothing.
- **Transactional submit.** `insert` with ``connection=`` (the caller's asyncpg connection)
  inserts inside the caller's transaction: the tasks, and the NOTIFY, exist only if it commits.
- **Outages.** Connection failures become `StoreError` (the worker backs off and retries);
  asyncpg's pool replaces dead connections by itself. A value the database refuses as data
  (SQLSTATE class 22: a NUL character in text, a lone surrogate that has no UTF-8 form) is
  no outage: it is the caller's `InvalidArgumentsError`, which a retry would not mend.

The statements live in ``sql/postgres/queries.sql``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from taskward.errors import (
    ConfigurationError,
    DuplicateNameError,
    InvalidArgumentsError,
    InvalidTransitionError,
    StoreError,
    TaskwardError,
)
from taskward.models import Status
from taskward.stores.base import (
    ChangeSignal,
    Counts,
    NewTask,
    Outcome,
    Page,
    ScheduleRecord,
    TaskRecord,
    WorkerRecord,
)
from taskward.stores.rules import (
    check_batch_names,
    check_finish_status,
    check_limit,
    decode_cursor,
    duplicate_name_error,
    duplicate_schedule_error,
    encode_cursor,
    new_record,
    pending_record,
    rescued_changes,
    resolve_run_at,
)

__all__ = ["CHANNEL", "SCHEMA_VERSION", "PostgresStore"]

logger = logging.getLogger("taskward.stores.postgres")

#: The NOTIFY channel of task changes.
CHANNEL = "taskward"
# The advisory lock key (64-bit, fixed) that serializes migrations.
_MIGRATE_KEY = 0x7461736B77617201  # "taskwar" + 1

_SQL_DIR = resources.files("taskward.stores").joinpath("sql", "postgres")


def _load_statements(filename: str) -> dict[str, str]:
    """The statements of one ``.sql`` file beside this module, by their ``-- name:``."""
    text = _SQL_DIR.joinpath(filename).read_text("utf-8")
    out: dict[str, str] = {}
    for chunk in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = chunk.partition("\n")
        out[name.strip()] = body.strip().removesuffix(";")
    return out


def _load_migrations() -> dict[int, str]:
    """The numbered migration scripts (``0001_init.sql`` ...) by version."""
    out: dict[int, str] = {}
    for entry in _SQL_DIR.iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            out[int(match.group(1))] = entry.read_text("utf-8")
    return dict(sorted(out.items()))


_SQL = _load_statements("queries.sql")
_SCHEDULE_SQL = _load_statements("schedules.sql")
_MIGRATIONS = _load_migrations()
#: The schema this code reads and writes: the newest migration.
SCHEMA_VERSION = max(_MIGRATIONS)

# What a lost or refused connection raises: the worker backs off and tries again. (A server
# that ends an idle session sends its error unasked; the next query on that connection then
# fails with InternalClientError before the pool notices the connection is gone.)
_DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
# A connection that was lost (or found dead) under a statement.
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    ConnectionError,
)
_NAME_TAKEN = re.compile(r"Key \(name\)=\((?P<name>.*)\) already exists", re.DOTALL)
_LIST_FILTERS = ("task", "queue", "name")  # columns `list` filters on by equality
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
)


class PostgresStore:
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
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._where = _describe(url)
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        # A connection of the store's own for single statements while no other statement
        # uses it (see `_pooled`), watched by `_watch_held` instead of a timer per statement.
        self._held: asyncpg.Connection[asyncpg.Record] | None = None
        self._held_busy = False
        self._held_since = 0.0  # time.monotonic() when its running statement was sent
        self._held_overdue: asyncpg.Connection[asyncpg.Record] | None = None
        self._held_stmts: dict[str, asyncpg.prepared_stmt.PreparedStatement[asyncpg.Record]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._open_lock: asyncio.Lock | None = None
        self._change = ChangeSignal()
        self._listener: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a pool) and check the schema version. Idempotent.

        Raises `ConfigurationError` when the schema is missing or older than this code
        (run ``taskward migrate``) or newer (upgrade taskward), `StoreError` when the
        database cannot be reached.
        """
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self.url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    command_timeout=self._command_timeout,
                    server_settings=self._server_settings(),
                    reset=_keep_session,
                )
            except (*_DB_ERRORS, TimeoutError) as e:
                raise StoreError(f"cannot connect to {self._where}: {e}") from e
            try:
                try:
                    async with pool.acquire() as conn:
                        version = await _schema_version(conn)
                except (*_DB_ERRORS, TimeoutError) as e:
                    # E.g. the session was ended under the version check: an outage like any
                    # other, which the caller may try again.
                    raise StoreError(f"cannot read the schema version of {self._where}: {e}") from e
                self._check_version(version)
            except BaseException:
                await _close_pool(pool)
                raise
            self._pool = pool
            if self._command_timeout is not None:
                self._watchdog = asyncio.get_running_loop().create_task(self._watch_held())

    async def migrate(self) -> int:
        """Create or upgrade the schema to `SCHEMA_VERSION`; return the version found before.

        Migrations run in one transaction under an advisory lock, so concurrent callers
        apply each one once. Needs no `open` first.
        """
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.execute(_SQL["xact_lock"], _MIGRATE_KEY)
                await conn.execute(_SQL["bootstrap"])
                before: int = await conn.fetchval(_SQL["schema_version"])
                if before > SCHEMA_VERSION:
                    self._check_version(before)
                for version, script in _MIGRATIONS.items():
                    if version > before:
                        logger.info("%s: applying migration %04d", self._where, version)
                        await conn.execute(script)
                        await conn.execute(_SQL["record_version"], version)
        except _DB_ERRORS as e:
            raise StoreError(f"migrating {self._where} failed: {e}") from e
        finally:
            await _close_conn(conn)
        return before

    async def close(self) -> None:
        """Stop listening, close the pool, wake waiters."""
        pool, self._pool = self._pool, None
        held, self._held = self._held, None
        listener, self._listener = self._listener, None
        watchdog, self._watchdog = self._watchdog, None
        self._change.notify()
        for task in (listener, watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if held is not None:
            await _close_conn(held)
        if self._releasing:
            await asyncio.wait(self._releasing, timeout=5.0)
        if pool is not None:
            await _close_pool(pool)

    async def now(self) -> float:
        """The database clock (``now()``), or the test clock given to the constructor."""
        if self._clock is not None:
            return self._clock()
        value: float = await self._fetchval(_SQL["now"], None)
        return value

    # -- writes ------------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[NewTask], *, connection: Any = None) -> list[TaskRecord]:
        """Insert all tasks as Pending in one statement, or none of them.

        With ``connection`` (an asyncpg connection, typically inside the caller's own
        transaction) the insert runs there: the tasks, and the wake-up of workers, exist
        only if that transaction commits. A `DuplicateNameError` then aborts the caller's
        transaction, as any constraint violation does.

        One task is a plain ``INSERT ... VALUES``; a few are one ``INSERT ... SELECT`` from
        arrays; `copy_from` tasks or more are one ``COPY`` (binary), after reserving their
        seqs and reading the store's time in one query.
        """
        if not tasks:
            return []
        if len(tasks) == 1:
            return [await self._insert_one(tasks[0], connection)]
        check_batch_names(tasks)
        for t in tasks:
            resolve_run_at(t, 0.0)  # refuses delay and run_at together, before any I/O
        try:
            if len(tasks) >= self.copy_from:
                if connection is not None:
                    records = await self._copy(connection, tasks)
                else:
                    async with self._need_pool().acquire() as conn:
                        records = await self._copy(conn, tasks)
            else:
                records = await self._insert_rows(tasks, connection)
        except asyncpg.UniqueViolationError as e:
            raise _insert_conflict(e) from None
        except (UnicodeEncodeError, *_DB_ERRORS) as e:  # COPY encodes text itself
            raise self._error(e) from e
        if connection is None:
            self._change.notify()  # this process's waiters need not wait for the NOTIFY
        return records

    async def _insert_one(self, t: NewTask, connection: Any) -> TaskRecord:
        """One task: a plain ``INSERT ... VALUES``, the path of every single submit."""
        if t.delay is not None and t.run_at is not None:
            resolve_run_at(t, 0.0)  # raises, before any I/O
        sql = _SQL["insert_one"]
        params = (
            self._fake(),
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
        )
        try:
            if connection is None:
                row = await self._pooled("fetchrow", sql, params)
            else:
                row = await connection.fetchrow(sql, *params)
        except asyncpg.UniqueViolationError as e:
            raise _insert_conflict(e) from None
        except _DB_ERRORS as e:
            raise self._error(e) from e
        if connection is None:
            self._change.notify()  # this process's waiters need not wait for the NOTIFY
        seq, run_at, created_at = row
        return pending_record(t, seq, run_at, created_at)

    async def _insert_rows(self, tasks: Sequence[NewTask], connection: Any) -> list[TaskRecord]:
        """Several tasks: one ``INSERT ... SELECT FROM unnest(...)`` of arrays."""
        sql = _SQL["insert"]
        params = (
            self._fake(),
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
        )
        if connection is None:
            rows = await self._pooled("fetch", sql, params)
        else:
            rows = await connection.fetch(sql, *params)
        by_id = {r["id"]: r for r in rows}
        return [
            pending_record(t, by_id[t.id]["seq"], by_id[t.id]["run_at"], by_id[t.id]["created_at"])
            for t in tasks
        ]

    async def _copy(self, conn: Any, tasks: Sequence[NewTask]) -> list[TaskRecord]:
        """COPY the tasks in, with seqs reserved beforehand (no rows to read back).

        COPY is one statement: the insert is all or nothing, and the statement-level trigger
        sends one NOTIFY. Times are those of the reserving query: in the caller's transaction
        the same ``now()``; on its own, a moment before the COPY. The records are built
        while the server writes the rows, a slice at a time between the COPY's sends.
        """
        now, seqs = await conn.fetchrow(_SQL["reserve_seqs"], self._fake(), len(tasks))
        seqs.sort()  # already ascending; sorting makes it a guarantee
        rows = [
            (
                t.id,
                seq,
                t.task,
                t.args,
                t.name,
                t.priority,
                t.queue,
                "Pending",
                t.max_attempts,
                t.timeout,
                t.run_at if t.run_at is not None else now + (t.delay or 0),
                now,
            )
            for t, seq in zip(tasks, seqs, strict=True)
        ]
        copying = asyncio.ensure_future(
            conn.copy_records_to_table("taskward_tasks", columns=_COPY_COLUMNS, records=rows)
        )
        try:
            records: list[TaskRecord] = []
            for first in range(0, len(rows), _COPY_SLICE):
                await asyncio.sleep(0)  # the COPY sends what the socket takes
                records.extend(
                    pending_record(t, row[1], row[10], now)
                    for t, row in zip(
                        tasks[first : first + _COPY_SLICE],
                        rows[first : first + _COPY_SLICE],
                        strict=True,
                    )
                )
            await copying
        except BaseException:
            copying.cancel()
            with contextlib.suppress(BaseException):
                await copying
            raise
        return records

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due Pending tasks, best first."""
        if limit < 1 or (queues is not None and not queues):
            return []
        head = (self._fake(), worker_id, float(lease), limit)
        if queues is None:
            rows = await self._fetch(_SQL["claim_all"], *head)
        elif len(set(queues)) == 1:
            rows = await self._fetch(_SQL["claim_queue"], *head, queues[0])
        else:
            rows = await self._fetch(_SQL["claim_queues"], *head, list(dict.fromkeys(queues)))
        records = [_record(r) for r in rows]
        # RETURNING gives rows in no particular order: restore the claim order.
        records.sort(key=lambda r: (r.priority, r.run_at, r.seq))
        return records

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        """Extend the leases still held; return the ids whose lease is lost."""
        if not leases:
            return set()
        rows = await self._fetch(
            _SQL["heartbeat"],
            self._fake(),
            float(lease),
            [task_id for task_id, _ in leases],
            [token for _, token in leases],
        )
        held = {r["id"] for r in rows}
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
        return await self._changed(
            _SQL["finish"], self._fake(), status.value, result, error, traceback, task_id, token
        )

    async def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for each outcome, in one statement."""
        for o in outcomes:
            check_finish_status(o.status)
        if not outcomes:
            return []
        rows = await self._fetch(
            _SQL["finish_many"],
            self._fake(),
            [o.task_id for o in outcomes],
            [o.token for o in outcomes],
            [o.status.value for o in outcomes],
            [o.result for o in outcomes],
            [o.error for o in outcomes],
            [o.traceback for o in outcomes],
        )
        done = {r["id"] for r in rows}
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
        return await self._changed(
            _SQL["requeue"],
            self._fake(),
            float(delay),
            refund_attempt,
            error,
            traceback,
            task_id,
            token,
        )

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        """Record a running task's progress while ``token`` holds the lease."""
        return await self._changed(_SQL["set_progress"], progress, task_id, token)

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        """Cancel a Pending task now, or flag a Running one."""
        rows = await self._fetch(_SQL["request_cancel"], self._fake(), task_id)
        if not rows:
            return await self.get(task_id)
        self._change.notify()
        return _record(rows[0])

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these Running tasks have a cancel request waiting."""
        if not task_ids:
            return set()
        rows = await self._fetch(_SQL["cancel_requested"], list(task_ids))
        return {r["id"] for r in rows}

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        """Failed/Cancelled -> Pending, due now, attempts 0, outcome cleared."""
        try:
            rows = await self._fetch(_SQL["retry"], self._fake(), task_id)
        except asyncpg.UniqueViolationError:
            old = await self.get(task_id)
            raise duplicate_name_error(old.name if old and old.name else "?") from None
        if rows:
            self._change.notify()
            return _record(rows[0])
        old = await self.get(task_id)
        if old is None:
            return None
        raise InvalidTransitionError(
            f"only a Failed or Cancelled task can be retried, not {old.status}"
        )

    async def rescue(self, leader: str | None = None) -> builtins.list[TaskRecord]:
        """Requeue, fail or cancel the Running tasks whose lease expired (only while
        ``leader``, when given, holds the maintenance role)."""
        pool = self._need_pool()
        out: list[TaskRecord] = []
        try:
            async with pool.acquire() as conn, conn.transaction():
                if leader is not None and not await conn.fetchval(
                    _SQL["leading"], self._fake(), leader
                ):
                    return []
                expired = await conn.fetch(_SQL["expired"], self._fake())
                if not expired:
                    return []
                for row in expired:
                    old = _record(row)
                    out.append(dataclasses.replace(old, **rescued_changes(old, row["now"])))
                await conn.execute(
                    _SQL["rescue"],
                    [r.id for r in out],
                    [r.status.value for r in out],
                    [r.finished_at for r in out],
                    [r.error for r in out],
                )
        except _DB_ERRORS as e:
            raise self._error(e) from e
        return out

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        """Delete up to ``limit`` finished tasks older than their status's age, oldest first."""
        if limit < 1:
            return 0
        ages = [
            float(older_than[s]) if s in older_than else None
            for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
        ]
        status = await self._execute(_SQL["prune"], self._fake(), *ages, limit)
        return _affected(status)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task with this id, or None."""
        rows = await self._fetch(_SQL["get"], task_id)
        return _record(rows[0]) if rows else None

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The active task with this name, else the most recent one."""
        rows = await self._fetch(_SQL["get_by_name"], name)
        return _record(rows[0]) if rows else None

    async def counts(self) -> Counts:
        """How many tasks there are by queue and status."""
        by_queue: dict[str, dict[Status, int]] = {}
        for row in await self._fetch(_SQL["counts"]):
            by_queue.setdefault(row["queue"], {})[_status(row["status"])] = row["n"]
        return Counts(by_queue=by_queue)

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` more seconds."""
        await self._execute(_SQL["worker_beat"], self._fake(), worker_id, info, float(ttl))

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        await self._execute(_SQL["worker_gone"], worker_id)

    async def workers(self) -> builtins.list[WorkerRecord]:
        """The workers alive now, oldest first."""
        rows = await self._fetch(_SQL["workers"], self._fake())
        return [
            WorkerRecord(
                id=r["id"],
                info=r["info"],
                started_at=r["started_at"],
                last_seen=r["last_seen"],
                expires_at=r["expires_at"],
            )
            for r in rows
        ]

    async def wait_for_change(self, timeout: float) -> None:
        """Return when tasks changed here or (by NOTIFY) elsewhere, or at ``timeout``."""
        if self._pool is None:
            return
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="taskward-pg-listen"
            )
        await self._change.wait(timeout)

    # -- maintenance leader ------------------------------------------------------------------

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the maintenance role for ``holder`` until the database's now + ``ttl``.

        True when ``holder`` leads; False while another holder's role has not expired.
        """
        row = await self._fetchval(_SQL["lead"], self._fake(), holder, float(ttl))
        return row is not None

    async def resign(self, holder: str) -> None:
        """Give the maintenance role up, if ``holder`` has it, so another takes it at once."""
        await self._execute(_SQL["resign"], holder)

    # -- internals ---------------------------------------------------------------------------

    def _fake(self) -> float | None:
        return None if self._clock is None else self._clock()

    def _server_settings(self) -> dict[str, str]:
        settings = {"jit": "off"}  # compiling plans costs more than these small queries save
        if "application_name" not in self.url:
            settings["application_name"] = "taskward"
        return settings

    def _need_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        pool = self._pool
        if pool is None:
            raise StoreError(f"the PostgreSQL store for {self._where} is not open")
        return pool

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{self._where} has taskward schema version {version}, newer than"
                f" {SCHEMA_VERSION} which this taskward knows: upgrade taskward"
            )
        if version < SCHEMA_VERSION:
            found = "no taskward schema" if version == 0 else f"taskward schema version {version}"
            raise ConfigurationError(
                f"{self._where} has {found}, and this taskward needs version {SCHEMA_VERSION}:"
                " run `taskward migrate` (with --db or TASKWARD_DB naming this database)"
            )

    async def _connect(self, *, timed: bool = True) -> asyncpg.Connection[asyncpg.Record]:
        """A connection of its own (not from the pool), for sessions that outlive a query.

        ``timed``: each statement gets asyncpg's ``command_timeout`` timer; the held
        connection goes without (its statements are watched by `_watch_held`).
        """
        try:
            conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
                self.url,
                command_timeout=self._command_timeout if timed else None,
                server_settings=self._server_settings(),
            )
        except _DB_ERRORS as e:
            raise StoreError(f"cannot connect to {self._where}: {e}") from e
        return conn

    async def _listen(self) -> None:
        """Keep a LISTEN connection up while the store is open; reconnect with backoff."""
        delay = 0.1
        reconnect = False
        while self._pool is not None:
            try:
                conn = await self._connect()
            except StoreError as e:
                logger.warning("%s: cannot listen for changes (%s)", self._where, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                if reconnect:
                    # Changes made while nobody listened are not lost: waiters look again.
                    self._change.notify()
                reconnect = True
                delay = 0.1
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 10.0)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1")  # notices a silently dead peer
            except _DB_ERRORS as e:
                logger.warning("%s: the LISTEN connection failed (%s)", self._where, e)
                await asyncio.sleep(delay)  # a connection that fails at once must not spin
                delay = min(delay * 2, 5.0)
            finally:
                await _close_conn(conn)

    def _on_notify(self, *_: object) -> None:
        self._change.notify()

    def _error(self, e: BaseException) -> TaskwardError:
        """A driver error as taskward's: refused data is the caller's, the rest an outage."""
        refused = _refused_data(e)
        if refused is not None:
            return refused
        return StoreError(f"PostgreSQL error on {self._where}: {type(e).__name__}: {e}")

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pooled("fetch", sql, args)
        return rows

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._pooled("fetchval", sql, args)

    async def _execute(self, sql: str, *args: Any) -> str:
        status: str = await self._pooled("execute", sql, args)
        return status

    async def _pooled(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        """Run one statement (its own transaction); connection failures are `StoreError`.

        The statement runs on the store's held connection when no other statement is using
        it, else on one from the pool. On the held connection the store's own statements
        (those of the ``.sql`` files) that return rows run as prepared statements, each
        prepared once per connection. (Against about 100 us of client CPU for a whole
        one-row insert, asyncpg's pool costs about 35 us per acquire and release, its
        per-statement timeout timer about 15 us and its statement cache lookup a few: a
        loop of submits pays none of them.)

        Anything but an error the server sent back (a lost connection, a cancelled call, a
        statement overdue) closes the held connection in the background, after the server
        has cancelled its statement, and the next statement connects anew.

        A connection that died while idle (a restarted or failed-over server, a terminated
        session) is only found out when used: a statement that provably never reached the
        server, or a plain read, is tried again on another connection, so callers do not
        see an error for what the pool mends by itself.
        """
        pool = self._need_pool()
        read = _READS.get(sql)
        if read is None:
            read = _READS[sql] = _is_read(sql)
        for attempt in range(3):
            try:
                if self._held_busy:
                    return await getattr(pool, method)(sql, *args)
                self._held_busy = True
                conn = self._held
                try:
                    if conn is None:
                        conn = await self._connect(timed=False)
                        self._held, self._held_stmts = conn, {}
                    self._held_since = time.monotonic()
                    stmt = self._held_stmts.get(sql)
                    if stmt is None:
                        if method == "execute" or sql not in _PREPARED:
                            return await getattr(conn, method)(sql, *args)
                        stmt = self._held_stmts[sql] = await conn.prepare(sql)
                    return await getattr(stmt, method)(*args)
                except BaseException as e:
                    if isinstance(e, asyncpg.PostgresError) and not isinstance(e, _LOST):
                        raise  # the server's answer: the connection is fine
                    self._drop_held(conn)
                    if conn is not None and conn is self._held_overdue:
                        raise TimeoutError(
                            f"no answer within command_timeout={self._command_timeout} s"
                        ) from None
                    raise
                finally:
                    self._held_busy = False
            except asyncpg.UniqueViolationError:
                raise  # the caller knows which name or schedule it was
            except asyncpg.InvalidCachedStatementError as e:
                # A schema change made the prepared plan stale; the server ran nothing.
                self._held_stmts.pop(sql, None)
                if attempt < 2:
                    continue
                raise self._error(e) from e
            except _DB_ERRORS as e:
                unsent = isinstance(e, asyncpg.exceptions.InternalClientError)
                lost = isinstance(e, _LOST) and not isinstance(e, asyncpg.CannotConnectNowError)
                if attempt < 2 and (unsent or (read and lost)):
                    continue
                raise self._error(e) from e
        raise AssertionError("unreachable")

    def _drop_held(self, conn: asyncpg.Connection[asyncpg.Record] | None) -> None:
        if conn is None or conn is not self._held:
            return
        self._held, self._held_stmts = None, {}
        # Closing waits out the server's cancel of a statement cut short (at most 1 s).
        task = asyncio.get_running_loop().create_task(_close_conn(conn))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _watch_held(self) -> None:
        """End the held connection when its statement outlasts ``command_timeout``.

        One check every quarter of the timeout (at most every 5 s) rather than a timer per
        statement; the overdue statement fails with `StoreError` (a `TimeoutError` cause).
        """
        limit = self._command_timeout
        assert limit is not None
        while True:
            await asyncio.sleep(min(limit / 4, 5.0))
            conn = self._held
            overdue = self._held_busy and time.monotonic() - self._held_since > limit
            if conn is not None and overdue:
                logger.warning("%s: a statement outlasted %s s", self._where, limit)
                self._held_overdue = conn
                conn.terminate()

    async def _changed(self, sql: str, *args: Any) -> bool:
        return _affected(await self._execute(sql, *args)) == 1

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
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            params.append([Status(s).value for s in status])
            where.append(f"status = ANY(${len(params)}::text[])")
        for column, value in zip(_LIST_FILTERS, (task, queue, name), strict=True):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")  # our column names, bound values
        if cursor is not None:
            params.append(decode_cursor(cursor))
            where.append(f"seq < ${len(params)}")
        params.append(limit + 1)
        sql = _SQL["list"].format(where=" AND ".join(where) or "true", limit=f"${len(params)}")
        rows = [_record(r) for r in await self._fetch(sql, *params)]
        if len(rows) > limit:
            return Page(items=rows[:limit], cursor=encode_cursor(rows[limit - 1].seq))
        return Page(items=rows, cursor=None)

    # -- schedules (statements in sql/postgres/schedules.sql) --------------------------------

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        """Create a schedule, or (with ``replace``) update its definition."""
        sql = _SCHEDULE_SQL["schedule_replace" if replace else "schedule_insert"]
        try:
            rows = await self._fetch(sql, self._fake(), name, definition)
        except asyncpg.UniqueViolationError:
            raise duplicate_schedule_error(name) from None
        return _schedule(rows[0])

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The schedule of this name, or None."""
        rows = await self._fetch(_SCHEDULE_SQL["schedule_get"], name)
        return _schedule(rows[0]) if rows else None

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Every schedule, by name."""
        return [_schedule(r) for r in await self._fetch(_SCHEDULE_SQL["schedule_list"])]

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False when there is none."""
        return await self._changed(_SCHEDULE_SQL["schedule_delete"], name)

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume; resuming a paused schedule forgets its last tick."""
        rows = await self._fetch(_SCHEDULE_SQL["schedule_pause"], self._fake(), paused, name)
        return _schedule(rows[0]) if rows else await self.get_schedule(name)

    async def fire_schedule(
        self,
        name: str,
        expected_last_tick: float | None,
        new_last_tick: float | None,
        tasks: Sequence[NewTask],
        *,
        fired: float | None = None,
    ) -> bool:
        """Compare-and-set the last tick and insert the tick tasks, in one transaction."""
        pool = self._need_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    _SCHEDULE_SQL["schedule_fire"],
                    self._fake(),
                    new_last_tick,
                    name,
                    expected_last_tick,
                    fired,
                )
                if _affected(status) != 1:
                    return False
                if tasks:
                    await self.insert(tasks, connection=conn)
        except _DB_ERRORS as e:
            raise self._error(e) from e
        if tasks:
            self._change.notify()
        return True

    async def count_active(self, name_prefix: str) -> int:
        """Active tasks whose name starts with ``name_prefix``."""
        count: int = await self._fetchval(_SCHEDULE_SQL["count_active"], name_prefix)
        return count


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Skip asyncpg's reset of a connection returned to the pool (UNLISTEN, RESET ALL, ...).

    Pooled connections never keep session state: no LISTEN, advisory lock, setting or cursor
    outlives a statement (those live on dedicated connections), and a transaction left open
    is still rolled back by the pool. The reset would cost a round trip on every call.
    """


async def _schema_version(conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> int:
    if not await conn.fetchval(_SQL["has_version_table"]):
        return 0
    version: int = await conn.fetchval(_SQL["schema_version"])
    return version


def _refused_data(e: BaseException) -> InvalidArgumentsError | None:
    """`InvalidArgumentsError` for a value PostgreSQL cannot hold (SQLSTATE class 22, or text
    asyncpg could not encode), else None. Never the value itself: it may be a secret."""
    if isinstance(e, UnicodeEncodeError) or isinstance(e.__cause__, UnicodeEncodeError):
        return InvalidArgumentsError(
            "PostgreSQL cannot store text with a lone surrogate (it has no UTF-8 form)"
        )
    state = getattr(e, "sqlstate", None)
    if not (isinstance(e, asyncpg.PostgresError) and str(state).startswith("22")):
        return None
    if isinstance(e, asyncpg.CharacterNotInRepertoireError) and "0x00" in str(e):
        return InvalidArgumentsError("PostgreSQL cannot store a NUL character (\\x00) in text")
    reason = str(e).partition("\n")[0][:200]
    return InvalidArgumentsError(f"PostgreSQL refused a value as invalid data: {reason}")


def _insert_conflict(e: asyncpg.UniqueViolationError) -> Exception:
    """The error for a refused insert, naming the name that is already taken."""
    if e.constraint_name == "taskward_tasks_active_name":
        match = _NAME_TAKEN.search(e.detail or "")
        if match:
            return duplicate_name_error(match.group("name"))
        return DuplicateNameError("a name in this insert is already Pending or Running")
    return StoreError(f"a task with one of these ids already exists: {e}")


# Which statements are plain reads (safe to send again after a lost connection), by text.
_READS: dict[str, bool] = {}
# The statements the held connection prepares: the store's own, never text built per call.
_PREPARED = frozenset(_SQL.values()) | frozenset(_SCHEDULE_SQL.values())


def _is_read(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT") and "FOR UPDATE" not in sql.upper()


def _affected(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1`` or ``DELETE 0``."""
    return int(status.rsplit(" ", 1)[-1])


def _record(row: asyncpg.Record) -> TaskRecord:
    """A row as a `TaskRecord`; a row this code could not have written is a `StoreError`."""
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
        )
    except (ValueError, TypeError, KeyError) as e:
        raise StoreError(f"task row seq={row.get('seq')!r} is corrupt: {e}") from None


def _status(value: object) -> Status:
    try:
        return Status(str(value))
    except ValueError:
        raise StoreError(f"the tasks table holds an unknown status {value!r}") from None


def _describe(url: str) -> str:
    """The database a URL names, for messages: never its password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the PostgreSQL database"
    db = parts.path.lstrip("/") or parts.username or "postgres"
    return f"PostgreSQL database {db!r} on {host}{port}"


async def _close_conn(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Close a connection, politely if it answers within a second."""
    try:
        await asyncio.wait_for(conn.close(), 1.0)
    except (TimeoutError, *_DB_ERRORS):
        conn.terminate()


async def _close_pool(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """Close a pool, politely if its connections come back within a few seconds."""
    try:
        await asyncio.wait_for(pool.close(), 5.0)
    except (TimeoutError, *_DB_ERRORS):
        pool.terminate()


def _schedule(row: asyncpg.Record) -> ScheduleRecord:
    return ScheduleRecord(
        name=row["name"],
        definition=row["definition"],
        last_tick=row["last_tick"],
        last_fired=row["last_fired"],
        paused=row["paused"],
        updated_at=row["updated_at"],
    )
