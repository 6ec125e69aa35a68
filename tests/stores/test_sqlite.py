"""What only the SQLite store has: a schema on disk, other processes, and file locks."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from store_helpers import FakeClock, new

import taskward
from taskward.errors import (
    ConfigurationError,
    DuplicateNameError,
    InvalidArgumentsError,
    InvalidTransitionError,
    StoreError,
)
from taskward.models import Status
from taskward.stores.sqlite import SCHEMA_VERSION, SQLiteStore

CLAIMER = Path(__file__).with_name("claimer.py")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a database file that does not exist yet."""
    return tmp_path / "tasks.db"


async def test_first_open_creates_a_versioned_schema_in_wal_mode(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    [row] = await store.insert([new("kept")])
    await store.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    again = SQLiteStore(db)
    await again.open()
    try:
        assert await again.get(row.id) == row
    finally:
        await again.close()


async def test_a_newer_schema_is_refused(db: Path) -> None:
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    store = SQLiteStore(db)
    with pytest.raises(ConfigurationError, match="newer"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.get(new().id)


async def _file_of_version(db: Path, version: int) -> None:
    """A file as an older taskward left it: version 1 (tasks only), 2 (schedules without
    ``last_fired``), 3 (and the leaders table) or 4 (tasks without ``traceparent``), with
    one task, and from version 2 on a schedule that has fired."""
    store = SQLiteStore(db)
    await store.open()
    await store.insert([new("old")])
    await store.put_schedule("s", '{"task": "t", "every": 60.0}')
    await store.fire_schedule("s", None, 120.0, [])
    await store.close()
    raw = sqlite3.connect(db)
    raw.execute("ALTER TABLE tasks DROP COLUMN traceparent")
    if version < 3:
        raw.execute("DROP TABLE leaders")
    if version == 1:
        raw.execute("DROP TABLE schedules")
    elif version < 4:
        raw.execute("ALTER TABLE schedules DROP COLUMN last_fired")
    raw.execute(f"PRAGMA user_version = {version:d}")
    raw.commit()
    raw.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4])
async def test_an_older_file_is_migrated_on_open(db: Path, version: int) -> None:
    await _file_of_version(db, version)
    store = SQLiteStore(db)
    await store.open()
    try:
        old = await store.get_by_name("old")  # its tasks stay, without a trace context
        assert old is not None
        assert old.traceparent is None
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        [later] = await store.insert([dataclasses.replace(new("later"), traceparent=traceparent)])
        assert await store.get(later.id) == later
        assert later.traceparent == traceparent
        assert await store.lead("w", 10)  # the leaders table exists
        if version >= 2:
            # The cursor stays; which tick fired last was not recorded: not known.
            row = await store.get_schedule("s")
            assert row is not None
            assert (row.last_tick, row.last_fired) == (120.0, None)
        else:
            await store.put_schedule("s", '{"task": "t", "every": 60.0}')
        assert await store.fire_schedule(
            "s", 120.0 if version >= 2 else None, 180.0, [], fired=180.0
        )
        row = await store.get_schedule("s")
        assert row is not None
        assert (row.last_tick, row.last_fired) == (180.0, 180.0)
    finally:
        await store.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


async def test_a_foreign_tasks_table_is_refused(db: Path) -> None:
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE tasks (x)")
    raw.close()
    with pytest.raises(ConfigurationError, match="did not create"):
        await SQLiteStore(db).open()


async def test_a_corrupt_row_is_a_store_error(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    try:
        [row] = await store.insert([new()])
        raw = sqlite3.connect(db)
        raw.execute("UPDATE tasks SET status = 'Exploded' WHERE seq = ?", (row.seq,))
        raw.commit()
        raw.close()
        with pytest.raises(StoreError, match=r"corrupt.*Exploded"):
            await store.get(row.id)
        with pytest.raises(StoreError, match="unknown status 'Exploded'"):
            await store.counts()
        # The store itself still works.
        [other] = await store.insert([new()])
        assert await store.get(other.id) == other
    finally:
        await store.close()


async def test_close_stops_the_thread_and_refuses_calls(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    thread = store._runner.thread
    assert thread is not None
    assert thread.is_alive()
    await store.close()
    assert not thread.is_alive()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match="not open"):
        await store.insert([new()])


async def test_a_locked_database_is_waited_for_not_reported(db: Path) -> None:
    # A tiny busy_timeout makes SQLite give up at once, so the store's own retry does the work.
    store = SQLiteStore(db, busy_timeout=0.001, lock_wait=10)
    await store.open()
    try:
        raw = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        raw.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, raw.execute, ("COMMIT",))
        release.start()
        try:
            [row] = await asyncio.wait_for(store.insert([new()]), 5)
        finally:
            release.join()
            raw.close()
        assert await store.get(row.id) == row
    finally:
        await store.close()


