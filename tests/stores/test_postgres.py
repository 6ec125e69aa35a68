"""What only the PostgreSQL store does: migrations, the database clock, claim plans,
NOTIFY between processes, transactional submit, lost connections, the maintenance leader.

The contract every store shares is in test_contract.py; this file needs a real server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from store_helpers import connection, new

from taskward.app import App
from taskward.errors import (
    ConfigurationError,
    DuplicateNameError,
    InvalidArgumentsError,
    StoreError,
)
from taskward.models import Status
from taskward.stores.base import NewTask, TaskRecord
from taskward.stores.postgres import CHANNEL, SCHEMA_VERSION, PostgresStore
from taskward.stores.postgres.migrations import MIGRATIONS
from taskward.stores.postgres.statements import QUERIES, Statement
from waiting import eventually

pytestmark = pytest.mark.postgres


@asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def woken(store: PostgresStore, timeout: float = 30.0) -> asyncio.Task[None]:
    """A task waiting for the store's next change, with its listener already connected."""
    waiter = asyncio.create_task(store.wait_for_change(timeout))
    async with connection(store.url) as admin:

        async def listening() -> bool:
            # The store's LISTEN connection, seen from the server once its LISTEN is done
            # (the store is the only one that listens on its database in these tests). Its
            # last statement is the LISTEN, or the `SELECT 1` it sends after 10 s of quiet.
            sessions: int = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state = 'idle' AND query IN ($1, 'SELECT 1')",
                f'LISTEN "{CHANNEL}"',
            )
            return sessions > 0

        await eventually(listening, timeout=5.0)
    assert not waiter.done()
    return waiter


#: A channel of the test's own, to mark a point in the order of notifications.
_MARK = "taskward_test_mark"


async def notified_so_far(probe: asyncpg.Connection[asyncpg.Record], heard: list[str]) -> list[str]:
    """What ``probe`` (listening on the store's channel into ``heard``) was sent by every
    NOTIFY committed before now.

    PostgreSQL delivers notifications in commit order: once the probe receives a mark it
    sends itself now, it has received all that came before it (no time window to wait out).
    """
    marked = asyncio.Event()

    def mark(*_: object) -> None:
        marked.set()

    await probe.add_listener(_MARK, mark)
    try:
        await probe.execute(f"NOTIFY {_MARK}")
        await asyncio.wait_for(marked.wait(), 2)
    finally:
        await probe.remove_listener(_MARK, mark)
    return list(heard)


# -- schema ----------------------------------------------------------------------------------


async def test_an_unmigrated_database_is_refused_with_advice(pg_bare_url: str) -> None:
    store = PostgresStore(pg_bare_url)
    with pytest.raises(ConfigurationError, match="run `taskward migrate`"):
        await store.open()
    assert await store.migrate() == 0
    assert await store.migrate() == SCHEMA_VERSION  # nothing left to do
    async with opened(pg_bare_url) as ready:
        [row] = await ready.insert([new()])
        assert await ready.get(row.id) == row


async def test_concurrent_migrations_apply_each_version_once(pg_bare_url: str) -> None:
    befores = await asyncio.gather(*(PostgresStore(pg_bare_url).migrate() for _ in range(4)))
    assert sorted(befores) == [0] + [SCHEMA_VERSION] * 3
    async with connection(pg_bare_url) as conn:
        versions = await conn.fetch("SELECT version FROM taskward_schema_version")
    # Each migration file's version, once and in order.
    assert [v["version"] for v in versions] == migration_versions()
    assert migration_versions()[-1] == SCHEMA_VERSION


def migration_versions() -> list[int]:
    folder = resources.files("taskward.stores").joinpath("sql", "postgres")
    names = (entry.name for entry in folder.iterdir())
    return sorted(int(name[:4]) for name in names if re.fullmatch(r"\d{4}_\w+\.sql", name))


