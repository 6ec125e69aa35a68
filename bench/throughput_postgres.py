"""The throughput benchmark on PostgreSQL (``bench/throughput.py --store postgresql://...``).

Each phase runs in a scratch database created next to the one the URL names (it needs the
CREATEDB privilege) and dropped afterwards; baselines are plain SQL through asyncpg on the
same schema, in the same process:

- submit_one: ``await fn.submit(...)`` one by one, against plain one-row INSERTs, each its
  own commit; the two take turns in fifty rounds;
- submit_bulk: ``fn.prepare`` (validation) of N tasks and one ``app.submit_many`` of them,
  against one ``executemany`` INSERT transaction; best of three turns each;
- process_1 / process_4: N no-op tasks run by 1 or 4 ``taskward worker`` processes (started
  idle, then the tasks arrive in one insert, whose commit starts the clock), against 1 or 4
  connections running a ``FOR UPDATE SKIP LOCKED`` claim of 100 and one completing UPDATE,
  each its own commit;
- latency: submit -> started_at of an idle worker, in this process and in another process;
- claim_depth: the latency of one claim (and its finish) through the store with 10,000 and
  with 1,000,000 tasks waiting, to show that the claim indexes keep it flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from throughput import (
    BENCH_DIR,
    latency_here,
    latency_other_process,
    make_app,
    percentiles,
    rates,
)

from taskward.models import Status, new_task_id
from taskward.stores.postgres import PostgresStore

RAW_INSERT = (
    "INSERT INTO taskward_tasks (id, task, args, priority, queue, status, max_attempts,"
    " run_at, created_at) VALUES ($1, 'noop', '{}', 0, 'default', 'Pending', 3,"
    " extract(epoch FROM now()), extract(epoch FROM now()))"
)
RAW_CLAIM = """
WITH picked AS (
    SELECT seq FROM taskward_tasks
    WHERE status = 'Pending' AND run_at <= extract(epoch FROM now())
    ORDER BY priority, run_at, seq LIMIT 100
    FOR UPDATE SKIP LOCKED
)
UPDATE taskward_tasks AS t
SET status = 'Running', attempts = t.attempts + 1, started_at = extract(epoch FROM now()),
    worker_id = 'raw', lease_token = $1, lease_expires_at = extract(epoch FROM now()) + 30
