"""What TaskManager costs over plain asyncio, for no-op tasks. Prints one JSON object.

Two comparisons, each run in the same process so the ratio holds on a noisy machine:
- unbounded: N tasks through ``TaskManager()`` vs ``asyncio.create_task`` + ``gather``;
- bounded: N tasks through ``TaskManager(concurrency=100)`` vs an ``asyncio.Queue``
  drained by 100 consumer tasks.
It also prints the memory one finished task's record keeps (target: under 1 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from taskward import TaskManager


async def noop() -> None:
    return None


async def plain_gather(n: int) -> None:
    await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(n)])


async def manager_unbounded(n: int) -> None:
    async with TaskManager() as tm:
        for i in range(n):
            tm.submit_nowait(f"t{i}", noop)
        await tm.join()


async def plain_queue(n: int, consumers: int = 100) -> None:
    """The usual hand-written pool: a queue of jobs, consumers, task_done and join."""
    queue: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()

    async def consume() -> None:
        while True:
            _name, job = await queue.get()
            try:
                await job()
            finally:
                queue.task_done()

    workers = [asyncio.create_task(consume()) for _ in range(consumers)]
    for i in range(n):
        await queue.put((f"t{i}", noop))
    await queue.join()
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


async def manager_bounded(n: int, concurrency: int = 100) -> None:
    async with TaskManager(concurrency=concurrency) as tm:
        for i in range(n):
            await tm.submit(f"t{i}", noop)
        await tm.join()


def timed(fn: Callable[[int], Coroutine[Any, Any, None]], n: int, repeat: int) -> float:
    """Best wall time of ``repeat`` runs, each in a fresh event loop."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        asyncio.run(fn(n))
        best = min(best, time.perf_counter() - start)
    return best


def finished_record_bytes(n: int = 10_000) -> float:
    """Bytes held per finished task (its record and its name), measured with tracemalloc."""

    async def fill() -> float:
        tm = TaskManager()
        names = [f"report-{i:06d}" for i in range(n)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for name in names:
            tm.submit_nowait(name, noop)
        await tm.join()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert tm.count() == n
        await tm.shutdown()
        return (after - before) / n

    return asyncio.run(fill())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="tasks per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    opts = parser.parse_args()
    n = opts.n
    plain_u = timed(plain_gather, n, opts.repeat)
    managed_u = timed(manager_unbounded, n, opts.repeat)
    plain_b = timed(plain_queue, n, opts.repeat)
    managed_b = timed(manager_bounded, n, opts.repeat)
    result = {
        "bench": "manager_overhead",
        "tasks": n,
        "unbounded": {
            "plain_per_s": round(n / plain_u),
            "manager_per_s": round(n / managed_u),
            "ratio": round(managed_u / plain_u, 2),
        },
        "bounded_100": {
            "plain_per_s": round(n / plain_b),
            "manager_per_s": round(n / managed_b),
            "ratio": round(managed_b / plain_b, 2),
        },
        "finished_task_bytes": round(finished_record_bytes()),
        "targets": {"ratio_max": 2.0, "finished_task_bytes_max": 1024},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