async def test_a_version_5_database_gains_traceparent(pg_bare_url: str) -> None:
    """A database as taskward before migration 0006 left it, with a task, is refused until
    migrated; then its task reads back without a trace context and new ones keep theirs."""
    async with connection(pg_bare_url) as conn:
        await conn.execute(QUERIES["bootstrap"].sql)
        for version, script in MIGRATIONS.items():
            if version <= 5:
                await conn.execute(script)
                await conn.execute(QUERIES["record_version"].sql, version)
        await conn.execute(
            "INSERT INTO taskward_tasks (id, task, args, name, priority, queue, status,"
            " max_attempts, run_at, created_at)"
            " VALUES (gen_random_uuid(), 'send', '{}', 'old', 0, 'default', 'Pending', 3, 0, 0)"
        )
    with pytest.raises(ConfigurationError, match="run `taskward migrate`"):
        await PostgresStore(pg_bare_url).open()
    assert await PostgresStore(pg_bare_url).migrate() == 5
    async with opened(pg_bare_url) as store:
        old = await store.get_by_name("old")
        assert old is not None
        assert old.traceparent is None
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        [row] = await store.insert([dataclasses.replace(new(), traceparent=traceparent)])
        assert await store.get(row.id) == row
        assert row.traceparent == traceparent


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    async with connection(pg_url) as conn:
        await conn.execute(
            "INSERT INTO taskward_schema_version (version) VALUES ($1)", SCHEMA_VERSION + 1
        )
    with pytest.raises(ConfigurationError, match="upgrade taskward"):
        await PostgresStore(pg_url).open()
    with pytest.raises(ConfigurationError, match="upgrade taskward"):
        await PostgresStore(pg_url).migrate()


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = PostgresStore("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="cannot connect") as caught:
        await store.open()
    assert "secret" not in str(caught.value)


# -- the database clock and the claim --------------------------------------------------------


async def test_the_database_clock_sets_due_times_and_leases(pg_url: str) -> None:
    async with opened(pg_url) as store:
        before = time.time()
        now, later = await store.insert([new(task="now"), new(task="later", delay=3600)])
        assert abs(now.created_at - before) < 60  # the server runs on this host
        assert now.run_at == now.created_at
        assert later.run_at == later.created_at + 3600
        assert abs(await store.now() - time.time()) < 60
        [claimed] = await store.claim("w", None, 10, 30.0)
        assert claimed.task == "now"
        assert claimed.started_at is not None
        assert claimed.lease_expires_at == claimed.started_at + 30.0


async def test_claims_read_only_the_pending_tasks_indexes(pg_url: str) -> None:
    async with opened(pg_url) as store:
        await store.insert([new(queue=q) for q in ("a", "b", "c", "d") * 1000])
    from taskward.stores.postgres import _SQL

    head: tuple[Any, ...] = (None, "w", 30.0, 10)
    plans = {
        "claim_all": (_SQL["claim_all"], head),
        "claim_queue": (_SQL["claim_queue"], (*head, "a")),
        "claim_queues": (_SQL["claim_queues"], (*head, ["a", "b"])),
    }
    async with connection(pg_url) as conn:
        # A long history and a short backlog, as a busy system has.
        await conn.execute(
            "UPDATE taskward_tasks SET status = 'Completed', finished_at = 0 WHERE seq > 400"
        )
        await conn.execute("ANALYZE taskward_tasks")
        for name, (sql, args) in plans.items():
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
            assert "taskward_tasks_claim" in plan, (name, plan)
            assert "Seq Scan on taskward_tasks" not in plan, (name, plan)


# -- wake-ups --------------------------------------------------------------------------------


async def test_changes_in_another_process_wake_a_waiter(pg_url: str) -> None:
    async with opened(pg_url) as here, opened(pg_url) as there:
        waiter = await woken(here)
        [row] = await there.insert([new()])
        await asyncio.wait_for(waiter, 2)
        waiter = await woken(here)
        await there.request_cancel(row.id)
        await asyncio.wait_for(waiter, 2)
        waiter = await woken(here)
        await there.retry(row.id)
        await asyncio.wait_for(waiter, 2)
        # Rows written by plain SQL wake waiters too: the NOTIFY comes from a trigger.
        waiter = await woken(here)
        async with connection(pg_url) as conn:
            await conn.execute(
                "INSERT INTO taskward_tasks (id, task, args, priority, queue, status,"
                " max_attempts, run_at, created_at)"
                " VALUES (gen_random_uuid(), 'x', '{}', 0, 'default', 'Pending', 1, 0, 0)"
            )
        await asyncio.wait_for(waiter, 2)


# -- large inserts by COPY -------------------------------------------------------------------


def varied(count: int, prefix: str = "t") -> list[NewTask]:
    """Tasks with every option varying: names, delays, due times, queues, priorities."""
    return [
        new(
            f"{prefix}{i}" if i % 3 == 0 else None,
            task=f"job{i % 4}",
            args=f'{{"i": {i}}}',
            priority=i % 5 - 2,
            queue=f"q{i % 2}",
            max_attempts=1 + i % 4,
            timeout=None if i % 2 else 2.5,
            delay=float(i) if i % 7 == 1 else None,
            run_at=1e9 + i if i % 11 == 0 and i % 7 != 1 else None,
        )
        for i in range(count)
    ]


async def test_a_large_insert_goes_by_copy_and_returns_the_stored_rows(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(pg_url) as store:
        copies: list[int] = []
        copy = store._copy

        async def counted(conn: Any, tasks: Any) -> list[TaskRecord]:
            copies.append(len(tasks))
            return await copy(conn, tasks)

        monkeypatch.setattr(store, "_copy", counted)
        small = await store.insert(varied(store.copy_from - 1, "s"))
        tasks = varied(store.copy_from + 150)
        before = await store.now()
        rows = await store.insert(tasks)
        assert copies == [len(tasks)]  # the small insert did not COPY
        assert [r.id for r in rows] == [t.id for t in tasks]
        seqs = [r.seq for r in rows]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        assert seqs[0] > small[-1].seq
        for task, row in zip(tasks, rows, strict=True):
            assert row == await store.get(task.id)  # what COPY stored is what insert said
            assert row.created_at >= before
            if task.run_at is not None:
                assert row.run_at == task.run_at
            else:
                assert row.run_at == row.created_at + (task.delay or 0)
        [later] = await store.insert([new()])
        assert later.seq > seqs[-1]


async def test_a_large_insert_with_a_taken_name_inserts_nothing(pg_url: str) -> None:
    async with opened(pg_url) as store:
        await store.insert([new("t30")])
        with pytest.raises(DuplicateNameError, match="t30"):
            await store.insert(varied(store.copy_from * 2))
        assert (await store.counts()).by_status()[Status.PENDING] == 1


async def test_a_large_insert_in_the_callers_transaction_and_its_notify(pg_url: str) -> None:
    async with opened(pg_url) as store, opened(pg_url) as watcher, connection(pg_url) as conn:
        waiter = await woken(watcher)
        tr = conn.transaction()
        await tr.start()
        rolled = await store.insert(varied(store.copy_from), connection=conn)
        await tr.rollback()
        assert await store.get(rolled[0].id) is None
        assert not waiter.done()
        async with conn.transaction():
            kept = await store.insert(varied(store.copy_from), connection=conn)
        await asyncio.wait_for(waiter, 2)  # COPY fires the statement's NOTIFY trigger
        assert await store.get(kept[-1].id) == kept[-1]


async def test_concurrent_large_inserts_get_distinct_ascending_seqs(pg_url: str) -> None:
    async with opened(pg_url) as one, opened(pg_url) as two:
        batches = await asyncio.gather(
            *(store.insert([new() for _ in range(500)]) for store in (one, two, one, two))
        )
        every = [r.seq for rows in batches for r in rows]
        assert len(set(every)) == len(every) == 2000
        for rows in batches:
            assert [r.seq for r in rows] == sorted(r.seq for r in rows)
            assert rows[0] == await one.get(rows[0].id)


# -- transactional submit --------------------------------------------------------------------


async def test_a_task_submitted_in_a_transaction_exists_only_if_it_commits(pg_url: str) -> None:
    async with (
        opened(pg_url) as store,
        opened(pg_url) as watcher,
        connection(pg_url) as conn,
        connection(pg_url) as probe,
    ):
        waiter = await woken(watcher)
        heard: list[str] = []
        await probe.add_listener(CHANNEL, lambda *_: heard.append("change"))
        tr = conn.transaction()
        await tr.start()
        [rolled] = await store.insert([new("mine")], connection=conn)
        await tr.rollback()
        assert await store.get(rolled.id) is None
        assert await store.get_by_name("mine") is None

        async with conn.transaction():
            [kept] = await store.insert([new("mine")], connection=conn)
            assert await store.get(kept.id) is None  # not committed yet: nobody sees it
            # NOTIFY is delivered at commit, not before: none of the two inserts sent one yet.
            assert await notified_so_far(probe, heard) == []
            assert not waiter.done()
        await asyncio.wait_for(waiter, 2)
        got = await store.get(kept.id)
        assert got is not None
        assert (got.name, got.status) == ("mine", Status.PENDING)


async def test_a_taken_name_fails_the_callers_transaction_insert(pg_url: str) -> None:
    async with opened(pg_url) as store, connection(pg_url) as conn:
        await store.insert([new("taken")])
        with pytest.raises(DuplicateNameError, match="taken"):
            async with conn.transaction():
                await store.insert([new("free"), new("taken")], connection=conn)
        assert await store.get_by_name("free") is None


async def test_app_submit_with_a_connection(pg_url: str) -> None:
    app = App(pg_url)

    @app.task
    async def mail(to: str) -> None: ...

    try:
        async with connection(pg_url) as conn:
            tr = conn.transaction()
            await tr.start()
            dropped = await mail.submit("a@b.c", connection=conn)
            await tr.rollback()
            async with conn.transaction():
                [kept] = await app.submit_many([mail.prepare("c@d.e")], connection=conn)
                also = await app.submit(mail, to="e@f.g", connection=conn)
        assert dropped.id is not None
        assert await app.get(dropped.id) is None
        for info in (kept, also):
            assert info.id is not None
            got = await app.get(info.id)
            assert got is not None
            assert got.status is Status.PENDING
    finally:
        await app.close()


# -- outages ---------------------------------------------------------------------------------


async def terminate_all(url: str) -> int:
    """End every taskward session on the database ``url`` names (as an admin would)."""
    db = url.rsplit("/", 1)[1]
    async with connection(url) as conn:
        ended: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = 'taskward' AND pid <> pg_backend_pid()",
            db,
        )
    return ended


async def test_lost_connections_are_mended_by_the_pool_or_store_errors(pg_url: str) -> None:
    async with opened(pg_url, min_size=2, max_size=2) as store, opened(pg_url) as other:
        [row] = await store.insert([new()])
        waiter = await woken(store)
        waiter.cancel()
        assert await terminate_all(pg_url) >= 2
        answers: list[object] = []
        for _ in range(6):
            try:
                answers.append(await store.get(row.id))
            except StoreError as e:
                answers.append(e)
        assert answers[-1] == row  # the pool replaced the dead connections by itself

        # The LISTEN connection comes back too, and wakes on the next change.
        async def woke() -> bool:
            waiter = asyncio.create_task(store.wait_for_change(1.0))
            started = time.monotonic()
            await other.insert([new()])
            await waiter
            return time.monotonic() - started < 0.5

        await eventually(woke, timeout=10)


async def test_statements_share_the_held_connection_and_the_pool(pg_url: str) -> None:
    async with opened(pg_url, min_size=1, max_size=3) as store:
        rows = await store.insert([new() for _ in range(5)])
        # More statements at once than connections: one on the held, the rest pooled.
        got = await asyncio.gather(*(store.get(r.id) for r in rows * 10))
        assert got == rows * 10
        # A statement cancelled mid-flight closes the held connection in the background
        # (after the server's cancel); the statements after it run at once, on a new one.
        held = store._runner._held
        slow = asyncio.create_task(
            store._runner.execute(Statement("SELECT pg_sleep(5)", read=True))
        )
        async with connection(pg_url) as admin:

            async def sleeping() -> bool:  # the statement is running on the server
                sessions: int = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'active' AND query = 'SELECT pg_sleep(5)'"
                )
                return sessions > 0

            await eventually(sleeping, timeout=5.0)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        started = time.monotonic()
        assert await asyncio.gather(*(store.get(r.id) for r in rows)) == rows
        assert time.monotonic() - started < 2
        assert held is not None
        assert store._runner._held is not held

        async def closed() -> bool:
            return held.is_closed()

        await eventually(closed, timeout=5.0)


