"""The PostgreSQL connection runner on its own, against the real server: a statement that
outlasts its timeout, a session killed under a statement, a statement that never reached
the server, a prepared plan made stale by a schema change; and the statements' declarations
that decide which of these may be tried again.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from store_helpers import connection

from taskward.errors import StoreError
from taskward.stores.postgres.runner import Runner
from taskward.stores.postgres.statements import (
    QUERIES,
    SCHEDULE_QUERIES,
    Statement,
    parse_statements,
)

postgres = pytest.mark.postgres


async def _no_check(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """`Runner.open` checks nothing here: these databases need no schema."""


@asynccontextmanager
async def running(url: str, command_timeout: float | None = 60.0) -> AsyncIterator[Runner]:
    # min_size=0: the statements below run on the held connection, none wait in the pool.
    runner = Runner(url, min_size=0, max_size=2, command_timeout=command_timeout)
    await runner.open(_no_check)
    try:
        yield runner
    finally:
        await runner.close()


def held(runner: Runner) -> asyncpg.Connection[asyncpg.Record]:
    conn = runner._held
    assert conn is not None
    return conn


# -- a statement that outlasts command_timeout -----------------------------------------------


@postgres
async def test_a_statement_that_outlasts_its_timeout_ends_its_connection(pg_url: str) -> None:
    async with running(pg_url, command_timeout=0.4) as runner:
        assert await runner.fetchval(Statement("SELECT 1")) == 1
        first = held(runner)
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"command_timeout=0\.4") as info:
            await runner.execute(Statement("SELECT pg_sleep(30)", read=True))
        assert 0.4 <= time.monotonic() - started < 3
        assert isinstance(info.value.__cause__, TimeoutError)  # even a read is not re-sent
        assert await runner.fetchval(Statement("SELECT 2")) == 2
        assert held(runner) is not first  # the next statement connected anew


# -- a session killed under a statement ------------------------------------------------------

# A function whose first call ends its own session (as an admin or a failover would), and
# that counts its calls in a sequence (which no rollback undoes).
_DIES_ONCE = """
CREATE SEQUENCE calls;
CREATE FUNCTION dies_once() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint := nextval('calls');
BEGIN
    IF n = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
        PERFORM pg_sleep(5);  -- the termination lands here, mid-statement
    END IF;
    RETURN n;
