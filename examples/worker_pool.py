"""A pool of workers draining a bounded priority queue of jobs.

    python examples/worker_pool.py --jobs 30 --workers 3 --queue 5

``TaskManager(concurrency=3, max_pending=5)`` is the pool: at most 3 jobs run at once, at most
5 wait for a free worker, and waiting jobs start by priority (a lower number first), then in
the order they came. The producer first tries ``submit_nowait``; when the queue is full it
says so and waits in ``submit`` (backpressure) instead of piling jobs up in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from taskward import Status, TaskInfo, TaskManager
from taskward.errors import QueueFullError

PRIORITIES = {0: "urgent", 1: "normal", 2: "bulk"}


async def resize_image(job: int, size_kb: int) -> int:
    """A pretend job: the bigger the image, the longer it takes."""
    await asyncio.sleep(size_kb / 10_000)
    return size_kb // 4


async def run(jobs: int, workers: int, queue: int) -> int:
    started: list[str] = []
    most_running = 0
    waits = 0

    async with TaskManager(concurrency=workers, max_pending=queue) as pool:

        def watch(info: TaskInfo) -> None:
            nonlocal most_running
            if info.status is Status.RUNNING and info.name not in started:
                assert info.name is not None
                started.append(info.name)
                most_running = max(most_running, pool.running_count())

        pool.add_listener(watch)
        for job in range(jobs):
            priority = (job * 7) % 3  # a deterministic mix of urgent, normal and bulk jobs
            name = f"job-{job:02d}-{PRIORITIES[priority]}"
            size_kb = 50 + (job * 37) % 200
            try:
                pool.submit_nowait(name, resize_image, job, size_kb, priority=priority)
            except QueueFullError:
                waits += 1
                await pool.submit(name, resize_image, job, size_kb, priority=priority)
        await pool.join()

        completed = pool.names(Status.COMPLETED)
        failed = pool.names({Status.FAILED, Status.CANCELLED})
        print("start order:", " ".join(started))
        print(f"most running at once: {most_running} (workers: {workers})")
        print(f"producer waited for room: {waits} times (queue: {queue})")
        print(f"completed: {len(completed)}, failed or cancelled: {len(failed)}")
        saved = sum(info.result for name in completed if (info := pool.status(name)) is not None)
        print(f"total output: {saved} KB")
    return 0 if len(completed) == jobs else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--queue", type=int, default=5)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(opts.jobs, opts.workers, opts.queue))


if __name__ == "__main__":
    raise SystemExit(main())