async def test_a_held_statement_that_outlasts_the_command_timeout_fails(pg_url: str) -> None:
    # The held connection has no timer per statement: a watchdog ends an overdue one.
    async with opened(pg_url, command_timeout=0.4) as store:
        [row] = await store.insert([new()])
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"command_timeout=0\.4") as info:
            await store._runner.execute(Statement("SELECT pg_sleep(30)", read=True))
        assert 0.4 <= time.monotonic() - started < 3
        assert isinstance(info.value.__cause__, TimeoutError)
        assert await store.get(row.id) == row  # the next statement connects anew


async def test_prepared_statements_survive_a_schema_change(pg_url: str) -> None:
    # The held connection prepares the store's statements once; a column added under it
    # makes the plans of `SELECT *` stale, which the store prepares again, unseen.
    async with opened(pg_url) as store, connection(pg_url) as admin:
        [row] = await store.insert([new()])
        assert await store.get(row.id) == row
        assert store._runner._held_stmts
        await admin.execute("ALTER TABLE taskward_tasks ADD COLUMN extra integer")
        try:
            assert await store.get(row.id) == row
            [other] = await store.insert([new()])
            assert await store.get(other.id) == other
        finally:
            await admin.execute("ALTER TABLE taskward_tasks DROP COLUMN extra")


