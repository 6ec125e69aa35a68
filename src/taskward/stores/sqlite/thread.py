"""The thread that owns a SQLite store's connection: runs queued calls in order, writes in
shared transactions (group commit), and waits out the file's lock.

Every write is a ``BEGIN IMMEDIATE`` transaction: it takes the write lock up front, so two
processes can never both read a row and both change it. Writes that queue up while the
thread is busy share one transaction, each in its own SAVEPOINT, so one failing call is
rolled back alone and the others still commit: a commit costs far more than a statement,
and a busy worker finishing many tasks at once then pays for one. SQLite's busy_timeout
waits for the lock; when SQLite answers "database is locked" at once anyway (WAL recovery,
switching journal mode) or the timeout runs out, the transaction is tried again after
`retry_delay`, so callers see `StoreError` only after ``lock_wait`` seconds, never a raw
lock error. Results go back to the loop that asked, one wake-up per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from taskward.errors import InvalidArgumentsError, StoreError
from taskward.retry import retry_delay

__all__ = ["RAW", "READ", "WRITE", "Call", "Job", "StoreThread", "is_busy", "store_error"]

T = TypeVar("T")

_GROUP = 64  # most calls that share one write transaction
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    # Checkpoint (copy the WAL into the file, with an fsync) every ~16 MiB instead of 4 MiB:
    # pages written many times in a row are then copied once.
    "PRAGMA wal_autocheckpoint = 4000",
    "PRAGMA cache_size = -32768",  # up to 32 MiB, so big inserts do not spill mid-transaction
)

#: What a job asks for: ``fn(*args)`` (raw), or ``fn(conn, *args)`` as a read or a write.
RAW, READ, WRITE = 0, 1, 2
Call = tuple[Callable[..., Any], tuple[Any, ...]]
#: (loop, future, kind, fn, args, precheck): a write with a precheck ``(check, args)`` first
#: runs ``check(conn, *args)`` without the lock, and answers ``[]`` when it is falsy.
Job = tuple[
    asyncio.AbstractEventLoop,
    asyncio.Future[Any],
    int,
    Callable[..., Any],
    tuple[Any, ...],
    Call | None,
]
_Outcome = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], bool, Any]


class StoreThread(threading.Thread):
    """Runs the jobs put on `jobs` until it gets None, then closes its connection."""

    def __init__(self, path: str, *, busy_timeout: float, lock_wait: float) -> None:
        # A daemon thread, so a store nobody closed cannot keep the process alive.
        super().__init__(name="taskward-sqlite", daemon=True)
        self.path = path
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.commits = 0  # write transactions committed here
        self._busy_timeout = busy_timeout
        self._lock_wait = lock_wait
        self._conn: sqlite3.Connection | None = None

    def run(self) -> None:
        """Run jobs in order until told to stop; writes queued together share a transaction."""
        jobs = self.jobs
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
                    if batch[start][2] == WRITE:
                        while end < len(batch) and batch[end][2] == WRITE:
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
            self.close_connection()

    # -- raw jobs ----------------------------------------------------------------------------

    def open_connection(self, setup: Callable[[sqlite3.Connection], object]) -> None:
        """Connect, switch the file to WAL, and run ``setup(conn)`` in a write transaction;
        on failure the connection is closed again."""
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
            [(ok, failure)] = self._transact([(setup, ())])
            if not ok:
                raise failure
        except BaseException:
            self.close_connection()
            raise

    def close_connection(self) -> None:
        """Close the connection (later jobs fail with `StoreError`)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def checkpoint(self) -> None:
        """Copy the WAL back into the file when nobody is reading it (errors ignored)."""
        with contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- reads and writes --------------------------------------------------------------------

    def _run(self, jobs: list[Job]) -> list[_Outcome]:
        """Run one read or raw job, or a group of write jobs; never raises."""
        loop, future, kind, fn, args, _ = jobs[0]
        if kind == WRITE:
            return self._run_writes(jobs)
        try:
            value = fn(*args) if kind == RAW else self._retrying(fn, args)
        except Exception as e:
            return [(loop, future, False, e if kind == RAW else store_error(self.path, e))]
        return [(loop, future, True, value)]

    def _run_writes(self, jobs: list[Job]) -> list[_Outcome]:
        out: list[_Outcome] = []
        todo: list[Job] = []
        for job in jobs:
            loop, future, _, _, _, precheck = job
            if precheck is None:
                todo.append(job)
                continue
            try:
                if self._retrying(*precheck):
                    todo.append(job)
                else:
                    out.append((loop, future, True, []))  # nothing to do
            except Exception as e:
                out.append((loop, future, False, e))
        if todo:
            results = self._transact([(fn, args) for _, _, _, fn, args, _ in todo])
            for (loop, future, *_), (ok, value) in zip(todo, results, strict=True):
                out.append((loop, future, ok, value))
        return out

    def _transact(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        """Run ``fn(conn, *args)`` calls in one BEGIN IMMEDIATE transaction; never raises.

        Each call's result is (True, value) or (False, exception); a call that fails is
        rolled back alone. The transaction is retried while the database is locked.
        """
        try:
            conn = self._connection()
        except StoreError as e:
            return [(False, _copy(e)) for _ in calls]
        grouped = len(calls) > 1
        wait = _LockWait(self._lock_wait, self.path)
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
                        if isinstance(e, sqlite3.Error) and is_busy(e):
                            raise
                        if grouped:
                            conn.execute("ROLLBACK TO call")
                            conn.execute("RELEASE call")
                        else:
                            conn.rollback()
                        done.append((False, store_error(self.path, e)))
                        continue
                    if grouped:
                        conn.execute("RELEASE call")
                    done.append((True, value))
                if conn.in_transaction:
                    conn.execute("COMMIT")
                    self.commits += 1
                return done
            except sqlite3.Error as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the error below says enough
                        conn.rollback()
                try:
                    if not is_busy(e):
                        raise store_error(self.path, e) from e
                    wait.wait(e)
                except StoreError as failed:
                    return [(False, _copy(failed)) for _ in calls]

    def _retrying(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Run a read ``fn(conn, *args)``, retried while the database is locked."""
        conn = self._connection()
        wait = _LockWait(self._lock_wait, self.path)
        while True:
            try:
                return fn(conn, *args)
            except sqlite3.Error as e:
                if not is_busy(e):
                    raise store_error(self.path, e) from e
                wait.wait(e)

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the SQLite store {self.path} is closed")
        return conn


class _LockWait:
    """The sleeps of one call while the database is locked, up to ``limit`` seconds."""

    def __init__(self, limit: float, path: str) -> None:
        self.deadline = time.monotonic() + limit
        self.limit = limit
        self.path = path
        self.failures = 0

    def wait(self, e: sqlite3.Error) -> None:
        """Sleep before the next try, or raise `StoreError` when the time is up."""
        if time.monotonic() >= self.deadline:
            raise StoreError(
                f"SQLite database {self.path} stayed locked for over {self.limit:g} s ({e})"
            ) from e
        self.failures += 1
        # 1 ms, doubling up to 100 ms; the jitter keeps processes that collided from
        # colliding again in step.
        time.sleep(retry_delay(self.failures, first=0.001, cap=0.1, jitter=0.5))


def is_busy(e: sqlite3.Error) -> bool:
    """Whether SQLite refused for a lock another connection holds (worth trying again)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES
    return "locked" in str(e) or "busy" in str(e)


def store_error(path: str, e: Exception) -> Exception:
    """A sqlite3 error as a `StoreError`; text sqlite3 cannot encode (a lone surrogate) as
    the caller's `InvalidArgumentsError`; taskward's own errors pass through."""
    if isinstance(e, sqlite3.Error):
        return StoreError(f"SQLite error on {path}: {e}")
    if isinstance(e, UnicodeEncodeError):
        return InvalidArgumentsError(
            "SQLite cannot store text with a lone surrogate (it has no UTF-8 form)"
        )
    return e


def _pragma(conn: sqlite3.Connection, sql: str) -> Any:
    return conn.execute(sql).fetchone()[0]


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
