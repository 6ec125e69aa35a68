"""Runs calls ``fn(conn, *args)`` on one SQLite file for asyncio code: on the loop's own
connection when the write lock is free at once, else on the store's thread.

The thread (`StoreThread`) owns a connection with SQLite's busy_timeout, groups writes into
shared transactions and waits out locks, so the loop never waits for the disk or for another
process. The fast path skips it for short calls: the loop that opened the runner has a second
connection with no busy timeout, and runs a call there when ``BEGIN IMMEDIATE`` succeeds at
once (a few hundred microseconds of work, less than the hand-off to a thread costs on a
small machine). When the lock is taken, the call goes to the thread, which waits for it.
That connection never checkpoints (the fsync stays off the loop): the thread checkpoints
every so many fast commits. Calls from any other loop or thread always go to the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple, cast

from taskward.errors import StoreError
from taskward.stores.sqlite.thread import (
    RAW,
    READ,
    WRITE,
    Call,
    StoreThread,
    is_busy,
    store_error,
)

__all__ = ["Runner"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_CHECKPOINT_EVERY = 1000  # fast-path commits between two checkpoints on the thread


class Runner:
    """The connections to one SQLite file: a thread for anything that may wait, and the
    opening loop's own connection for calls that find the write lock free."""

    def __init__(self, path: str, *, busy_timeout: float, lock_wait: float) -> None:
        self.path = path
        self.thread: StoreThread | None = None
        self._busy_timeout = busy_timeout
        self._lock_wait = lock_wait
        self._fast: sqlite3.Connection | None = None  # touched only by the opening loop
        self._fast_thread = 0  # the fast path serves only the thread (loop) that opened it
        self._fast_commits = 0
        self._thread_commits = 0  # of threads closed before
        self._open_lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """Whether calls are taken."""
        return self.thread is not None

    @property
    def commits(self) -> int:
        """Write transactions committed so far, on both connections (for tests)."""
        thread = self.thread
        return self._fast_commits + self._thread_commits + (thread.commits if thread else 0)

    async def open(self, setup: Callable[[sqlite3.Connection], object]) -> None:
        """Connect, switch the file to WAL and run ``setup(conn)`` in a write transaction
        (creating the schema); on failure close again and raise. Idempotent."""
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.thread is not None:
                return
            thread = StoreThread(
                self.path, busy_timeout=self._busy_timeout, lock_wait=self._lock_wait
            )
            thread.start()
            self.thread = thread
            try:
                await self._submit(RAW, thread.open_connection, (setup,))
            except BaseException:
                self.thread = None
                thread.jobs.put(None)
                raise
            self._fast = self._open_fast()
            self._fast_thread = threading.get_ident()

    def close(self) -> Awaitable[None]:
        """Refuse new calls and close the loop's connection now; awaiting the result lets the
        thread finish the calls already queued, close its connection and stop."""
        thread, self.thread = self.thread, None
        fast, self._fast = self._fast, None
        if fast is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed from another thread
                fast.close()
        if thread is None:
            return _nothing()
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[Any] = loop.create_future()
        thread.jobs.put((loop, closed, RAW, thread.close_connection, (), None))
        thread.jobs.put(None)
        return self._join(closed, thread)

    # -- calls -------------------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """``fn(conn, *args)`` in a write transaction: on the loop's connection when the
        lock is free at once, else on the thread (perhaps grouped with other writes)."""
        fast = self._fast
        if fast is not None and threading.get_ident() == self._fast_thread:
            done, value = self._run_on_loop(fast, fn, args, write=True)
            if done:
                return cast(T, value)
        result: T = await self._submit(WRITE, fn, args)
        return result

    async def read(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """``fn(conn, *args)`` outside a transaction, on the loop's connection when it can."""
        fast = self._fast
        if fast is not None and threading.get_ident() == self._fast_thread:
            done, value = self._run_on_loop(fast, fn, args, write=False)
            if done:
                return cast(T, value)
        result: T = await self._submit(READ, fn, args)
        return result

    async def write_unless(
        self, precheck: Call | None, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> Any:
        """As `write`, but with a ``precheck`` ``(check, check_args)`` first run as a read,
        ``check(conn, *check_args)``: when it is falsy the answer is ``[]``, and the write
        lock is never asked for. A caller that often finds nothing to do (a claim on an
        idle queue) then never queues up behind the processes that are busy writing."""
        fast = self._fast
        if fast is not None and threading.get_ident() == self._fast_thread:
            if precheck is not None:
                found, wanted = self._run_on_loop(fast, *precheck, write=False)
                if found and not wanted:
                    return []
            done, value = self._run_on_loop(fast, fn, args, write=True)
            if done:
                return value
        return await self._submit(WRITE, fn, args, precheck)

    def write_on_thread(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """``fn(conn, *args)`` in a write transaction on the thread, for calls that would
        hold the loop up (a bulk insert, a prune)."""
        return self._submit(WRITE, fn, args)

    def _run_on_loop(
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
                self._fast_commits += 1
                if self._fast_commits % _CHECKPOINT_EVERY == 0:
                    self._checkpoint_soon()
        except sqlite3.Error as e:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            if is_busy(e):
                return False, None
            raise store_error(self.path, e) from e
        except BaseException as e:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            if isinstance(e, UnicodeEncodeError):
                raise store_error(self.path, e) from e
            raise
        return True, value

    # -- internals ---------------------------------------------------------------------------

    async def _join(self, closed: asyncio.Future[Any], thread: StoreThread) -> None:
        await closed
        thread.join(1.0)  # it has nothing left to do but return
        self._thread_commits += thread.commits

    def _submit(
        self,
        kind: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        precheck: Call | None = None,
    ) -> asyncio.Future[Any]:
        thread = self.thread
        if thread is None:
            raise StoreError(f"the SQLite store {self.path} is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        thread.jobs.put((loop, future, kind, fn, args, precheck))
        return future

    def _open_fast(self) -> sqlite3.Connection | None:
        """The loop's own connection, or None (then every call uses the thread)."""
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
        thread = self.thread
        if thread is not None:
            future = self._submit(RAW, thread.checkpoint, ())
            future.add_done_callback(_ignore_outcome)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as forgotten


async def _nothing() -> None:
    return None