async def test_the_maintenance_role_passes_on_on_the_database_clock(pg_url: str) -> None:
    async with opened(pg_url) as first, opened(pg_url) as second:
        assert await first.lead("first", 0.5)
        assert not await second.lead("second", 0.5)
        # A killed session neither frees the role nor keeps it: only its lease counts.
        await terminate_all(pg_url)
        assert not await lead_through_outage(second, "second", 0.5)

        async def second_leads() -> bool:
            return await lead_through_outage(second, "second", 30)

        await eventually(second_leads, timeout=0.6)  # the first's 0.5 s have run out by then
        assert not await lead_through_outage(first, "first", 30)


async def lead_through_outage(store: PostgresStore, holder: str, ttl: float) -> bool:
    """`lead`, tried again while the store reconnects after its sessions were killed."""

    async def answer() -> tuple[bool] | None:
        try:
            return (await store.lead(holder, ttl),)
        except StoreError:
            return None  # not reconnected yet

    [led] = await eventually(answer, timeout=1.0, interval=0.05)
    return led


async def test_an_expired_lease_is_rescued_on_the_database_clock(pg_url: str) -> None:
    async with opened(pg_url) as store:
        [row] = await store.insert([new()])
        [claimed] = await store.claim("w", None, 1, 0.05)
        # Nothing to rescue until the lease has run out on the database's clock.
        [rescued] = await eventually(store.rescue, timeout=0.1)
        assert (rescued.id, rescued.status) == (row.id, Status.PENDING)
        assert await store.claim("w", None, 1, 30.0) != []
        assert isinstance(claimed.id, UUID)


