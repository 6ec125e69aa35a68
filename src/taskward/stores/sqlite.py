"""The SQLite store: durable tasks in one file, shared by any number of worker processes.

One dedicated thread per store owns the `sqlite3` connection and runs every call, so the
event loop never waits for the disk or for another process's lock. The file is in WAL mode
(readers never block the writer) with ``synchronous=NORMAL`` (no fsync per commit; a power
cut can lose the last commits but never corrupts the file).

Every write is a ``BEGIN IMMEDIATE`` transaction: it takes the write lock up front, so two
processes can never both read a row as Pending and both claim it. Writes that queue up while
the thread is busy share one transaction (each in its own SAVEPOINT, so one failing call
does not undo the others): a commit costs far more than a statement, and a busy worker
finishing many tasks at once then pays for one. SQLite's busy_timeout waits for the lock; on
top of it a retry loop with jittered backoff covers the cases where SQLite answers
"database is locked" at once (WAL recovery, switching journal mode), so the caller sees
`StoreError` only after a long bounded wait, never a raw lock error.

A fast path skips the thread for short calls: the event loop has a second connection with
no busy timeout, and runs a call there when the write lock is free at once (a few hundred
microseconds of work, less than the hand-off to a thread costs on a small machine). When the
lock is taken, the call goes to the thread, which waits for it. That connection never
checkpoints (the fsync stays off the loop): the thread checkpoints every so many fast commits.

Other processes' changes are noticed by polling ``PRAGMA data_version`` every few
milliseconds while someone is in `wait_for_change`; this process's own changes set an event.
The statements live in ``sql/sqlite.sql``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import os
import queue
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar, TypeVarTuple, cast
from uuid import UUID

from taskward.errors import (
    ConfigurationError,
    InvalidArgumentsError,
    InvalidTransitionError,
    StoreError,
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
    holds,
    may_lead,
    new_record,
    pending_record,
    rescued_changes,
    resolve_run_at,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: The schema this code writes and reads, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 4


def _load_statements() -> dict[str, str]:
    """The statements of ``sql/sqlite.sql`` by their ``-- name:``."""
    text = resources.files("taskward.stores").joinpath("sql", "sqlite.sql").read_text("utf-8")
    out: dict[str, str] = {}
    for chunk in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = chunk.partition("\n")
        out[name.strip()] = body.strip().removesuffix(";")
    return out


_SQL = _load_statements()
_SCHEMA = [s for s in re.split(r";\s*\n", _SQL["schema"]) if s.strip()]
#: What each version adds to the one before (version 1 is `_SCHEMA`).
_MIGRATIONS = {
    version: [s for s in re.split(r";\s*\n", _SQL[f"schema_{version}"]) if s.strip()]
    for version in range(2, SCHEMA_VERSION + 1)
}
_PICKS = {"one": _SQL["pick_queue"], "some": _SQL["pick_queues"], "all": _SQL["pick_all"]}

_CHUNK = 500  # ids per IN (...) list, well under SQLite's limit on bound parameters
_GROUP = 64  # most calls that share one write transaction
_FAST_ROWS = 50  # larger inserts go to the thread: they would hold up the event loop
_CHECKPOINT_EVERY = 1000  # fast-path commits between two checkpoints on the thread
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    # Checkpoint (copy the WAL into the file, with an fsync) every ~16 MiB instead of 4 MiB:
    # pages written many times in a row are then copied once.
    "PRAGMA wal_autocheckpoint = 4000",
    "PRAGMA cache_size = -32768",  # up to 32 MiB, so big inserts do not spill mid-transaction
)

# What the store thread runs. A job is (loop, future, kind, fn, args, precheck).
_RAW, _READ, _WRITE = 0, 1, 2
_Call = tuple[Callable[..., Any], tuple[Any, ...]]
_Job = tuple[
    asyncio.AbstractEventLoop,
    asyncio.Future[Any],
    int,
    Callable[..., Any],
    tuple[Any, ...],
    _Call | None,
]
_Outcome = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], bool, Any]


class SQLiteStore:
    """A `Store` in one SQLite file, safe to share between processes."""

    url: str

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        url: str | None = None,
        busy_timeout: float = 5.0,
        lock_wait: float = 30.0,
        poll_interval: float = 0.005,
    ) -> None:
        self.path = os.fspath(path)
        self.url = url or f"sqlite:///{self.path}"
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._lock_wait = lock_wait
        self._poll_interval = poll_interval
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None  # touched only by the store thread
        self._fast: sqlite3.Connection | None = None  # touched only by the event loop
        self._fast_commits = 0
        self._fast_thread = 0  # the fast path serves only the thread (loop) that opened it
        self._open_lock: asyncio.Lock | None = None
        self._change = ChangeSignal()
        self._waiters = 0
        self._idle_since = 0.0
        self._poller: asyncio.Task[None] | None = None
        self._seen_version = 0  # PRAGMA data_version at the last poll (store thread only)
        self._idle = True  # the last claim found nothing
        self._commits = 0  # write transactions committed (for tests and curiosity)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, switch it to WAL, and create or check the schema. Idempotent."""
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._jobs is not None:
                return
            jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            # A daemon thread, so a store nobody closed cannot keep the process alive.
            thread = threading.Thread(
                target=self._serve, args=(jobs,), name="taskward-sqlite", daemon=True
            )
            thread.start()
            self._jobs, self._thread = jobs, thread
            try:
                await self._submit(_RAW, self._open_sync, ())
            except BaseException:
                self._jobs = self._thread = None
                jobs.put(None)
                raise
            self._fast = self._open_fast()
            self._fast_thread = threading.get_ident()

    async def close(self) -> None:
        """Finish queued calls, close the connection, stop the thread, wake waiters."""
        jobs, thread = self._jobs, self._thread
        self._jobs = self._thread = None
        fast, self._fast = self._fast, None
        if fast is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed from another thread
                fast.close()
        self._notify()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if jobs is None or thread is None:
            return
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[Any] = loop.create_future()
        jobs.put((loop, closed, _RAW, self._close_sync, (), None))
        jobs.put(None)
        await closed
        thread.join(1.0)  # it has nothing left to do but return

    async def now(self) -> float:
        """The injected clock (``time.time`` by default)."""
        return self._clock()

    # -- writes ------------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[NewTask]) -> list[TaskRecord]:
        """Insert all tasks as Pending in one transaction, or none of them."""
        if not tasks:
            return []
        check_batch_names(tasks)
        if len(tasks) > _FAST_ROWS:
            rows: list[TaskRecord] = await self._submit(_WRITE, _insert_tx, (tasks, self._clock()))
        else:
            rows = await self._write(_insert_tx, tasks, self._clock())
        self._notify()
        return rows

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due Pending tasks, best first."""
        if limit < 1 or (queues is not None and not queues):
            return []
        now = self._clock()
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
        claim = _SQL["claim"].format(pick)
        claim_args = (claim, (now, worker_id, now + lease, *params))
        fast = self._fast
        if fast is not None and threading.get_ident() == self._fast_thread:
            if self._idle:
                found, exists = self._try_fast(fast, _exists, (pick, probe), write=False)
                if found and not exists:
                    return []
            done, got = self._try_fast(fast, _claim_tx, claim_args, write=True)
            if done:
                self._idle = not got
                return list(got)
        # After an empty claim, look before taking the write lock: workers polling an empty
        # queue then never queue up behind the processes that are busy writing. After a
        # fruitful one, more work is likely and the look would be wasted.
        claimed: list[TaskRecord] = await self._submit(
            _WRITE,
            _claim_tx,
            claim_args,
            precheck=(_exists, (pick, probe)) if self._idle else None,
        )
        self._idle = not claimed
        return claimed

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        """Extend the leases still held; return the ids whose lease is lost."""
        if not leases:
            return set()
        return await self._write(_heartbeat_tx, leases, self._clock() + lease)

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
        params = (status.value, result, error, traceback, self._clock(), str(task_id), token)
        return await self._write(_changed_one, _SQL["finish"], params)

    async def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for each outcome, all in one transaction."""
        for o in outcomes:
            check_finish_status(o.status)
        now = self._clock()
        params = [
            (o.status.value, o.result, o.error, o.traceback, now, str(o.task_id), o.token)
            for o in outcomes
        ]
        return await self._write(_changed_each, _SQL["finish"], params)

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
        params = {
            "run_at": self._clock() + delay,
            "refund": refund_attempt,
            "error": error,
            "traceback": traceback,
            "id": str(task_id),
            "token": token,
        }
        return await self._write(_changed_one, _SQL["requeue"], params)

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        """Record a running task's progress while ``token`` holds the lease."""
        return await self._write(
            _changed_one, _SQL["set_progress"], (progress, str(task_id), token)
        )

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        """Cancel a Pending task now, or flag a Running one."""
        row, changed = await self._write(_request_cancel_tx, str(task_id), self._clock())
        if changed:
            self._notify()
        return row

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these Running tasks have a cancel request waiting."""
        if not task_ids:
            return set()
        return await self._read(_cancel_requested_q, [str(i) for i in task_ids])

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        """Failed/Cancelled -> Pending, due now, attempts 0, outcome cleared."""
        row = await self._write(_retry_tx, str(task_id), self._clock())
        if row is not None:
            self._notify()
        return row

    async def rescue(self, leader: str | None = None) -> list[TaskRecord]:
        """Requeue, fail or cancel the Running tasks whose lease expired (only while
        ``leader``, when given, holds the maintenance role)."""
        return await self._write(_rescue_tx, self._clock(), leader)

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        """Delete up to ``limit`` finished tasks older than their status's age, oldest first."""
        if limit < 1:
            return 0
        now = self._clock()
        cutoffs = [
            now - older_than[s] if s in older_than else None
            for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
        ]
        # On the thread: deleting a batch can take a while, and is never urgent.
        pruned: int = await self._submit(_WRITE, _rowcount, (_SQL["prune"], (*cutoffs, limit)))
        return pruned

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` more seconds."""
        now = self._clock()
        await self._write(_rowcount, _SQL["worker_beat"], (worker_id, info, now, now + ttl))

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        await self._write(_rowcount, _SQL["worker_gone"], (worker_id,))

    async def workers(self) -> list[WorkerRecord]:
        """The workers alive now, oldest first."""
        await self._write(_rowcount, _SQL["forget_workers"], (self._clock(),))
        rows = await self._read(_fetchall, _SQL["workers"], ())
        return [
            WorkerRecord(id=r[0], info=r[1], started_at=r[2], last_seen=r[3], expires_at=r[4])
            for r in rows
        ]

    # -- reads -------------------------------------------------------------------------------

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task with this id, or None."""
        return await self._read(_one, _SQL["get"], (str(task_id),))

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The active task with this name, else the most recent one."""
        return await self._read(_one, _SQL["get_by_name"], (name,))

    async def counts(self) -> Counts:
        """How many tasks there are by queue and status."""
        raw = await self._read(_fetchall, _SQL["counts"], ())
        by_queue: dict[str, dict[Status, int]] = {}
        for queue_name, status, n in raw:
            by_queue.setdefault(queue_name, {})[_status(status)] = n
        return Counts(by_queue=by_queue)

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the maintenance role for ``holder`` until now + ``ttl``."""
        return await self._write(_lead_tx, holder, self._clock(), ttl)

    async def resign(self, holder: str) -> None:
        """Give the maintenance role up, if ``holder`` has it."""
        await self._write(_rowcount, _SQL["resign"], (holder,))

    async def wait_for_change(self, timeout: float) -> None:
        """Return when tasks changed here or in another process, or at ``timeout``."""
        if self._jobs is None:
            return
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        self._waiters += 1
        try:
            await self._change.wait(timeout)
        finally:
            self._waiters -= 1
            self._idle_since = time.monotonic()

    # -- schedules ---------------------------------------------------------------------------

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        """Create a schedule, or (with ``replace``) update its definition."""
        sql = _SQL["schedule_replace" if replace else "schedule_insert"]
        row = await self._write(_put_schedule_tx, sql, (name, definition, self._clock()))
        return _schedule(row)

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The schedule of this name, or None."""
        row = await self._read(_fetchone, _SQL["schedule_get"], (name,))
        return None if row is None else _schedule(row)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Every schedule, by name."""
        return [_schedule(r) for r in await self._read(_fetchall, _SQL["schedule_list"], ())]

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False when there is none."""
        return await self._write(_changed_one, _SQL["schedule_delete"], (name,))

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume; resuming a paused schedule forgets its last tick."""
        row = await self._write(
            _fetchone, _SQL["schedule_pause"], (int(paused), self._clock(), name)
        )
        return _schedule(row) if row is not None else await self.get_schedule(name)

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
        check_batch_names(tasks)
        done = await self._write(
            _fire_schedule_tx,
            name,
            expected_last_tick,
            (new_last_tick, fired),
            tasks,
            self._clock(),
        )
        if done and tasks:
            self._notify()
        return done

    async def count_active(self, name_prefix: str) -> int:
        """Active tasks whose name starts with ``name_prefix``."""
        row = await self._read(_fetchone, _SQL["count_active"], (name_prefix,))
        return int(row[0])

    # -- the event loop side -----------------------------------------------------------------

    def _submit(
        self,
        kind: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        precheck: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
    ) -> asyncio.Future[Any]:
        jobs = self._jobs
        if jobs is None:
            raise StoreError(f"the SQLite store {self.path} is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        jobs.put((loop, future, kind, fn, args, precheck))
        return future

    async def _write(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        fast = self._fast
        if fast is not None and threading.get_ident() == self._fast_thread:
            done, value = self._try_fast(fast, fn, args, write=True)
            if done:
                return cast(T, value)
        result: T = await self._submit(_WRITE, fn, args)
        return result

    async def _read(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        fast = self._fast
        if fast is not None and threading.get_ident() == self._fast_thread:
            done, value = self._try_fast(fast, fn, args, write=False)
            if done:
                return cast(T, value)
        result: T = await self._submit(_READ, fn, args)
        return result

    def _try_fast(
        self,
        conn: sqlite3.Connection,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        *,
        write: bool,
    ) -> tuple[bool, Any]:
        """Run ``fn(conn, *args)`` on the loop's connection; (False, None) if it must wait."""
        try:
            if write:
                conn.execute("BEGIN IMMEDIATE")  # no busy timeout: fails at once if taken
            value = fn(conn, *args)
            if write:
                conn.execute("COMMIT")
                self._commits += 1
                self._fast_commits += 1
                if self._fast_commits % _CHECKPOINT_EVERY == 0:
                    self._checkpoint_soon()
        except sqlite3.Error as e:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            if _is_busy(e):
                return False, None
            raise self._error(e) from e
        except BaseException as e:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            if isinstance(e, UnicodeEncodeError):
                raise self._error(e) from e
            raise
        return True, value

    def _open_fast(self) -> sqlite3.Connection | None:
        """The event loop's own connection, or None (then every call uses the thread)."""
        try:
            conn = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, cached_statements=256
            )
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the thread checkpoints
        except sqlite3.Error:
            return None
        return conn

    def _checkpoint_soon(self) -> None:
        """Ask the thread to copy the WAL back into the file, so the WAL stays small."""
        future = self._submit(_RAW, self._checkpoint_sync, ())
        future.add_done_callback(_ignore_outcome)

    def _checkpoint_sync(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _notify(self) -> None:
        self._change.notify()

    async def _poll(self) -> None:
        """Watch for other processes' commits while anyone waits (and a second after, so
        a worker that claims between two waits does not lose what happened meanwhile)."""
        while self._jobs is not None:
            if not self._waiters and time.monotonic() - self._idle_since > 1.0:
                return
            await asyncio.sleep(self._poll_interval)
            try:
                changed = await self._read(self._data_version_changed)
            except StoreError:
                self._notify()  # let the waiters go and meet the error themselves
                return
            if changed:
                self._notify()

    # -- the store thread --------------------------------------------------------------------

    def _serve(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        """Run jobs in order until told to stop; writes queued together share a transaction."""
        try:
            running = True
            while running:
                job = jobs.get()
                if job is None:
                    break
                batch = [job]
                while len(batch) < _GROUP:
                    try:
                        job = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        running = False
                        break
                    batch.append(job)
                start = 0
                while start < len(batch):
                    end = start + 1
                    if batch[start][2] == _WRITE:
                        while end < len(batch) and batch[end][2] == _WRITE:
                            end += 1
                    group = batch[start:end]
                    try:
                        outcomes = self._run(group)
                    except Exception as e:  # a bug here must not leave callers waiting forever
                        failure = StoreError(f"the SQLite store failed: {e!r}")
                        outcomes = [(loop, future, False, failure) for loop, future, *_ in group]
                    _deliver(outcomes)
                    start = end
        finally:
            self._close_sync()

    def _run(self, jobs: list[_Job]) -> list[_Outcome]:
        """Run one read or raw job, or a group of write jobs; never raises."""
        loop, future, kind, fn, args, _ = jobs[0]
        if kind == _WRITE:
            return self._run_writes(jobs)
        try:
            value = fn(*args) if kind == _RAW else self._retrying(fn, args)
        except Exception as e:
            return [(loop, future, False, e if kind == _RAW else self._error(e))]
        return [(loop, future, True, value)]

    def _run_writes(self, jobs: list[_Job]) -> list[_Outcome]:
        out: list[_Outcome] = []
        todo: list[_Job] = []
        for job in jobs:
            loop, future, _, _, _, precheck = job
            if precheck is None:
                todo.append(job)
                continue
            try:
                if self._retrying(*precheck):
                    todo.append(job)
                else:
                    out.append((loop, future, True, []))  # nothing to claim
            except Exception as e:
                out.append((loop, future, False, e))
        if todo:
            results = self._transact([(fn, args) for _, _, _, fn, args, _ in todo])
            for (loop, future, *_), (ok, value) in zip(todo, results, strict=True):
                out.append((loop, future, ok, value))
        return out

    def _transact(self, calls: list[_Call]) -> list[tuple[bool, Any]]:
        """Run ``fn(conn, *args)`` calls in one BEGIN IMMEDIATE transaction; never raises.

        Each call's result is (True, value) or (False, exception); a call that fails is
        rolled back alone. The transaction is retried while the database is locked.
        """
        try:
            conn = self._connection()
        except StoreError as e:
            return [(False, _copy(e)) for _ in calls]
        grouped = len(calls) > 1
        backoff = _Backoff(self._lock_wait, self.path)
        while True:
            done: list[tuple[bool, Any]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for fn, args in calls:
                    if grouped:
                        conn.execute("SAVEPOINT call")
                    try:
                        value = fn(conn, *args)
                    except Exception as e:
                        if isinstance(e, sqlite3.Error) and _is_busy(e):
                            raise
                        if grouped:
                            conn.execute("ROLLBACK TO call")
                            conn.execute("RELEASE call")
                        else:
                            conn.rollback()
                        done.append((False, self._error(e)))
                        continue
                    if grouped:
                        conn.execute("RELEASE call")
                    done.append((True, value))
                if conn.in_transaction:
                    conn.execute("COMMIT")
                    self._commits += 1
                return done
            except sqlite3.Error as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the error below says enough
                        conn.rollback()
                try:
                    if not _is_busy(e):
                        raise self._error(e) from e
                    backoff.wait(e)
                except StoreError as failed:
                    return [(False, _copy(failed)) for _ in calls]

    def _retrying(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Run a read ``fn(conn, *args)``, retried while the database is locked."""
        conn = self._connection()
        backoff = _Backoff(self._lock_wait, self.path)
        while True:
            try:
                return fn(conn, *args)
            except sqlite3.Error as e:
                if not _is_busy(e):
                    raise self._error(e) from e
                backoff.wait(e)

    def _error(self, e: Exception) -> Exception:
        """A sqlite3 error as a `StoreError`; text sqlite3 cannot encode (a lone surrogate) as
        the caller's `InvalidArgumentsError`; taskward's own errors pass through."""
        if isinstance(e, sqlite3.Error):
            return StoreError(f"SQLite error on {self.path}: {e}")
        if isinstance(e, UnicodeEncodeError):
            return InvalidArgumentsError(
                "SQLite cannot store text with a lone surrogate (it has no UTF-8 form)"
            )
        return e

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the SQLite store {self.path} is closed")
        return conn

    def _open_sync(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                cached_statements=256,
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open SQLite database {self.path}: {e}") from e
        self._conn = conn
        try:
            # Switching to WAL needs a moment alone with the file: retried like any lock.
            mode = self._retrying(_pragma, ("PRAGMA journal_mode = WAL",))
            if str(mode).lower() not in ("wal", "memory"):
                raise StoreError(f"SQLite database {self.path} cannot use WAL mode ({mode})")
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            [(ok, failure)] = self._transact([(self._migrate_tx, ())])
            if not ok:
                raise failure
            self._seen_version = int(self._retrying(_pragma, ("PRAGMA data_version",)))
        except BaseException:
            self._close_sync()
            raise

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _migrate_tx(self, conn: sqlite3.Connection) -> None:
        version = int(_pragma(conn, "PRAGMA user_version"))
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"SQLite database {self.path} has schema version {version}, newer than"
                f" {SCHEMA_VERSION} which this taskward knows: upgrade taskward"
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'"
            ).fetchone()
            if exists:
                raise ConfigurationError(
                    f"SQLite database {self.path} has a tasks table that taskward did not create"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            version = 1
        for later in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[later]:
                conn.execute(statement)
        # PRAGMA takes no bound parameters; the value is our own integer constant.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def _data_version_changed(self, conn: sqlite3.Connection) -> bool:
        version = int(_pragma(conn, "PRAGMA data_version"))
        changed = version != self._seen_version
        self._seen_version = version
        return changed

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
            statuses = [Status(s).value for s in status]
            where.append(f"status IN ({_marks(len(statuses))})" if statuses else "0")
            params.extend(statuses)
        for column, value in (("task", task), ("queue", queue), ("name", name)):
            if value is not None:
                where.append(f"{column} = ?")  # column names are ours, values are bound
                params.append(value)
        if cursor is not None:
            where.append("seq < ?")
            params.append(decode_cursor(cursor))
        params.append(limit + 1)
        sql = _SQL["list"].format(where=" AND ".join(where) or "1")
        rows = await self._read(_many, sql, tuple(params))
        if len(rows) > limit:
            return Page(items=rows[:limit], cursor=encode_cursor(rows[limit - 1].seq))
        return Page(items=rows, cursor=None)


# -- transactions and queries, run on the store thread ---------------------------------------


def _insert_tx(conn: sqlite3.Connection, tasks: Sequence[NewTask], now: float) -> list[TaskRecord]:
    run_ats = [resolve_run_at(t, now) for t in tasks]
    base = 2**63 - 1  # until known, every existing row is "before" this insert
    try:
        if len(tasks) == 1:
            t = tasks[0]
            params = (str(t.id), t.task, t.args, t.name, t.priority, t.queue, t.max_attempts)
            cur = conn.execute(_SQL["insert_one"], (*params, t.timeout, run_ats[0], now))
            if cur.lastrowid is None:
                raise StoreError("SQLite did not report the new task's seq")
            base = cur.lastrowid - 1
        else:
            # The write lock is ours, so nobody else can take these seqs meanwhile.
            base = conn.execute(_SQL["last_seq"]).fetchone()[0]
            conn.executemany(
                _SQL["insert_many"],
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
        sql = _SQL["active_names_in"].format(_marks(len(chunk)))
        row = conn.execute(sql, (below, *chunk)).fetchone()
        if row is not None:
            return duplicate_name_error(row[0])
    return StoreError(f"SQLite refused the insert: {e}")


def _fire_schedule_tx(
    conn: sqlite3.Connection,
    name: str,
    expected: float | None,
    new: tuple[float | None, float | None],
    tasks: Sequence[NewTask],
    now: float,
) -> bool:
    last_tick, fired = new
    params = (last_tick, fired, now, name, expected)
    if conn.execute(_SQL["schedule_fire"], params).rowcount != 1:
        return False
    if tasks:
        _insert_tx(conn, tasks, now)  # raises DuplicateNameError: the whole call rolls back
    return True


def _put_schedule_tx(conn: sqlite3.Connection, sql: str, params: tuple[str, str, float]) -> Any:
    try:
        return conn.execute(sql, params).fetchone()
    except sqlite3.IntegrityError:
        raise duplicate_schedule_error(params[0]) from None


def _fetchone(conn: sqlite3.Connection, sql: str, params: Any) -> Any:
    return conn.execute(sql, params).fetchone()


def _schedule(row: Sequence[Any]) -> ScheduleRecord:
    # The statements' column order: name, definition, last_tick, last_fired, paused, updated_at.
    return ScheduleRecord(
        name=row[0],
        definition=row[1],
        last_tick=row[2],
        last_fired=row[3],
        paused=bool(row[4]),
        updated_at=row[5],
    )


def _claim_tx(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[TaskRecord]:
    records = [_record(r) for r in conn.execute(sql, params)]
    # RETURNING gives rows in no particular order: restore the claim order.
    records.sort(key=lambda r: (r.priority, r.run_at, r.seq))
    return records


def _exists(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> bool:
    return conn.execute(sql, params).fetchone() is not None


def _heartbeat_tx(
    conn: sqlite3.Connection, leases: Sequence[tuple[UUID, str]], expires: float
) -> set[UUID]:
    lost: set[UUID] = set()
    for task_id, token in leases:
        if conn.execute(_SQL["heartbeat"], (expires, str(task_id), token)).rowcount != 1:
            lost.add(task_id)
    return lost


def _request_cancel_tx(
    conn: sqlite3.Connection, task_id: str, now: float
) -> tuple[TaskRecord | None, bool]:
    changed = conn.execute(_SQL["request_cancel"], (now, task_id)).fetchall()
    if changed:
        return _record(changed[0]), True
    return _one(conn, _SQL["get"], (task_id,)), False


def _retry_tx(conn: sqlite3.Connection, task_id: str, now: float) -> TaskRecord | None:
    old = _one(conn, _SQL["get"], (task_id,))
    if old is None:
        return None
    if old.status not in (Status.FAILED, Status.CANCELLED):
        raise InvalidTransitionError(
            f"only a Failed or Cancelled task can be retried, not {old.status}"
        )
    try:
        return _one(conn, _SQL["retry"], (now, task_id))
    except sqlite3.IntegrityError:
        assert old.name is not None  # only the active-name index can refuse this update
        raise duplicate_name_error(old.name) from None


def _leader(conn: sqlite3.Connection) -> tuple[str, float] | None:
    row = conn.execute(_SQL["leader"]).fetchone()
    return None if row is None else (row[0], row[1])


def _lead_tx(conn: sqlite3.Connection, holder: str, now: float, ttl: float) -> bool:
    if not may_lead(_leader(conn), holder, now):
        return False
    conn.execute(_SQL["set_leader"], (holder, now + ttl))
    return True


def _rescue_tx(conn: sqlite3.Connection, now: float, leader: str | None) -> list[TaskRecord]:
    if leader is not None and not holds(_leader(conn), leader, now):
        return []
    out: list[TaskRecord] = []
    for row in conn.execute(_SQL["expired"], (now,)).fetchall():
        old = _record(row)
        new = dataclasses.replace(old, **rescued_changes(old, now))
        conn.execute(_SQL["rescue"], (new.status.value, new.finished_at, new.error, new.seq))
        out.append(new)
    out.sort(key=lambda r: r.seq)
    return out


def _cancel_requested_q(conn: sqlite3.Connection, ids: Sequence[str]) -> set[UUID]:
    out: set[UUID] = set()
    for chunk in _chunks(ids, _CHUNK):
        sql = _SQL["cancel_requested"].format(_marks(len(chunk)))
        out.update(UUID(i) for (i,) in conn.execute(sql, chunk))
    return out


def _changed_one(conn: sqlite3.Connection, sql: str, params: Any) -> bool:
    return conn.execute(sql, params).rowcount == 1


def _changed_each(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[bool]:
    return [conn.execute(sql, p).rowcount == 1 for p in params]


def _rowcount(conn: sqlite3.Connection, sql: str, params: Any) -> int:
    return conn.execute(sql, params).rowcount


def _fetchall(conn: sqlite3.Connection, sql: str, params: Any) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _one(conn: sqlite3.Connection, sql: str, params: Any) -> TaskRecord | None:
    rows = conn.execute(sql, params).fetchall()
    return _record(rows[0]) if rows else None


def _many(conn: sqlite3.Connection, sql: str, params: Any) -> list[TaskRecord]:
    return [_record(r) for r in conn.execute(sql, params)]


def _pragma(conn: sqlite3.Connection, sql: str) -> Any:
    return conn.execute(sql).fetchone()[0]


def _record(row: Sequence[Any]) -> TaskRecord:
    """A row as a `TaskRecord`; a row this code could not have written is a `StoreError`."""
    try:
        return new_record(
            seq=row[0],
            id=UUID(row[1]),
            task=row[2],
            args=row[3],
            name=row[4],
            priority=row[5],
            queue=row[6],
            status=Status(row[7]),
            attempts=row[8],
            max_attempts=row[9],
            timeout=row[10],
            run_at=row[11],
            created_at=row[12],
            started_at=row[13],
            finished_at=row[14],
            lease_token=row[15],
            lease_expires_at=row[16],
            worker_id=row[17],
            cancel_requested=bool(row[18]),
            result=row[19],
            error=row[20],
            traceback=row[21],
            progress=row[22],
        )
    except (ValueError, TypeError, AttributeError) as e:
        raise StoreError(f"task row seq={row[0]!r} is corrupt: {e}") from None


def _status(value: object) -> Status:
    try:
        return Status(str(value))
    except ValueError:
        raise StoreError(f"the tasks table holds an unknown status {value!r}") from None


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as forgotten


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES
    return "locked" in str(e) or "busy" in str(e)


class _Backoff:
    """Jittered exponential sleeps while the database is locked, up to ``limit`` seconds."""

    def __init__(self, limit: float, path: str) -> None:
        self.deadline = time.monotonic() + limit
        self.limit = limit
        self.path = path
        self.delay = 0.001

    def wait(self, e: sqlite3.Error) -> None:
        """Sleep before the next try, or raise `StoreError` when the time is up."""
        if time.monotonic() >= self.deadline:
            raise StoreError(
                f"SQLite database {self.path} stayed locked for over {self.limit:g} s ({e})"
            ) from e
        # Jitter so that processes which collided do not collide again in step.
        time.sleep(self.delay * (0.5 + random.random()))
        self.delay = min(self.delay * 2, 0.1)


def _copy(e: StoreError) -> StoreError:
    """One exception object per caller: each raise writes its own traceback into it."""
    copy = StoreError(e.message)
    copy.__cause__ = e.__cause__
    return copy


def _deliver(outcomes: list[_Outcome]) -> None:
    """Hand results to their loops: one wake-up per loop, not one per result."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0], []).append(outcome)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(outcomes: list[_Outcome]) -> None:
    for _, future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
