"""The SQLite runner on its own, on a one-column table: where calls run, how queued writes
share a transaction, how a locked file is waited for, and whose loop gets which result."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskward.errors import StoreError
from taskward.retry import retry_delay
from taskward.stores.sqlite import thread as store_thread
from taskward.stores.sqlite.runner import Runner


def _schema(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)")


def _insert(conn: sqlite3.Connection, x: int) -> int:
    conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
    return x


def _insert_then_fail(conn: sqlite3.Connection, x: int) -> int:
    conn.execute("INSERT INTO t (x) VALUES (?)", (x,))
    raise ValueError(f"{x} changed its mind")


def _where(conn: sqlite3.Connection, x: int) -> int:
    """Insert ``x`` and answer the thread it ran on."""
    _insert(conn, x)
    return threading.get_ident()


def _thread_of(conn: sqlite3.Connection) -> int:
    return threading.get_ident()


def _has(conn: sqlite3.Connection, x: int) -> bool:
    return conn.execute("SELECT 1 FROM t WHERE x = ?", (x,)).fetchone() is not None


def _values(conn: sqlite3.Connection) -> list[int]:
    return [x for (x,) in conn.execute("SELECT x FROM t ORDER BY x")]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runner.db"


@pytest.fixture
async def runner(db: Path) -> AsyncIterator[Runner]:
    r = Runner(str(db), busy_timeout=5.0, lock_wait=10.0)
    await r.open(_schema)
    try:
        yield r
    finally:
        await r.close()


class _Gate:
    """A write that holds the thread inside its transaction until `release`, so that the
    calls made meanwhile queue up behind it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._go = threading.Event()

    def hold(self, conn: sqlite3.Connection) -> None:
        self.started.set()
        assert self._go.wait(5)
        _insert(conn, 0)

    def release(self) -> None:
        self._go.set()


@pytest.fixture
async def gate(runner: Runner) -> AsyncIterator[tuple[_Gate, asyncio.Future[Any]]]:
    """A `_Gate` already holding the runner's thread, and the future of its write."""
    g = _Gate()
    held = runner.write_on_thread(g.hold, ())
    assert await asyncio.to_thread(g.started.wait, 5)
    try:
        yield g, held
    finally:
        g.release()


async def test_calls_that_find_the_lock_free_run_on_the_loop(runner: Runner) -> None:
    before = runner.commits
    assert await runner.write(_where, 1) == threading.get_ident()
    assert await runner.read(_thread_of) == threading.get_ident()
    assert runner.commits == before + 1
    assert await runner.read(_values) == [1]


async def test_a_precheck_that_finds_nothing_skips_the_write(runner: Runner) -> None:
    before = runner.commits
    assert await runner.write_unless((_has, (7,)), _insert, (8,)) == []
    assert await runner.write_unless(None, _insert, (7,)) == 7
    assert await runner.write_unless((_has, (7,)), _insert, (8,)) == 8

    async def elsewhere(check: int, x: int) -> Any:
        # Another loop in another thread: never the fast path, always the store thread.
        return await runner.write_unless((_has, (check,)), _where, (x,))

    assert await asyncio.to_thread(asyncio.run, elsewhere(99, 9)) == []
    assert runner.thread is not None
    assert await asyncio.to_thread(asyncio.run, elsewhere(7, 9)) == runner.thread.ident
    assert runner.commits == before + 3  # only the writes whose check found something
    assert await runner.read(_values) == [7, 8, 9]


async def test_writers_queued_behind_the_thread_share_one_commit(
    runner: Runner, gate: tuple[_Gate, asyncio.Future[Any]]
) -> None:
    g, held = gate
    before = runner.commits
    writers = [runner.write_on_thread(_insert, (x,)) for x in range(1, 11)]
    g.release()
    assert await asyncio.wait_for(asyncio.gather(*writers), 5) == list(range(1, 11))
    await held
    assert runner.commits == before + 2  # the gate's own, then one for all ten
    assert await runner.read(_values) == list(range(11))