async def test_a_session_ended_under_the_schema_check_is_a_store_error(pg_bare_url: str) -> None:
    # A "schema version" whose read ends its own session, as an admin or a failover would.
    async with connection(pg_bare_url) as admin:
        await admin.execute(
            "CREATE FUNCTION end_me() RETURNS integer LANGUAGE sql"
            " AS $$ SELECT CASE WHEN pg_terminate_backend(pg_backend_pid()) THEN 1 END $$;"
            " CREATE VIEW taskward_schema_version AS SELECT end_me() AS version"
        )
    store = PostgresStore(pg_bare_url)
    with pytest.raises(StoreError, match="cannot read the schema version"):
        await store.open()
    await store.close()


# -- data PostgreSQL cannot hold ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("a\x00b", "PostgreSQL cannot store a NUL character"),
        ("x\ud800", "PostgreSQL cannot store text with a lone surrogate"),
    ],
)
async def test_text_postgres_cannot_hold_is_invalid_arguments_not_an_outage(
    pg_url: str, bad: str, words: str
) -> None:
    # The App refuses such text before any store; called directly, the store must still
    # answer "bad input" (422 over HTTP), never StoreError (503, which clients retry).
    async with opened(pg_url) as store:
        running = await store.insert([new("ok")])
        [claimed] = await store.claim("w1", None, 1, 30.0)
        assert claimed.lease_token is not None
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("insert one (held connection)", lambda: store.insert([new(bad)])),
            ("insert one (queue)", lambda: store.insert([new(queue=bad)])),
            ("insert a few (arrays)", lambda: store.insert([new(), new(task=bad)])),
            ("insert many (COPY)", lambda: store.insert([*varied(store.copy_from - 1), new(bad)])),
            ("list by name", lambda: store.list(name=bad)),
            ("list by queue", lambda: store.list(queue=bad)),
            ("get by name", lambda: store.get_by_name(bad)),
            ("put a schedule", lambda: store.put_schedule(bad, "{}")),
            (
                "finish with an error text",
                lambda: store.finish(
                    claimed.id, claimed.lease_token or "", Status.FAILED, error=bad
                ),
            ),
        ]
        for what, call in calls:
            with pytest.raises(InvalidArgumentsError, match=words) as caught:
                await call()
            assert not isinstance(caught.value, StoreError), what
            assert bad not in str(caught.value), what  # the value itself is never echoed
        # Nothing was half-written, and the connections are fine afterwards.
        assert [r.id for r in (await store.list()).items] == [running[0].id]
        assert (await store.insert([new("after")]))[0].name == "after"
        assert await store.get_by_name("after") is not None


async def test_other_data_errors_are_invalid_arguments_too(pg_url: str) -> None:
    async with opened(pg_url) as store:
        bad_int = Statement("SELECT $1::int", read=True)
        with pytest.raises(InvalidArgumentsError, match="PostgreSQL refused a value as invalid"):
            await store._runner.fetchval(bad_int, "not a number")  # SQLSTATE 22P02
        with pytest.raises(StoreError):  # a real server error stays a store error
            await store._runner.fetchval(Statement("SELECT * FROM no_such_table", read=True))
        assert await store._runner.fetchval(Statement("SELECT 1", read=True)) == 1