FROM picked WHERE t.seq = picked.seq
RETURNING t.id, t.args
"""
RAW_FINISH = (
    "UPDATE taskward_tasks SET status = 'Completed', result = 'null',"
    " finished_at = extract(epoch FROM now()), lease_token = NULL, lease_expires_at = NULL"
    " WHERE id = ANY($1::uuid[]) AND lease_token = $2"
)
# Two probes of the partial indexes (not a count over the table, whose scans every few ms
# would take server CPU from the workers being measured).
REMAINING = (
    "SELECT EXISTS (SELECT 1 FROM taskward_tasks WHERE status = 'Pending')"
    " OR EXISTS (SELECT 1 FROM taskward_tasks WHERE status = 'Running')"
)
COMPLETED = "SELECT count(*) FROM taskward_tasks WHERE status = 'Completed'"


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def fresh_db(base: str, tag: str) -> AsyncIterator[str]:
    """A migrated scratch database on the server ``base`` names, dropped afterwards."""
    name = f"taskward_bench_{tag}_{os.getpid()}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = _with_db(base, name)
        await PostgresStore(url).migrate()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def bench_submit_one(base: str, n: int, rounds: int = 50) -> dict[str, Any]:
    """Taskward and the raw INSERT take turns, ``n / rounds`` submits at a time, so a busy
    spell of this shared machine slows both alike rather than one of them."""
    async with fresh_db(base, "one") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        conn = await asyncpg.connect(url)
        taskward_s = raw_s = 0.0
        per_round = max(1, n // rounds)
        for _ in range(rounds):
            start = time.perf_counter()
            for i in range(per_round):
                await noop.submit(n=i)
            taskward_s += time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(per_round):
                await conn.execute(RAW_INSERT, new_task_id())
            raw_s += time.perf_counter() - start
        await conn.close()
        await app.close()
    return rates(per_round * rounds, taskward_s, raw_s)


async def bench_submit_bulk(base: str, n: int, rounds: int = 3) -> dict[str, Any]:
    """The best of ``rounds`` turns each (a machine shared with other VMs has slow spells)."""
    taskward_s = raw_s = insert_s = float("inf")
    async with fresh_db(base, "bulk") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        conn = await asyncpg.connect(url)
        for _ in range(rounds):
            start = time.perf_counter()
            rows = [noop.prepare(n=i) for i in range(n)]
            prepared = time.perf_counter()
            await app.submit_many(rows)
            end = time.perf_counter()
            taskward_s = min(taskward_s, end - start)
            insert_s = min(insert_s, end - prepared)
            ids = [(new_task_id(),) for _ in range(n)]
            start = time.perf_counter()
            async with conn.transaction():
                await conn.executemany(RAW_INSERT, ids)
            raw_s = min(raw_s, time.perf_counter() - start)
        await conn.close()
        await app.close()
    out = rates(n, taskward_s, raw_s)
    out.update(insert_only_per_s=round(n / insert_s), best_of=rounds)
    return out


async def bench_process(base: str, n: int, processes: int, concurrency: int) -> dict[str, Any]:
    async with fresh_db(base, f"proc{processes}") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        rows = [noop.prepare() for _ in range(n)]
        env = {**os.environ, "TASKWARD_DB": url, "PYTHONPATH": str(BENCH_DIR)}
        command = [sys.executable, "-m", "taskward", "worker", "throughput_app:app"]
        procs = [
            subprocess.Popen(  # noqa: ASYNC220 - started before the timing
                [*command, "--concurrency", str(concurrency)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(processes)
        ]
        conn = await asyncpg.connect(url)
        try:
            await _until_workers(conn, processes)
            await app.submit_many(rows)
            start = time.perf_counter()  # from the commit that wakes the workers
            while await conn.fetchval(REMAINING):  # noqa: ASYNC110 - the state is in another process
                await asyncio.sleep(0.005)
            taskward_s = time.perf_counter() - start
            assert await conn.fetchval(COMPLETED) == n
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            await conn.close()
        await app.close()
    async with fresh_db(base, f"raw{processes}") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        await app.submit_many([noop.prepare() for _ in range(n)])
        await app.close()
        conns = [await asyncpg.connect(url) for _ in range(processes)]
        start = time.perf_counter()
        done = sum(await asyncio.gather(*(_raw_worker(c) for c in conns)))
        raw_s = time.perf_counter() - start
        for c in conns:
            await c.close()
        assert done == n, done
    out = rates(n, taskward_s, raw_s)
    out.update(processes=processes, concurrency=concurrency)
    return out


async def _until_workers(conn: asyncpg.Connection[asyncpg.Record], count: int) -> None:
    """Wait until ``count`` worker processes have said they are alive (they are idle now)."""
    deadline = time.monotonic() + 30
    while await conn.fetchval("SELECT count(*) FROM taskward_workers") < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker processes did not start within 30 s")
        await asyncio.sleep(0.05)


async def _raw_worker(conn: asyncpg.Connection[asyncpg.Record]) -> int:
    """Claim 100 and complete them, each statement its own commit, until none is left."""
    done = 0
    while True:
        token = uuid.uuid4().hex
        rows = await conn.fetch(RAW_CLAIM, token)
        if not rows:
            return done
        await conn.execute(RAW_FINISH, [r["id"] for r in rows], token)
        done += len(rows)


async def bench_latency_here(base: str, samples: int) -> dict[str, Any]:
    async with fresh_db(base, "lat") as url:
        return await latency_here(url, samples, settle=0.5)


async def bench_latency_other_process(base: str, samples: int) -> dict[str, Any]:
    async with fresh_db(base, "latx") as url:
        return await latency_other_process(url, samples, idle=0.02)


FILL = (
    "INSERT INTO taskward_tasks (id, task, args, priority, queue, status, max_attempts,"
    " run_at, created_at)"
    " SELECT gen_random_uuid(), 'noop', '{}', i % 10, 'default', 'Pending', 3,"
    " extract(epoch FROM now()), extract(epoch FROM now()) FROM generate_series(1, $1) AS i"
)


async def bench_claim_depth(base: str, depths: list[int], claims: int = 200) -> dict[str, Any]:
    """Claim-and-finish latency of one task with ``depth`` tasks waiting, per depth."""
    out: dict[str, Any] = {}
    async with fresh_db(base, "depth") as url:
        conn = await asyncpg.connect(url)
        store = PostgresStore(url)
        await store.open()
        waiting = 0
        try:
            for depth in sorted(depths):
                await conn.execute(FILL, depth - waiting)  # server-side: fast to fill
                waiting = depth
                await conn.execute("ANALYZE taskward_tasks")
                delays = []
                for _ in range(claims):
                    start = time.perf_counter()
                    [row] = await store.claim("bench", None, 1, 30.0)
                    assert row.lease_token is not None
                    await store.finish(row.id, row.lease_token, Status.COMPLETED)
                    delays.append(time.perf_counter() - start)
                waiting -= claims
                out[f"waiting_{depth}"] = percentiles(delays)
        finally:
            await store.close()
            await conn.close()
    return out


async def run(base: str, opts: Any) -> dict[str, Any]:
    """Every phase, as one JSON-ready dict."""
    return {
        "bench": "throughput",
        "store": "postgresql",
        "driver": f"asyncpg {asyncpg.__version__}",
        "submit_one": await bench_submit_one(base, opts.n),
        "submit_bulk": await bench_submit_bulk(base, opts.bulk),
        "process_1": await bench_process(base, opts.process_n, 1, opts.worker_concurrency),
        "process_4": await bench_process(base, opts.process_n, 4, opts.worker_concurrency),
        "latency_same_process": await bench_latency_here(base, opts.samples),
        "latency_other_process": await bench_latency_other_process(base, opts.samples),
        "claim_depth": await bench_claim_depth(base, [10_000, 1_000_000]),
    }
