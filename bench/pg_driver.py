"""asyncpg against psycopg 3: the same raw statements through both drivers, in one process.

    python bench/pg_driver.py [--store postgresql://user@host/db]   (prints one JSON object)

Each operation runs in a scratch database made next to the one the URL names (it needs the
CREATEDB privilege), migrated by `PostgresStore.migrate` and dropped afterwards. Before every
timed run the table is emptied (and CHECKPOINT runs where allowed), so each run starts from
the same state. The drivers take turns (asyncpg, psycopg, asyncpg, psycopg) so that noise on
the machine hits both; each reports the best of its runs (``--rounds``, 2 by default) in rows
(or round trips) per second, and the least CPU this process spent per row (in µs, under
"client_cpu_us_per_row": steadier than the rates, which swing with scheduling on a small
machine):

- insert_one: N plain one-row INSERTs, each its own commit (autocommit), awaited one by one;
- insert_bulk_executemany / insert_bulk_copy: BULK rows in one transaction, by
  ``executemany`` of the same INSERT, and by binary COPY;
- claim_loop: CLAIM Pending rows (made server-side), claimed 100 at a time by one connection
  with the store's ``FOR UPDATE SKIP LOCKED`` statement and completed by one UPDATE (each
  its own commit); every column of every claimed row is read into a dict, as a store would;
- pool_roundtrip / single_roundtrip: ``SELECT 1`` with an acquire and release of the
  driver's pool around each, and on one held connection: the gap is the pool's own cost.

Each driver runs in its best honest configuration, reported under "config": statements
prepared on first use (asyncpg always; psycopg with ``prepare_threshold=0``), autocommit,
binary COPY, binary results for psycopg's claim (asyncpg always reads binary), and no
session reset on release from asyncpg's pool (as `PostgresStore` does).
Task ids are made before the timing, so both drivers pay only for sending them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from throughput_postgres import fresh_db

from taskward.models import new_task_id

INSERT = (
    "INSERT INTO taskward_tasks (id, task, args, priority, queue, status, max_attempts,"
    " run_at, created_at) VALUES ($1, 'noop', '{}', 0, 'default', 'Pending', 3,"
    " extract(epoch FROM now()), extract(epoch FROM now()))"
)
CLAIM = (
    "WITH picked AS (SELECT seq FROM taskward_tasks WHERE status = 'Pending'"
    " AND run_at <= extract(epoch FROM now()) ORDER BY priority, run_at, seq LIMIT 100"
    " FOR UPDATE SKIP LOCKED) UPDATE taskward_tasks AS t SET status = 'Running',"
    " attempts = t.attempts + 1, started_at = extract(epoch FROM now()), worker_id = 'raw',"
    " lease_token = $1, lease_expires_at = extract(epoch FROM now()) + 30"
    " FROM picked WHERE t.seq = picked.seq RETURNING t.*"
)
FINISH = (
    "UPDATE taskward_tasks SET status = 'Completed', result = 'null',"
    " finished_at = extract(epoch FROM now()), lease_token = NULL, lease_expires_at = NULL"
    " WHERE id = ANY($1::uuid[]) AND lease_token = $2"
)
FILL = (
    "INSERT INTO taskward_tasks (id, task, args, priority, queue, status, max_attempts,"
    " run_at, created_at) SELECT gen_random_uuid(), 'noop', '{}', 0, 'default', 'Pending', 3,"
    " extract(epoch FROM now()), extract(epoch FROM now()) FROM generate_series(1, $1)"
)
SELECT_1 = "SELECT 1"
COLUMNS = (
    "id",
    "task",
    "args",
    "priority",
    "queue",
    "status",
    "max_attempts",
    "run_at",
    "created_at",
)
COPY_TYPES = ("uuid", "text", "text", "int4", "text", "text", "int4", "float8", "float8")
COPY = f"COPY taskward_tasks ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"

#: Seconds of a timed run: on the wall clock, and of this process's CPU.
Timing = tuple[float, float]
#: A timed run: it gets the scratch database's URL and returns its `Timing`.
Run = Callable[[str], Awaitable[Timing]]
#: What `alternate` reports of one (driver, op): rows per second, client CPU µs per row.
Result = tuple[int, float]


def clocks() -> Timing:
    return time.perf_counter(), time.process_time()


def since(start: Timing) -> Timing:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def pg3(statement: str) -> str:
    """The statement with psycopg's ``%s`` placeholders in place of ``$1``, ``$2``, ..."""
    assert "%" not in statement, statement
    return re.sub(r"\$\d+", "%s", statement)


async def _no_reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """asyncpg's pool reset, skipped as `PostgresStore` skips it (it costs a round trip)."""


async def _psycopg_connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0)


