"""The PostgreSQL connection runner: runs one statement at a time, cheaply, or says why not.

It owns the connections of a `PostgresStore`: asyncpg's pool, a held connection of its own
for single statements (with prepared statements and a watchdog instead of a timer per
statement), and dedicated connections for sessions that outlive a statement. Whether a
failed statement may be sent again is what its `Statement` declares, never guessed from its
text. Driver errors come out as taskward's: `InvalidArgumentsError` for a value the database
refuses as data, `StoreError` for the rest (an outage, which callers may try again).

Measured against about 100 us of client CPU for a whole one-row insert: asyncpg's pool
costs about 35 us per acquire and release, its per-statement timeout timer about 15 us and
its statement cache lookup a few. A loop of single statements on the held connection pays
none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from taskward.errors import InvalidArgumentsError, StoreError, TaskwardError
from taskward.stores.postgres.statements import Statement

__all__ = ["DB_ERRORS", "Runner", "affected", "close_conn"]

logger = logging.getLogger("taskward.stores.postgres")

#: What a lost or refused connection raises. (A server that ends an idle session sends its
#: error unasked; the next statement on that connection then fails with InternalClientError
#: before the pool notices the connection is gone.)
DB_ERRORS = (
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

_Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


class Runner:
    """The connections of one store, and the one way its single statements run."""

    def __init__(
        self, url: str, *, min_size: int, max_size: int, command_timeout: float | None
    ) -> None:
        self.url = url
        #: The database, for messages: never the password.
        self.where = describe(url)
        self.command_timeout = command_timeout
        self._min_size = min_size
        self._max_size = max_size
        self.pool: asyncpg.Pool[asyncpg.Record] | None = None
        # The held connection, used while no other statement uses it (see `run`), watched by
        # `_watch_held` instead of a timer per statement.
        self._held: _Conn | None = None
        self._held_busy = False
        self._held_since = 0.0  # time.monotonic() when its running statement was sent
        self._held_overdue: _Conn | None = None
        self._held_stmts: dict[str, asyncpg.prepared_stmt.PreparedStatement[asyncpg.Record]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._open_lock: asyncio.Lock | None = None

    async def open(self, check: Callable[[asyncpg.Pool[asyncpg.Record]], Awaitable[None]]) -> None:
        """Create the pool and run ``check`` on it before using it. Idempotent.

        Whatever ``check`` raises closes the pool again and propagates. A database that
        cannot be reached is a `StoreError`.
        """
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self.url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    command_timeout=self.command_timeout,
                    server_settings=self._server_settings(),
                    reset=_keep_session,
                )
            except (*DB_ERRORS, TimeoutError) as e:
                raise StoreError(f"cannot connect to {self.where}: {e}") from e
            try:
                await check(pool)
            except BaseException:
                await _close_pool(pool)
                raise
            self.pool = pool
            if self.command_timeout is not None:
                self._watchdog = asyncio.get_running_loop().create_task(self._watch_held())

    async def close(self) -> None:
        """Close every connection; statements after this are a `StoreError`."""
        pool, self.pool = self.pool, None
        held, self._held = self._held, None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if held is not None:
            await close_conn(held)
        if self._releasing:
            await asyncio.wait(self._releasing, timeout=5.0)
        if pool is not None:
            await _close_pool(pool)

    def need_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool, for work that needs a connection of its own (a transaction, a COPY)."""
        pool = self.pool
        if pool is None:
            raise StoreError(f"the PostgreSQL store for {self.where} is not open")
        return pool

    async def connect(self, *, timed: bool = True) -> _Conn:
        """A connection of its own (not from the pool), for sessions that outlive a statement.

        ``timed``: each statement gets asyncpg's ``command_timeout`` timer; the held
        connection goes without (its statements are watched by `_watch_held`).
        """
        try:
            conn: _Conn = await asyncpg.connect(
                self.url,
                command_timeout=self.command_timeout if timed else None,
                server_settings=self._server_settings(),
            )
        except DB_ERRORS as e:
            raise StoreError(f"cannot connect to {self.where}: {e}") from e
        return conn

    async def fetch(self, statement: Statement, *args: Any) -> list[asyncpg.Record]:
        """The rows of one statement (see `run`)."""
        rows: list[asyncpg.Record] = await self.run("fetch", statement, args)
        return rows

    async def fetchval(self, statement: Statement, *args: Any) -> Any:
        """The first value of one statement's first row, or None (see `run`)."""
        return await self.run("fetchval", statement, args)

    async def execute(self, statement: Statement, *args: Any) -> str:
        """The command status of one statement, such as ``UPDATE 1`` (see `run`)."""
        status: str = await self.run("execute", statement, args)
        return status

    async def run(self, method: str, statement: Statement, args: tuple[Any, ...]) -> Any:
        """Run one statement (its own transaction) by an asyncpg ``method``.

        It runs on the held connection when no other statement is using it, else on one
        from the pool. On the held connection a statement declared ``prepared`` runs as a
        prepared statement, prepared once per connection.

        Anything but an error the server sent back (a lost connection, a cancelled call, a
        statement overdue) closes the held connection in the background, after the server
        has cancelled its statement, and the next statement connects anew.

        A connection that died while idle (a restarted or failed-over server, a terminated
        session) is only found out when used: a statement that provably never reached the
        server, or one declared ``read``, is tried again on another connection, so callers
        do not see an error for what the pool mends by itself. A prepared plan made stale
        by a schema change is prepared again (the server ran nothing).
        """
        pool = self.need_pool()
        sql = statement.sql
        for attempt in range(3):
            try:
                if self._held_busy:
                    return await getattr(pool, method)(sql, *args)
                self._held_busy = True
                conn = self._held
                try:
                    if conn is None:
                        conn = await self.connect(timed=False)
                        self._held, self._held_stmts = conn, {}
                    self._held_since = time.monotonic()
                    if not statement.prepared or method == "execute":
                        return await getattr(conn, method)(sql, *args)
                    stmt = self._held_stmts.get(sql)
                    if stmt is None:
                        stmt = self._held_stmts[sql] = await conn.prepare(sql)
                    return await getattr(stmt, method)(*args)
                except BaseException as e:
                    if isinstance(e, asyncpg.PostgresError) and not isinstance(e, _LOST):
                        raise  # the server's answer: the connection is fine
                    self._drop_held(conn)
                    if conn is not None and conn is self._held_overdue:
                        raise TimeoutError(
                            f"no answer within command_timeout={self.command_timeout} s"
                        ) from None
                    raise
                finally:
                    self._held_busy = False
            except asyncpg.UniqueViolationError:
                raise  # the caller knows which name or schedule it was
            except asyncpg.InvalidCachedStatementError as e:
                self._held_stmts.pop(sql, None)
                if attempt < 2:
                    continue
                raise self.error(e) from e
            except DB_ERRORS as e:
                unsent = isinstance(e, asyncpg.exceptions.InternalClientError)
                lost = isinstance(e, _LOST) and not isinstance(e, asyncpg.CannotConnectNowError)
                if attempt < 2 and (unsent or (statement.read and lost)):
                    continue
                raise self.error(e) from e
        raise AssertionError("unreachable")

    def error(self, e: BaseException) -> TaskwardError:
        """A driver error as taskward's: refused data is the caller's, the rest an outage."""
        refused = refused_data(e)
        if refused is not None:
            return refused
        return StoreError(f"PostgreSQL error on {self.where}: {type(e).__name__}: {e}")

    def _drop_held(self, conn: _Conn | None) -> None:
        if conn is None or conn is not self._held:
            return
        self._held, self._held_stmts = None, {}
        # Closing waits out the server's cancel of a statement cut short (at most 1 s).
        task = asyncio.get_running_loop().create_task(close_conn(conn))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _watch_held(self) -> None:
        """End the held connection when its statement outlasts ``command_timeout``.

        One check every quarter of the timeout (at most every 5 s) rather than a timer per
        statement; the overdue statement fails with `StoreError` (a `TimeoutError` cause).
        """
        limit = self.command_timeout
        assert limit is not None
        while True:
            await asyncio.sleep(min(limit / 4, 5.0))
            conn = self._held
            overdue = self._held_busy and time.monotonic() - self._held_since > limit
            if conn is not None and overdue:
                logger.warning("%s: a statement outlasted %s s", self.where, limit)
                self._held_overdue = conn
                conn.terminate()

    def _server_settings(self) -> dict[str, str]:
        settings = {"jit": "off"}  # compiling plans costs more than these small queries save
        if "application_name" not in self.url:
            settings["application_name"] = "taskward"
        return settings


def affected(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1`` or ``DELETE 0``."""
    return int(status.rsplit(" ", 1)[-1])


def refused_data(e: BaseException) -> InvalidArgumentsError | None:
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


def describe(url: str) -> str:
    """The database a URL names, for messages: never its password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the PostgreSQL database"
    db = parts.path.lstrip("/") or parts.username or "postgres"
    return f"PostgreSQL database {db!r} on {host}{port}"


async def close_conn(conn: _Conn) -> None:
    """Close a connection, politely if it answers within a second."""
    try:
        await asyncio.wait_for(conn.close(), 1.0)
    except (TimeoutError, *DB_ERRORS):
        conn.terminate()


async def _close_pool(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """Close a pool, politely if its connections come back within a few seconds."""
    try:
        await asyncio.wait_for(pool.close(), 5.0)
    except (TimeoutError, *DB_ERRORS):
        pool.terminate()


async def _keep_session(conn: _Conn) -> None:
    """Skip asyncpg's reset of a connection returned to the pool (UNLISTEN, RESET ALL, ...).

    Pooled connections never keep session state: no LISTEN, advisory lock, setting or cursor
    outlives a statement (those live on dedicated connections), and a transaction left open
    is still rolled back by the pool. The reset would cost a round trip on every call.
    """
