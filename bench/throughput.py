"""Durable-task throughput and latency, each beside a raw baseline run in the same process.

    python bench/throughput.py --store sqlite:///bench.db      (prints one JSON object)
    python bench/throughput.py --store postgresql://user@host/db  (see throughput_postgres.py)

- submit_one: ``await fn.submit(...)`` one by one (each its own commit), against plain
  one-row INSERTs with stdlib sqlite3, each its own commit, into the same schema;
- submit_bulk: ``app.submit_many`` of N prepared tasks (validation included) in one call,
  against one plain ``executemany`` INSERT transaction;
- process: N no-op tasks run by one `Worker` in this process, against a plain SQL loop that
  claims and completes one task per transaction;
- latency: submit -> started_at of an idle worker, in this process and in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskward.app import App
from taskward.models import Status, new_task_id
from taskward.worker import Worker

BENCH_DIR = Path(__file__).parent


def make_app(url: str) -> App:
    app = App(url)

    @app.task(name="noop")
    async def noop(n: int = 0) -> None:
        return None

    return app


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


@contextlib.contextmanager
def fresh_db(base: str, tag: str) -> Iterator[str]:
    """A fresh SQLite store URL next to ``base``, removed afterwards."""
    path = Path(sqlite_path(base)).with_name(f"{Path(sqlite_path(base)).stem}-{tag}.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def raw_connect(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


RAW_INSERT = (
    "INSERT INTO tasks (id, task, args, name, priority, queue, status, max_attempts, timeout,"
    " run_at, created_at) VALUES (?, 'noop', '{}', NULL, 0, 'default', 'Pending', 3, NULL, ?, ?)"
)
RAW_CLAIM = (
    "UPDATE tasks SET status = 'Running', attempts = attempts + 1, started_at = ?1,"
    " lease_token = ?2, lease_expires_at = ?1 + 30, worker_id = 'raw'"
    " WHERE seq = (SELECT seq FROM tasks WHERE queue = 'default' AND status = 'Pending'"
    " AND cancel_requested = 0"
    " AND run_at <= ?1 ORDER BY priority, run_at, seq LIMIT 1) RETURNING seq, id, args"
)
RAW_FINISH = (
    "UPDATE tasks SET status = 'Completed', finished_at = ?, result = 'null',"
    " lease_token = NULL, lease_expires_at = NULL WHERE seq = ? AND lease_token = ?"
)


async def bench_submit_one(base: str, n: int) -> dict[str, Any]:
    with fresh_db(base, "one") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        start = time.perf_counter()
        for i in range(n):
            await noop.submit(n=i)
        taskward_s = time.perf_counter() - start
        await app.close()
        conn = raw_connect(url)
        start = time.perf_counter()
        for _ in range(n):
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(RAW_INSERT, (str(new_task_id()), now, now))
            conn.execute("COMMIT")
        raw_s = time.perf_counter() - start
        conn.close()
    return rates(n, taskward_s, raw_s)


async def bench_submit_bulk(base: str, n: int) -> dict[str, Any]:
    with fresh_db(base, "bulk") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        start = time.perf_counter()
        rows = [noop.prepare(n=i) for i in range(n)]
        prepared_s = time.perf_counter() - start
        await app.submit_many(rows)
        taskward_s = time.perf_counter() - start
        await app.close()
        conn = raw_connect(url)
        now = time.time()
        params = [(str(new_task_id()), now, now) for _ in range(n)]
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_INSERT, params)
        conn.execute("COMMIT")
        raw_s = time.perf_counter() - start
        conn.close()
    out = rates(n, taskward_s, raw_s)
    out["insert_only_per_s"] = round(n / (taskward_s - prepared_s))
    return out


async def bench_process(base: str, n: int, concurrency: int) -> dict[str, Any]:
    with fresh_db(base, "proc") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        await app.submit_many([noop.prepare() for _ in range(n)])
        worker = Worker(app, concurrency=concurrency, pruning=None)
        start = time.perf_counter()
        await worker.run(until_idle=True)
        taskward_s = time.perf_counter() - start
        counts = (await app.counts()).by_status()
        assert counts[Status.COMPLETED] == n, counts
        await app.close()
    with fresh_db(base, "raw") as url:
        app = make_app(url)
        noop = app.get_task("noop")
        await app.open()
        await app.submit_many([noop.prepare() for _ in range(n)])
        await app.close()
        conn = raw_connect(url)
        start = time.perf_counter()
        done = 0
        while True:
            now = time.time()
            token = uuid.uuid4().hex
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(RAW_CLAIM, (now, token)).fetchone()
            conn.execute("COMMIT")
            if row is None:
                break
            json.loads(row[2])
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(RAW_FINISH, (time.time(), row[0], token))
            conn.execute("COMMIT")
            done += 1
        raw_s = time.perf_counter() - start
        conn.close()
        assert done == n
    out = rates(n, taskward_s, raw_s)
    out["concurrency"] = concurrency
    return out


async def latency_here(url: str, samples: int, settle: float = 0.2) -> dict[str, Any]:
    """Submit -> start of an idle worker running in this process, on the store at ``url``."""
    app = make_app(url)
    noop = app.get_task("noop")
    await app.open()
    worker = Worker(app, concurrency=4, pruning=None)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(settle)
    delays = []
    for _ in range(samples):
        sent = time.time()
        info = await noop.submit()
        assert info.id is not None
        delays.append(await started_after(app, info.id, sent))
    worker.stop()
    await running
    await app.close()
    return percentiles(delays)


async def latency_other_process(url: str, samples: int, idle: float = 0.01) -> dict[str, Any]:
    """Submit -> start of an idle ``taskward worker`` in another process, on ``url``."""
    app = make_app(url)
    noop = app.get_task("noop")
    await app.open()
    env = {**os.environ, "TASKWARD_DB": url, "PYTHONPATH": str(BENCH_DIR)}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the timing
        [sys.executable, "-m", "taskward", "worker", "throughput_app:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        warm = await noop.submit()
        assert warm.id is not None
        await app.wait(warm.id, timeout=30)
        delays = []
        for _ in range(samples):
            await asyncio.sleep(idle)  # let the worker go idle (waiting for work) again
            sent = time.time()
            info = await noop.submit()
            assert info.id is not None
            delays.append(await started_after(app, info.id, sent))
    finally:
        proc.terminate()
        proc.wait(30)
        await app.close()
    return percentiles(delays)


async def bench_latency_here(base: str, samples: int) -> dict[str, Any]:
    with fresh_db(base, "lat") as url:
        return await latency_here(url, samples)


async def bench_latency_other_process(base: str, samples: int) -> dict[str, Any]:
    with fresh_db(base, "latx") as url:
        return await latency_other_process(url, samples)


async def started_after(app: App, task_id: uuid.UUID, sent: float) -> float:
    """Seconds from ``sent`` to the task's started_at (polled from the store)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = await app.get(task_id)
        if info is not None and info.started_at is not None:
            return info.started_at.timestamp() - sent
        await asyncio.sleep(0.001)
    raise TimeoutError("the task did not start within 10 s")