async def empty_table(url: str, fill: int = 0) -> None:
    """Empty the tasks table, add ``fill`` Pending rows, and checkpoint (where allowed)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE taskward_tasks RESTART IDENTITY")
        if fill:
            await conn.execute(FILL, fill)
        await conn.execute("ANALYZE taskward_tasks")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def alternate(
    base: str, runs: dict[tuple[str, str], Run], count: int, rounds: int, fill: int = 0
) -> dict[tuple[str, str], Result]:
    """Each (driver, op) run ``rounds`` times, taking turns: its best rate and CPU per row."""
    wall: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}
    async with fresh_db(base, "driver") as url:
        for _ in range(rounds):
            for key, run in runs.items():
                await empty_table(url, fill)
                seconds, cpu_seconds = await run(url)
                wall[key] = min(wall.get(key, math.inf), seconds)
                cpu[key] = min(cpu.get(key, math.inf), cpu_seconds)
    return {key: (round(count / wall[key]), round(cpu[key] / count * 1e6, 1)) for key in runs}


def timed_asyncpg(
    body: Callable[[asyncpg.Connection[asyncpg.Record]], Awaitable[None]],
) -> Run:
    """A run that times ``body`` on a new asyncpg connection (connecting is not timed)."""

    async def run(url: str) -> Timing:
        conn = await asyncpg.connect(url)
        try:
            start = clocks()
            await body(conn)
            return since(start)
        finally:
            await conn.close()

    return run


def timed_psycopg(body: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]) -> Run:
    """A run that times ``body`` on a new psycopg connection (connecting is not timed)."""

    async def run(url: str) -> Timing:
        conn = await _psycopg_connect(url)
        try:
            start = clocks()
            await body(conn)
            return since(start)
        finally:
            await conn.close()

    return run


async def bench_insert_one(base: str, n: int, rounds: int) -> dict[tuple[str, str], Result]:
    ids = [new_task_id() for _ in range(n)]
    insert_pg3 = pg3(INSERT)

    async def with_asyncpg(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        for task_id in ids:
            await conn.execute(INSERT, task_id)

    async def with_psycopg(conn: psycopg.AsyncConnection[Any]) -> None:
        cur = conn.cursor()
        for task_id in ids:
            await cur.execute(insert_pg3, (task_id,))

    runs = {
        ("asyncpg", "insert_one"): timed_asyncpg(with_asyncpg),
        ("psycopg", "insert_one"): timed_psycopg(with_psycopg),
    }
    return await alternate(base, runs, n, rounds)


async def bench_insert_bulk(base: str, n: int, rounds: int) -> dict[tuple[str, str], Result]:
    ids = [(new_task_id(),) for _ in range(n)]
    now = time.time()
    rows = [(task_id, "noop", "{}", 0, "default", "Pending", 3, now, now) for (task_id,) in ids]
    insert_pg3 = pg3(INSERT)

    async def many_asyncpg(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        async with conn.transaction():
            await conn.executemany(INSERT, ids)

    async def many_psycopg(conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.cursor().executemany(insert_pg3, ids)

    async def copy_asyncpg(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        async with conn.transaction():
            await conn.copy_records_to_table("taskward_tasks", records=rows, columns=COLUMNS)

    async def copy_psycopg(conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction(), conn.cursor().copy(COPY) as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                await copy.write_row(row)

    runs = {
        ("asyncpg", "insert_bulk_executemany"): timed_asyncpg(many_asyncpg),
        ("psycopg", "insert_bulk_executemany"): timed_psycopg(many_psycopg),
        ("asyncpg", "insert_bulk_copy"): timed_asyncpg(copy_asyncpg),
        ("psycopg", "insert_bulk_copy"): timed_psycopg(copy_psycopg),
    }
    return await alternate(base, runs, n, rounds)


async def bench_claim_loop(base: str, n: int, rounds: int) -> dict[tuple[str, str], Result]:
    claim_pg3, finish_pg3 = pg3(CLAIM), pg3(FINISH)

    def check(done: int) -> None:
        if done != n:
            raise RuntimeError(f"claim_loop finished {done} tasks of {n}")

    async def with_asyncpg(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        done = 0
        while True:
            token = uuid.uuid4().hex
            rows = [dict(r) for r in await conn.fetch(CLAIM, token)]
            if not rows:
                return check(done)
            await conn.execute(FINISH, [r["id"] for r in rows], token)
            done += len(rows)

    async def with_psycopg(conn: psycopg.AsyncConnection[Any]) -> None:
        done = 0
        cur = conn.cursor(row_factory=dict_row, binary=True)
        while True:
            token = uuid.uuid4().hex
            await cur.execute(claim_pg3, (token,))
            rows = await cur.fetchall()
            if not rows:
                return check(done)
            await cur.execute(finish_pg3, ([r["id"] for r in rows], token))
            done += len(rows)

    runs = {
        ("asyncpg", "claim_loop"): timed_asyncpg(with_asyncpg),
        ("psycopg", "claim_loop"): timed_psycopg(with_psycopg),
    }
    return await alternate(base, runs, n, rounds, fill=n)


async def bench_roundtrip(base: str, n: int, rounds: int) -> dict[tuple[str, str], Result]:
    async def pool_asyncpg(url: str) -> Timing:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=_no_reset)
        try:
            start = clocks()
            for _ in range(n):
                async with pool.acquire() as conn:
                    await conn.fetchval(SELECT_1)
            return since(start)
        finally:
            await pool.close()

    async def pool_psycopg(url: str) -> Timing:
        pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=1,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0},
        )
        await pool.open(wait=True)
        try:
            start = clocks()
            for _ in range(n):
                async with pool.connection() as conn:
                    await (await conn.execute(SELECT_1)).fetchone()
            return since(start)
        finally:
            await pool.close()

    async def single_asyncpg(conn: asyncpg.Connection[asyncpg.Record]) -> None:
        for _ in range(n):
            await conn.fetchval(SELECT_1)

    async def single_psycopg(conn: psycopg.AsyncConnection[Any]) -> None:
        for _ in range(n):
            await (await conn.execute(SELECT_1)).fetchone()

    runs = {
        ("asyncpg", "pool_roundtrip"): pool_asyncpg,
        ("psycopg", "pool_roundtrip"): pool_psycopg,
        ("asyncpg", "single_roundtrip"): timed_asyncpg(single_asyncpg),
        ("psycopg", "single_roundtrip"): timed_psycopg(single_psycopg),
    }
    return await alternate(base, runs, n, rounds)


async def server_version(base: str) -> str:
    conn = await asyncpg.connect(base)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


def configs(loop: str) -> dict[str, dict[str, Any]]:
    return {
        "asyncpg": {
            "version": asyncpg.__version__,
            "loop": loop,
            "statements": "prepared on first use (statement cache, default size 100)",
            "copy": "copy_records_to_table (binary)",
            "pool": "asyncpg.create_pool, reset on release skipped (as PostgresStore)",
        },
        "psycopg": {
            "version": psycopg.__version__,
            "impl": psycopg.pq.__impl__,
            "libpq": psycopg.pq.version(),
            "pool_version": psycopg_pool.__version__,
            "loop": loop,
            "statements": "prepare_threshold=0 (prepared on first use), autocommit=True",
            "executemany": "pipeline mode (psycopg's default)",
            "claim_results": "binary (cursor(binary=True)); text results parse slower",
            "copy": "cursor.copy(... FORMAT BINARY) with set_types and write_row",
            "pool": "psycopg_pool.AsyncConnectionPool, no check on acquire (the default)",
        },
    }


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    results: dict[tuple[str, str], Result] = {}
    results |= await bench_insert_one(opts.store, opts.n, opts.rounds)
    results |= await bench_insert_bulk(opts.store, opts.bulk, opts.rounds)
    results |= await bench_claim_loop(opts.store, opts.claim, opts.rounds)
    results |= await bench_roundtrip(opts.store, opts.roundtrips, opts.rounds)
    rates = {key: rate for key, (rate, _) in results.items()}
    ops = list(dict.fromkeys(op for _, op in results))
    out: dict[str, Any] = {"bench": "pg_driver"}
    for driver, config in configs(opts.loop).items():
        out[driver] = {op: rates[driver, op] for op in ops}
        pool_s = 1 / rates[driver, "pool_roundtrip"] - 1 / rates[driver, "single_roundtrip"]
        out[driver]["pool_overhead_us"] = round(pool_s * 1e6, 1)
        out[driver]["client_cpu_us_per_row"] = {op: results[driver, op][1] for op in ops}
        out[driver]["config"] = config
    out["ratio_psycopg_over_asyncpg"] = {
        op: round(rates["psycopg", op] / rates["asyncpg", op], 2) for op in ops
    }
    out["params"] = {
        "n": opts.n,
        "bulk": opts.bulk,
        "claim": opts.claim,
        "roundtrips": opts.roundtrips,
        "best_of": opts.rounds,
        "python": sys.version.split()[0],
        "server": await server_version(opts.store),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        default="postgresql://postgres@127.0.0.1/postgres",
        help="a server on which scratch databases can be created",
    )
    parser.add_argument("--n", type=int, default=5000, help="rows for insert_one")
    parser.add_argument("--bulk", type=int, default=100_000, help="rows for insert_bulk")
    parser.add_argument("--claim", type=int, default=20_000, help="tasks for claim_loop")
    parser.add_argument("--roundtrips", type=int, default=5000, help="SELECT 1 round trips")
    parser.add_argument("--rounds", type=int, default=2, help="runs per driver and op (best)")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (the worker runs on asyncio's; `taskward serve` on uvloop)",
    )
    opts = parser.parse_args()
    if min(opts.n, opts.bulk, opts.claim, opts.roundtrips, opts.rounds) < 1:
        parser.error("every count must be at least 1")
    if opts.loop == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        print(json.dumps(runner.run(run(opts))))


if __name__ == "__main__":
    main()