async def test_writes_that_queue_up_share_a_transaction_but_fail_alone(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    try:
        [held] = await store.insert([new("taken")])
        raw = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        raw.execute("BEGIN IMMEDIATE")  # the store's writes queue up behind this lock
        before = store._runner.commits
        writes = asyncio.gather(
            *(store.insert([new(f"n{i}")]) for i in range(10)),
            store.insert([new("taken")]),
            store.retry(held.id),
            *(store.insert([new(f"m{i}")]) for i in range(10)),
            return_exceptions=True,
        )
        # One loop step, not a timed wait: in its first step each write tries the loop's
        # connection, finds the lock taken, and queues for the store thread.
        await asyncio.sleep(0)
        raw.execute("COMMIT")
        raw.close()
        results = await asyncio.wait_for(writes, 10)
        assert store._runner.commits - before < 10  # 20 inserts went in a few transactions
        assert isinstance(results[10], DuplicateNameError)
        assert isinstance(results[11], InvalidTransitionError)
        ok = [r for i, r in enumerate(results) if i not in (10, 11)]
        assert all(isinstance(r, list) and len(r) == 1 for r in ok)
        assert (await store.counts()).by_status()[Status.PENDING] == 21
    finally:
        await store.close()


async def test_a_database_locked_for_too_long_is_a_store_error(db: Path) -> None:
    store = SQLiteStore(db, busy_timeout=0.001, lock_wait=0.2)
    await store.open()
    raw = sqlite3.connect(db, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="stayed locked"):
            await asyncio.wait_for(store.insert([new()]), 5)
    finally:
        raw.execute("ROLLBACK")
        raw.close()
        await store.close()


async def test_another_connection_s_insert_wakes_a_waiter(db: Path) -> None:
    waiting, writing = SQLiteStore(db), SQLiteStore(db)
    await waiting.open()
    await writing.open()
    try:
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(waiting.wait_for_change(30))
        await asyncio.sleep(0.02)  # let the poller take its baseline
        assert not waiter.done()
        started = loop.time()
        await writing.insert([new()])
        await asyncio.wait_for(waiter, 2)
        assert loop.time() - started < 1.0
        assert len(await waiting.claim("w", None, 5, 30)) == 1
    finally:
        await waiting.close()
        await writing.close()


async def test_the_injected_clock_decides_what_is_due(db: Path) -> None:
    clock = FakeClock()
    store = SQLiteStore(db, clock=clock)
    await store.open()
    try:
        await store.insert([new(delay=5)])
        assert await store.claim("w", None, 1, 30) == []
        clock.advance(5)
        assert len(await store.claim("w", None, 1, 30)) == 1
    finally:
        await store.close()


@pytest.mark.slow
async def test_processes_sharing_a_file_claim_each_task_exactly_once(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    try:
        seeded = await store.insert([new(task=str(i), priority=i % 3) for i in range(400)])
        src = str(Path(taskward.__file__).parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(CLAIMER),
                str(db),
                f"proc{n}",
                "50",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            for n in range(4)
        ]
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 50)
        claimed: list[str] = []
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
            assert b"locked" not in err
            claimed.extend(out.decode().split())
        # Inserts that came after a process's last claim are still waiting: take them here.
        rest = await store.claim("parent", None, 1000, 30)
        claimed.extend(str(r.id) for r in rest)
        assert len(claimed) == len(set(claimed)) == 400 + 4 * 50
        assert {str(r.id) for r in seeded} <= set(claimed)
        totals = (await store.counts()).by_status()
        assert totals[Status.COMPLETED] == len(claimed) - len(rest)
        assert totals[Status.PENDING] == 0
    finally:
        await store.close()


async def test_text_sqlite_cannot_encode_is_invalid_arguments_not_a_crash(db: Path) -> None:
    # The App refuses lone surrogates before any store; called directly, the store says
    # "bad input" too, for writes and reads alike, and goes on working.
    store = SQLiteStore(db)
    await store.open()
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.insert([new("x\ud800")]),
            lambda: store.insert([new(), new(queue="\udcff")]),
            lambda: store.list(name="\ud800"),
            lambda: store.get_by_name("\udfff"),
            lambda: store.put_schedule("s\ud800", "{}"),
        ]
        for call in calls:
            with pytest.raises(InvalidArgumentsError, match="SQLite cannot store text with a lone"):
                await call()
        assert (await store.list()).items == []
        [row] = await store.insert([new("after")])
        assert await store.get_by_name("after") == row
    finally:
        await store.close()