END $$;
"""


@postgres
async def test_a_statement_declared_read_is_sent_again_after_its_session_is_killed(
    pg_url: str,
) -> None:
    async with connection(pg_url) as conn:
        await conn.execute(_DIES_ONCE)
    async with running(pg_url) as runner:
        assert await runner.fetchval(Statement("SELECT dies_once()", read=True)) == 2
    async with connection(pg_url) as conn:
        assert await conn.fetchval("SELECT last_value FROM calls") == 2


@postgres
async def test_an_undeclared_statement_is_not_sent_again_after_its_session_is_killed(
    pg_url: str,
) -> None:
    # Its text is a SELECT, but only the declaration counts: it might have written.
    async with connection(pg_url) as conn:
        await conn.execute(_DIES_ONCE)
    async with running(pg_url) as runner:
        with pytest.raises(StoreError, match=r"ConnectionDoesNotExistError|AdminShutdown"):
            await runner.fetchval(Statement("SELECT dies_once()"))
        async with connection(pg_url) as conn:
            assert await conn.fetchval("SELECT last_value FROM calls") == 1  # ran once
        assert await runner.fetchval(Statement("SELECT dies_once()")) == 2  # and it recovers


# -- a statement that never reached the server -----------------------------------------------


def _notice(text: str) -> bytes:
    """A NoticeResponse message of the PostgreSQL wire protocol."""
    fields = b"SNOTICE\0VNOTICE\0C00000\0M" + text.encode() + b"\0\0"
    return b"N" + struct.pack("!i", len(fields) + 4) + fields


_TERMINATE = b"X" + struct.pack("!i", 4)


class HalfClosingProxy:
    """Forwards sessions to the server, but not the server's closing of one: its last words
    (the FATAL error of a terminated session) reach the client and the connection stays
    open, the window in which a driver finds out only when it next sends a statement. A
    NOTICE follows those last words, so a test knows when they have arrived.
    """

    def __init__(self, url: str) -> None:
        self.target = urlsplit(url)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    def url(self) -> str:
        user = self.target.username or "postgres"
        return urlunsplit(self.target._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    async def __aenter__(self) -> HalfClosingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.target.hostname or "127.0.0.1", self.target.port or 5432
        up_reader, up_writer = await asyncio.open_connection(host, port)
        self._writers += [writer, up_writer]
        gone = asyncio.Event()
        goodbye = False  # the client ended the session (a Terminate message)

        async def down() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
            if goodbye:
                writer.close()
            else:
                writer.write(_notice("the server closed this session"))
                gone.set()

        async def up() -> None:
            nonlocal goodbye
            while (data := await reader.read(65536)) and not gone.is_set():
                goodbye = data == _TERMINATE
                up_writer.write(data)
            writer.close()  # the client is gone, or spoke to a session that is gone

        await asyncio.gather(down(), up(), return_exceptions=True)


@postgres
async def test_a_statement_that_never_reached_the_server_is_sent_again(pg_url: str) -> None:
    # Not declared read, and still sent again: it provably never left this process.
    async with connection(pg_url) as conn:
        await conn.execute("CREATE TABLE marks (n integer)")
    async with HalfClosingProxy(pg_url) as proxy, running(proxy.url()) as runner:
        pid = await runner.fetchval(Statement("SELECT pg_backend_pid()"))
        told = asyncio.Event()
        held(runner).add_log_listener(lambda *_: told.set())
        async with connection(pg_url) as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.wait_for(told.wait(), 5)
        dead = held(runner)
        assert not dead.is_closed()  # the driver does not know yet
        assert await runner.execute(Statement("INSERT INTO marks VALUES (1)")) == "INSERT 0 1"
        assert held(runner) is not dead
    async with connection(pg_url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM marks") == 1


# -- a prepared plan made stale ----------------------------------------------------------------


@postgres
async def test_a_stale_prepared_plan_is_prepared_again_and_runs_once(pg_url: str) -> None:
    async with connection(pg_url) as conn:
        await conn.execute("CREATE TABLE marks (n integer)")
    add = Statement("INSERT INTO marks (n) VALUES ($1) RETURNING *", prepared=True)
    read = Statement("SELECT * FROM marks ORDER BY n", prepared=True)
    async with running(pg_url) as runner, connection(pg_url) as conn:
        assert [dict(r) for r in await runner.fetch(add, 1)] == [{"n": 1}]
        assert [dict(r) for r in await runner.fetch(read)] == [{"n": 1}]
        assert set(runner._held_stmts) == {add.sql, read.sql}
        # A new column changes what "*" returns: both plans are stale now.
        await conn.execute("ALTER TABLE marks ADD COLUMN m integer")
        assert [dict(r) for r in await runner.fetch(add, 2)] == [{"n": 2, "m": None}]
        assert [dict(r) for r in await runner.fetch(read)] == [
            {"n": 1, "m": None},
            {"n": 2, "m": None},
        ]
        # The insert was sent again (the server had run nothing), and ran once.
        assert await conn.fetchval("SELECT count(*) FROM marks WHERE n = 2") == 1


@postgres
async def test_only_statements_declared_prepared_are_prepared(pg_url: str) -> None:
    plain = Statement("SELECT 1 AS one")
    prepared = Statement("SELECT 2 AS two", prepared=True)
    async with running(pg_url) as runner:
        assert await runner.fetchval(plain) == 1
        assert await runner.fetchval(prepared) == 2
        assert await runner.execute(prepared) == "SELECT 1"  # a command status: never prepared
        assert list(runner._held_stmts) == [prepared.sql]


# -- the declarations ------------------------------------------------------------------------


def test_declarations_under_the_header_are_parsed_and_left_out_of_the_sql() -> None:
    parsed = parse_statements(
        "-- name: a\n-- retry: read\n-- prepared\n-- why it is so\nSELECT 1;\n\n"
        "-- name: b\nUPDATE t SET x = 1;\n"
    )
    assert parsed == {
        "a": Statement("-- why it is so\nSELECT 1", read=True, prepared=True, name="a"),
        "b": Statement("UPDATE t SET x = 1", name="b"),
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-- name: a\n-- retry: always\nSELECT 1;", "bad declaration '-- retry: always'"),
        ("-- name: a\n-- retry\nSELECT 1;", "bad declaration '-- retry'"),
        ("-- name: a\n-- prepared: yes\nSELECT 1;", "bad declaration '-- prepared: yes'"),
        ("-- name: a\n-- prepared\n-- prepared\nSELECT 1;", "bad declaration '-- prepared'"),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "'a' is defined twice"),
        ("-- name: a\n-- prepared\n", "'a' is empty"),
    ],
)
def test_a_malformed_statement_file_is_refused(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_statements(text, "bad.sql")


def test_every_statement_declared_read_only_reads() -> None:
    # The declaration is what the runner trusts: a wrong one would send a write twice.
    statements: dict[str, Any] = {**QUERIES, **SCHEDULE_QUERIES}
    reads = {name for name, s in statements.items() if s.read}
    assert {"get", "get_by_name", "counts", "schedule_list", "count_active"} <= reads
    for name in reads:
        sql = statements[name].sql.upper()
        assert sql.startswith("SELECT"), name
        for word in ("FOR UPDATE", "FOR SHARE", "INSERT", "UPDATE ", "DELETE", "NEXTVAL"):
            assert word not in sql, (name, word)
