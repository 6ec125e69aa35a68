"""How a run's end is written: fenced by its lease, retried through store outages.

`Outcomes.record` decides what a run's `RunOutcome` becomes in the store: a release at a
graceful stop (the attempt given back), a retry after the task's backoff, or its end
(Completed, Failed, Cancelled), the ends of runs that end together shared in one
`finish_many` round trip (`GroupCommit`). Nothing is written for a run whose lease was
lost or ran out: another worker may be running the task already, and the store would
refuse the write anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from taskward.batching import GroupCommit
from taskward.errors import InvalidArgumentsError, LeaseLostError
from taskward.execution import Run, RunOutcome
from taskward.models import Status
from taskward.stores.base import Outcome, Store, TaskRecord

if TYPE_CHECKING:
    from taskward.app import App
    from taskward.leases import RunWatch

__all__ = ["Outcomes", "Written"]

logger = logging.getLogger("taskward.worker")

T = TypeVar("T")

#: What `Outcomes.record` wrote for a run: its end, a retry, or a release at a stop.
Written = Literal["completed", "failed", "cancelled", "retried", "released"]
_ENDS: dict[Status, Written] = {
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}


class Outcomes:
    """Writes the ends of one worker's runs."""

    def __init__(
        self,
        app: App,
        store: Store,
        worker_id: str,
        *,
        progress: RunWatch,
        backoff: Callable[[str, BaseException, int], Awaitable[None]],
        stop_now: Callable[[], bool],
        due: Callable[[float], None],
    ) -> None:
        self.app = app
        self.store = store
        self.worker_id = worker_id
        self.progress = progress  # a run's last progress is written before its end
        self._backoff = backoff
        self._stop_now = stop_now
        self._due = due  # told when a retry this worker wrote falls due (time.monotonic())
        # The outcomes of runs that end together: one `finish_many` round trip and commit.
        self._finisher: GroupCommit[Outcome, bool] = GroupCommit(
            store.finish_many, max_batch=500, name="taskward-finisher"
        )

    async def record(self, run: Run, outcome: RunOutcome) -> Written | None:
        """Write the outcome, fenced by the lease: retry, release, cancel, fail or complete.

        Returns what was written, or None when nothing was (the lease was lost)."""
        record = run.record
        store = self.store
        token = record.lease_token
        assert token is not None
        if run.cancel == "lost":
            return None  # another worker owns it now; anything we wrote would be refused anyway
        if time.monotonic() >= run.lease_until:
            # Stopped, stalled or cut off past the lease: another worker may run it already.
            logger.warning(
                "task %s (%s): its lease ran out before the run ended (this worker was stopped,"
                " stalled or cut off from the store); the outcome (%s) is not written, the task"
                " runs again elsewhere",
                record.id,
                record.task,
                outcome.status,
            )
            return None
        if self.progress.new_progress(run) is not None:  # most runs report none
            await self.store_call(lambda: self.progress.write_progress(run))
        write: Callable[[], Awaitable[bool]]
        retry_in: float | None = None  # a retry's delay, once it is written
        kind: Written = _ENDS.get(outcome.status, "failed")
        if run.cancel == "stop":
            kind = "released"
            logger.info("task %s (%s) released for another worker", record.id, record.task)

            def write() -> Awaitable[bool]:
                return store.requeue(record.id, token, refund_attempt=True)

        elif (
            outcome.status is Status.FAILED
            and outcome.retry
            and (record.attempts < record.max_attempts)
        ):
            fn = self.app.get_task(record.task)
            delay = fn.retry.next_delay(record.attempts)
            logger.warning(
                "task %s (%s) attempt %d/%d failed: %s; retrying in %.1fs",
                record.id,
                record.task,
                record.attempts,
                record.max_attempts,
                outcome.error,
                delay,
            )

            retry_in = delay
            kind = "retried"

            def write() -> Awaitable[bool]:
                return store.requeue(
                    record.id,
                    token,
                    delay=delay,
                    error=outcome.error,
                    traceback=outcome.traceback,
                )

        else:
            if outcome.status is Status.FAILED:
                logger.error(
                    "task %s (%s) failed for good after %d attempts: %s",
                    record.id,
                    record.task,
                    record.attempts,
                    outcome.error,
                )

            final = Outcome(
                task_id=record.id,
                token=token,
                status=outcome.status,
                result=outcome.result,
                error=outcome.error,
                traceback=outcome.traceback,
            )

            async def write() -> bool:
                [held] = await self._finisher.submit([final])
                return held

        written = await self.store_call(write)
        if written and retry_in is not None:
            # Wake up for it ourselves: counted from after the write, never before it is due.
            self._due(time.monotonic() + retry_in)
        if written is False:
            logger.warning(
                "task %s (%s): lease lost before its outcome (%s) was written; "
                "the outcome is discarded",
                record.id,
                record.task,
                outcome.status,
            )
        return kind if written else None

    async def store_call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Retry a store write through outages, with backoff, while this worker has time."""
        failures = 0
        while True:
            try:
                return await call()
            except LeaseLostError:
                return None
            except InvalidArgumentsError as exc:  # the store refused the data: no retry helps
                logger.error(
                    "worker %s: the store refused a write (%s); not retried", self.worker_id, exc
                )
                return None
            except Exception as exc:
                failures += 1
                if self._stop_now() and failures > 3:
                    logger.error("giving up a store write at stop: %s", exc)
                    return None
                await self._backoff("write", exc, failures)

    async def abandoned(self, record: TaskRecord, token: str, reason: str) -> bool:
        if reason == "stop":
            return await self.store.requeue(record.id, token, refund_attempt=True)
        if reason == "cancel":
            return await self.store.finish(
                record.id, token, Status.CANCELLED, error="cancelled; it ignored cancellation"
            )
        return False
