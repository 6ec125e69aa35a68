"""The named-task API of `TaskManager`, step by step: submit, status, progress, duplicate
names, cancel (waiting, running, and a task that ignores it), wait, failures, cleanup and
shutdown.

    python examples/named_tasks.py
"""

from __future__ import annotations

import asyncio
import logging
import time

import taskward
from taskward import TaskManager
from taskward.errors import DuplicateNameError, TaskCancelledError


async def sync_external_data(user_id: int, pages: int) -> str:
    """An async task that reports its progress."""
    for page in range(1, pages + 1):
        await asyncio.sleep(0.02)
        taskward.progress(page, pages, f"page {page} of {pages}")
    return f"user {user_id}: {pages} pages synced"


def make_thumbnail(path: str) -> str:
    """A sync (blocking) task: it runs in a thread, and checks whether it was cancelled."""
    for _ in range(5):
        if taskward.cancelled():
            return "gave up"
        time.sleep(0.01)  # stands for CPU or blocking I/O work
    return f"{path} -> thumb_{path}"


async def wait_forever() -> None:
    await asyncio.Event().wait()


async def stubborn(started: asyncio.Event) -> str:
    """Ignores the first cancellation, as badly written code sometimes does."""
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await asyncio.sleep(0.5)  # keeps going, past the grace it is given
    return "finished anyway"


async def fails() -> None:
    raise ValueError("the upstream API said no")


def show(tm: TaskManager, name: str) -> None:
    info = tm.status(name)
    if info is None:
        print(f"  {name:<12} (unknown)")
        return
    progress = "" if info.progress is None else f" progress={info.progress.message!r}"
    error = "" if info.error is None else f" error={info.error!r}"
    print(f"  {name:<12} {info.status}{progress}{error}")


async def main() -> None:
    # Two slots: a third task waits (Pending) until one is free.
    async with TaskManager(concurrency=2, grace=1.0) as tm:
        print("1. submit")
        await tm.submit("data-sync", sync_external_data, 42, pages=3)
        await tm.submit("thumbnail", make_thumbnail, "cat.png")
        await tm.submit("report", wait_forever, priority=5)
        for name in tm.names():
            show(tm, name)  # all Pending: with a concurrency bound, a slot has to take them
        await asyncio.sleep(0.01)
        print("  a moment later:")
        for name in tm.names():
            show(tm, name)  # two Running, reporting progress; "report" waits for a slot

        print("2. a name that is still Pending or Running is refused")
        try:
            await tm.submit("data-sync", sync_external_data, 7, pages=1)
        except DuplicateNameError as exc:
            print(f"  refused: {exc}")

        print("3. cancel a waiting task: Cancelled at once, it never runs")
        info = await tm.cancel("report")
        print(f"  report: {info.status}, started_at={info.started_at}")

        print("4. wait for results")
        print(f"  data-sync -> {await tm.wait('data-sync', timeout=5)!r}")
        print(f"  thumbnail -> {await tm.wait('thumbnail', timeout=5)!r}")
        show(tm, "data-sync")

        print("5. a finished name can be used again")
        await tm.submit("data-sync", sync_external_data, 43, pages=1)
        print(f"  data-sync -> {await tm.wait('data-sync', timeout=5)!r}")

        print("6. a failing task is Failed, logged, and wait() raises its exception")
        await tm.submit("import", fails)
        try:
            await tm.wait("import")
        except ValueError as exc:
            print(f"  wait raised ValueError: {exc}")
        show(tm, "import")

        print("7. cancel a running task that ignores cancellation: abandoned after the grace")
        started = asyncio.Event()
        await tm.submit("stubborn", stubborn, started)
        await started.wait()
        info = await tm.cancel("stubborn", grace=0.1)
        print(f"  stubborn: {info.status} ({info.error})")
        try:
            await tm.wait("stubborn")
        except TaskCancelledError as exc:
            print(f"  wait raised TaskCancelledError: {exc}")

        print("8. counts, and cleaning up finished tasks")
        print(f"  count={tm.count()} running={tm.running_count()} pending={tm.pending_count()}")
        removed = tm.cleanup_finished()
        print(f"  cleanup_finished() forgot {removed} tasks; count={tm.count()}")

        print("9. leaving the block shuts down: running tasks are cancelled and logged")
        await tm.submit("last", wait_forever)
    show(tm, "last")
    print("done")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
