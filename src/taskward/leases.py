"""The loops that run beside a worker's claim loop for the tasks it holds.

- `RunWatch.heartbeats`: say the worker is alive, and renew the leases of its runs every
  third of the lease; a run whose lease the store says is lost is stopped.
- `RunWatch.guard`: stop the runs whose lease ran out without a renewal. Each run keeps, on
  the monotonic clock, how long its lease surely holds (counted from when the claim or the
  renewal was sent); a worker that was stopped, whose loop was blocked or that cannot reach
  the store finds out here, by the clock alone, and writes nothing for those runs.
- `RunWatch.watch`: deliver cancel requests to running tasks and write their progress.

Stopping a run is the worker's (``stop``); this module only decides which and why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from taskward.execution import Run
from taskward.models import Progress
from taskward.stores.base import Store

__all__ = ["RunWatch"]

logger = logging.getLogger("taskward.worker")


class RunWatch:
    """Keeps the leases, cancel requests and progress of one worker's runs."""

    def __init__(
        self,
        worker_id: str,
        store: Store,
        runs: dict[UUID, Run],
        *,
        lease: float,
        cancel_poll: float,
        progress_of: Callable[[str], Progress | None],
        stop: Callable[[list[Run], str], None],
        describe: Callable[[], dict[str, Any]],
    ) -> None:
        self.worker_id = worker_id
        self.store = store
        self.lease = lease
        self.cancel_poll = cancel_poll
        self._runs = runs
        self._progress_of = progress_of
        self._stop = stop
        self._describe = describe

    async def _beat(self) -> None:
        """Tell the store this worker is alive (for stats and readiness), until a lease."""
        try:
            info = json.dumps(self._describe())
            await self.store.worker_beat(self.worker_id, info, self.lease)
        except Exception as exc:
            logger.warning("worker %s: beat failed (%s)", self.worker_id, exc)

    async def heartbeats(self) -> None:
        """Say this worker is alive, then renew the leases of its runs, every third of the lease."""
        store = self.store
        while True:
            await self._beat()
            await asyncio.sleep(self.lease / 3)
            runs = [run for run in self._runs.values() if run.cancel != "lost"]
            if not runs:
                continue
            leases = [(run.record.id, run.record.lease_token or "") for run in runs]
            sent = time.monotonic()
            try:
                lost = await store.heartbeat(self.worker_id, leases, self.lease)
            except Exception as exc:
                logger.warning("worker %s: heartbeat failed (%s)", self.worker_id, exc)
                continue
            for run in runs:
                if run.record.id not in lost:
                    run.lease_until = max(run.lease_until, sent + self.lease)
            lost_runs = [self._runs[i] for i in lost if i in self._runs]
            for run in lost_runs:
                logger.warning(
                    "task %s (%s): lease lost to another worker; stopping this run",
                    run.record.id,
                    run.record.task,
                )
            if lost_runs:
                self._stop(lost_runs, "lost")

    async def guard(self) -> None:
        """Stop the runs whose lease ran out without a renewal.

        A worker that was stopped (SIGSTOP, a frozen VM), whose event loop was blocked, or
        that cannot reach the store may have lost its leases to a rescue: it stops those
        runs and writes nothing for them (the store would refuse it anyway, being fenced by
        the lease token). Only the clock is read here, so no store outage can delay it.
        """
        every = min(self.lease / 10, 0.5)
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            expired = [
                run
                for run in self._runs.values()
                if run.cancel != "lost" and not run.writing and run.lease_until <= now
            ]
            for run in expired:
                logger.warning(
                    "task %s (%s): lease not renewed for %.1fs (this worker was stopped,"
                    " stalled or cut off from the store); stopping this run, its outcome will"
                    " not be written: the task runs again elsewhere",
                    run.record.id,
                    run.record.task,
                    now - run.lease_until + self.lease,
                )
            if expired:
                self._stop(expired, "lost")

    async def watch(self) -> None:
        """Deliver cancel requests to running tasks and write pending progress."""
        store = self.store
        while True:
            await asyncio.sleep(self.cancel_poll)
            runs = [run for run in self._runs.values() if run.cancel is None and not run.writing]
            if not runs:
                continue
            try:
                for run in runs:
                    if not run.done.is_set():
                        await self.write_progress(run)
            except Exception as exc:
                logger.warning("worker %s: progress write failed (%s)", self.worker_id, exc)
            try:
                wanted = await store.cancel_requested([run.record.id for run in runs])
            except Exception as exc:
                logger.warning("worker %s: cancel watch failed (%s)", self.worker_id, exc)
                continue
            to_cancel = [run for run in runs if run.record.id in wanted]
            if to_cancel:
                for run in to_cancel:
                    logger.info("task %s (%s): cancel requested", run.record.id, run.record.task)
                self._stop(to_cancel, "cancel")

    def new_progress(self, run: Run) -> Progress | None:
        """The run's progress if it changed since the last write, else None."""
        p = self._progress_of(str(run.record.id))
        return None if p is None or p == run.progress else p

    async def write_progress(self, run: Run) -> None:
        """Write the run's progress if it changed since the last write."""
        p = self.new_progress(run)
        if p is None:
            return
        run.progress = p
        await self.store.set_progress(
            run.record.id,
            run.record.lease_token or "",
            json.dumps({"done": p.done, "total": p.total, "message": p.message}),
        )