def rates(n: int, taskward_s: float, raw_s: float) -> dict[str, Any]:
    return {
        "n": n,
        "taskward_per_s": round(n / taskward_s),
        "raw_per_s": round(n / raw_s),
        "ratio": round(raw_s / taskward_s, 3),
    }


def percentiles(delays: list[float]) -> dict[str, Any]:
    ms = sorted(d * 1000 for d in delays)
    return {
        "samples": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        default=None,
        help="sqlite:///path.db (default: a temp dir), or postgresql://... (a server on which"
        " scratch databases can be created)",
    )
    parser.add_argument("--n", type=int, default=5000, help="tasks for submit_one and process")
    parser.add_argument("--bulk", type=int, default=100_000, help="tasks for submit_bulk")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200, help="latency samples")
    parser.add_argument(
        "--worker-concurrency", type=int, default=50, help="slots per worker process (PostgreSQL)"
    )
    parser.add_argument(
        "--process-n", type=int, default=20_000, help="tasks for process_1/4 (PostgreSQL)"
    )
    opts = parser.parse_args()
    if opts.store and opts.store.partition("://")[0] in ("postgresql", "postgres"):
        from throughput_postgres import run

        print(json.dumps(await run(opts.store, opts)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = opts.store or f"sqlite:///{tmp}/bench.db"
        if not base.startswith("sqlite:///"):
            raise SystemExit("give --store sqlite:///path.db or --store postgresql://...")
        result = {
            "bench": "throughput",
            "store": "sqlite",
            "submit_one": await bench_submit_one(base, opts.n),
            "submit_bulk": await bench_submit_bulk(base, opts.bulk),
            "process": await bench_process(base, opts.n, opts.concurrency),
            "latency_same_process": await bench_latency_here(base, opts.samples),
            "latency_other_process": await bench_latency_other_process(base, opts.samples),
            "targets": {
                "process_per_s": 5000,
                "process_ratio": 0.4,
                "submit_one_per_s": 5000,
                "submit_bulk_per_s": 100_000,
                "other_process_p50_ms": 10,
                "other_process_p99_ms": 25,
                "same_process_p50_ms": 2,
            },
        }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