async def test_a_failing_writer_is_rolled_back_alone(
    runner: Runner, gate: tuple[_Gate, asyncio.Future[Any]]
) -> None:
    g, held = gate
    before = runner.commits
    writers = [
        runner.write_on_thread(_insert, (1,)),
        runner.write_on_thread(_insert_then_fail, (2,)),
        runner.write_on_thread(_insert, (3,)),
        runner.write_on_thread(_insert, (1,)),  # the same key again: SQLite refuses it
        runner.write_on_thread(_insert, (4,)),
    ]
    g.release()
    results = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 5)
    await held
    assert results[0] == 1
    assert isinstance(results[1], ValueError)  # the caller's own error, as it was raised
    assert results[2] == 3
    assert isinstance(results[3], StoreError)
    assert "UNIQUE" in str(results[3])
    assert results[4] == 4
    assert runner.commits == before + 2
    # Each failure took back only its own statements, even the one SQLite had accepted.
    assert await runner.read(_values) == [0, 1, 3, 4]


async def test_a_locked_file_sends_the_call_to_the_thread_which_backs_off(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny busy_timeout makes SQLite give up at once, so the runner's own back-off waits.
    runner = Runner(str(db), busy_timeout=0.001, lock_wait=10.0)
    await runner.open(_schema)
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    calls: list[tuple[int, dict[str, float]]] = []

    def recorded(failures: int, **kwargs: float) -> float:
        calls.append((failures, kwargs))
        if failures == 3:
            other.execute("COMMIT")  # let the fourth try through
        return retry_delay(failures, **kwargs)

    monkeypatch.setattr(store_thread, "retry_delay", recorded)
    try:
        other.execute("BEGIN IMMEDIATE")
        ran_on = await asyncio.wait_for(runner.write(_where, 1), 5)
        assert runner.thread is not None
        assert ran_on == runner.thread.ident  # the loop's connection found the lock taken
        assert calls == [(n, {"first": 0.001, "cap": 0.1, "jitter": 0.5}) for n in (1, 2, 3)]
        assert await runner.read(_values) == [1]
    finally:
        other.close()
        await runner.close()


async def test_a_file_locked_past_lock_wait_is_a_store_error(db: Path) -> None:
    runner = Runner(str(db), busy_timeout=0.001, lock_wait=0.05)
    await runner.open(_schema)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match=r"stayed locked for over 0\.05 s"):
            await asyncio.wait_for(runner.write(_insert, 1), 5)
        other.execute("ROLLBACK")
        assert await runner.write(_insert, 2) == 2  # and it goes on working
    finally:
        other.close()
        await runner.close()


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A second event loop, running in a thread of its own; in debug mode, so that a result
    handed to it from another thread is an error, not a silent race."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    thread = threading.Thread(target=loop.run_forever, name="other-loop")
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_results_go_back_to_the_loop_that_asked(
    runner: Runner,
    gate: tuple[_Gate, asyncio.Future[Any]],
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    g, held = gate
    asyncio.get_running_loop().set_debug(True)  # as the other loop: wrong-thread calls raise
    queued = threading.Event()

    async def from_the_other_loop() -> tuple[list[int], bool]:
        mine = [runner.write_on_thread(_insert, (x,)) for x in (101, 102, 103)]
        queued.set()
        values = await asyncio.gather(*mine)
        return values, all(f.get_loop() is asyncio.get_running_loop() for f in mine)

    before = runner.commits
    theirs = asyncio.run_coroutine_threadsafe(from_the_other_loop(), other_loop)
    assert await asyncio.to_thread(queued.wait, 5)
    ours = [runner.write_on_thread(_insert, (x,)) for x in (1, 2, 3)]
    g.release()
    assert await asyncio.wait_for(asyncio.gather(*ours), 5) == [1, 2, 3]
    assert await asyncio.wait_for(asyncio.wrap_future(theirs), 5) == ([101, 102, 103], True)
    await held
    assert runner.commits == before + 2  # both loops' writes shared one transaction
    assert await runner.read(_values) == [0, 1, 2, 3, 101, 102, 103]


async def test_close_lets_queued_calls_finish_and_refuses_new_ones(
    runner: Runner, gate: tuple[_Gate, asyncio.Future[Any]]
) -> None:
    g, held = gate
    queued = runner.write_on_thread(_insert, (1,))
    closing = runner.close()
    assert not runner.is_open
    with pytest.raises(StoreError, match="not open"):
        await runner.write(_insert, 2)
    g.release()
    await asyncio.wait_for(closing, 5)
    assert await queued == 1
    await held
    with sqlite3.connect(runner.path) as raw:
        assert [x for (x,) in raw.execute("SELECT x FROM t ORDER BY x")] == [0, 1]
    raw.close()
