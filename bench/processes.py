"""CPU-bound tasks in child processes (``executor="process"``) against threads (the default
for a plain ``def``), through a real worker on SQLite. Prints one JSON object.

In one run, on one machine:
- ``cpu``: N tasks, each a fixed pure-Python loop (about 50 ms), run by one worker at its
  default settings (``--concurrency 10``), once with the thread default and once with
  ``processes`` children (default: the number of CPUs). Beside them, the raw baselines: the
  same loops one after another in this process, and in a ``multiprocessing`` pool of the same
  size (the best that many processes can do).
- ``noop``: M tasks that do nothing, in threads and in children: what a child costs per task.
- ``child``: how long a child takes to start, and its resident memory once it ran a task.

Target: ``speedup`` (threads' time / processes' time) at least 1.7 with 2 processes.

    python bench/processes.py [--tasks 40] [--noops 1000] [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from taskward.app import App
from taskward.models import Status
from taskward.worker import Worker

app = App("memory://")  # the task functions; main() runs them on a SQLite file
TASK_MS = 50.0  # what one CPU-bound task should take; `calibrate` finds its loop count


def burn(n: int) -> int:
    """A fixed pure-Python loop: holds the GIL all along."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(target_ms: float) -> int:
    """The loop count for which `burn` takes about ``target_ms`` here (best of 5 timings)."""
    n = 100_000
    best = min(_timed(n) for _ in range(5))
    return max(1, round(n * target_ms / 1000 / best))


def _timed(n: int) -> float:
    started = time.perf_counter()
    burn(n)
    return time.perf_counter() - started


@app.task(executor="thread")
def cpu_thread(n: int) -> int:
    return burn(n)


@app.task(executor="process")
def cpu_process(n: int) -> int:
    return burn(n)


@app.task(executor="thread")
def noop_thread() -> None:
    return None


@app.task(executor="process")
def noop_process() -> int:
    return os.getpid()


async def through_worker(db: str, task: str, count: int, args: dict[str, Any], procs: int) -> float:
    """Seconds from the worker's start to the last of ``count`` tasks finished (children
    started before the clock starts: a worker starts its pool as it starts)."""
    bench_app = app.with_store(db)
    async with bench_app:
        worker = Worker(bench_app, processes=procs, pruning=None, poll_interval=0.05)
        await worker.children.warm()
        fn = bench_app.tasks[task]
        await bench_app.submit_many([fn.prepare_args(args) for _ in range(count)])
        started = time.perf_counter()
        await worker.run(until_idle=True)
        elapsed = time.perf_counter() - started
        completed = (await bench_app.counts()).by_status()[Status.COMPLETED]
        store = await bench_app.connect()
        while await store.prune({Status.COMPLETED: -1.0}, limit=5000):
            pass  # the next measure starts on an empty table
    if completed != count:
        raise SystemExit(f"{task}: {completed} of {count} tasks completed")
    return elapsed


async def child_figures() -> dict[str, float]:
    """A fresh pool's first child: its start-up time and its memory after one task."""
    from taskward.children import ProcessPool

    pool = ProcessPool(1)
    started = time.perf_counter()
    await pool.warm()
    startup = time.perf_counter() - started
    [pid] = pool.pids
    await pool.close()
    return {"startup_s": round(startup, 3), "pid": pid}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def child_memory(db: str) -> float:
    """Resident MB of a child that has run one task (read while the worker still runs)."""
    bench_app = app.with_store(db)
    async with bench_app:
        worker = Worker(bench_app, processes=1, pruning=None, poll_interval=0.05)
        info = await bench_app.submit("noop_process")
        run = asyncio.create_task(worker.run())
        assert info.id is not None
        pid = await bench_app.wait(info.id, timeout=60)
        memory = rss_mb(pid)
        worker.stop()
        await run
    return memory


def raw_baselines(count: int, procs: int, loop: int) -> dict[str, float]:
    started = time.perf_counter()
    for _ in range(count):
        burn(loop)
    serial = time.perf_counter() - started
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        pool.map(burn, [1000] * procs)  # started and warm before the clock
        started = time.perf_counter()
        pool.map(burn, [loop] * count, chunksize=1)
        parallel = time.perf_counter() - started
    return {"serial_s": serial, "pool_s": parallel}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--noops", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'bench.db'}"
        loop = calibrate(TASK_MS)
        one_ms = min(_timed(loop) for _ in range(3)) * 1000
        raw = raw_baselines(opts.tasks, opts.processes, loop)
        args = {"n": loop}
        threads = await through_worker(db, "cpu_thread", opts.tasks, args, opts.processes)
        procs = await through_worker(db, "cpu_process", opts.tasks, args, opts.processes)
        noop_threads = await through_worker(db, "noop_thread", opts.noops, {}, opts.processes)
        noop_procs = await through_worker(db, "noop_process", opts.noops, {}, opts.processes)
        child = await child_figures()
        memory = await child_memory(db)
    result = {
        "bench": "processes",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "processes": opts.processes,
        "cpu": {
            "tasks": opts.tasks,
            "task_ms": round(one_ms, 1),
            "loop": loop,
            "threads_s": round(threads, 3),
            "processes_s": round(procs, 3),
            "speedup": round(threads / procs, 2),
            "raw_serial_s": round(raw["serial_s"], 3),
            "raw_pool_s": round(raw["pool_s"], 3),
            "raw_speedup": round(raw["serial_s"] / raw["pool_s"], 2),
        },
        "noop": {
            "tasks": opts.noops,
            "threads_per_s": round(opts.noops / noop_threads),
            "processes_per_s": round(opts.noops / noop_procs),
            "overhead_us_per_task": round((noop_procs - noop_threads) / opts.noops * 1e6),
        },
        "child": {"startup_s": child["startup_s"], "rss_mb": round(memory, 1)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
