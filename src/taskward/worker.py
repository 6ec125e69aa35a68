"""The worker: claim -> run -> heartbeat -> finish, with timeouts, retries, cancel watch,
rescue of lost leases, pruning, and a graceful stop.

One loop claims only as many tasks as it has free slots and hands each to a `TaskManager`.
Around it, three small loops: heartbeats renew the leases; a watch delivers cancel requests
(and flushes progress); maintenance rescues tasks whose worker died and prunes old ones.
Every write of an outcome is fenced by the lease token, so a worker that lost its lease
cannot overwrite a task that another worker has taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from taskward.errors import (
    InvalidArgumentsError,
    LeaseLostError,
    StoreError,
    TaskwardError,
    UnknownTaskError,
)
from taskward.leader import Leadership
from taskward.manager import Retention, TaskManager
from taskward.models import Progress, Status, read_json
from taskward.redact import mask, secret_values
from taskward.retry import retry_delay
from taskward.scheduler import run_schedules
from taskward.stores import redact_url
from taskward.stores.base import Outcome, Store, TaskRecord

if TYPE_CHECKING:
    from taskward.app import App
    from taskward.tasks import TaskFunction

__all__ = ["Pruning", "Worker"]

logger = logging.getLogger("taskward.worker")

#: Seconds a running task gets to honour a cancellation (a user's cancel, a lost lease, the
#: end of a stop's grace) before it is abandoned and its end recorded without it, so that a
#: cancel takes effect "within about a second" even for a task that ignores it.
CANCEL_GRACE = 1.0
# How soon a worker looks again for tasks of a queue that was at its own limit (`queue_limits`):
# a finished run frees a slot without any change in the store to wake the claim loop.
LIMITED_QUEUE_POLL = 0.05
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pruning:
    """How long finished tasks are kept (seconds; None keeps them), pruned in small batches."""

    completed: float | None = 86_400.0
    failed: float | None = 7 * 86_400.0
    cancelled: float | None = 7 * 86_400.0
    batch: int = 500
    every: float = 60.0

    def ages(self) -> dict[Status, float]:
        """The store's ``prune`` argument."""
        ages = {
            Status.COMPLETED: self.completed,
            Status.FAILED: self.failed,
            Status.CANCELLED: self.cancelled,
        }
        return {status: age for status, age in ages.items() if age is not None}


class _Run:
    """A claimed task this worker is running."""

    __slots__ = ("cancel", "done", "lease_until", "progress", "record", "writing")

    def __init__(self, record: TaskRecord, lease_until: float) -> None:
        self.record = record
        self.cancel: str | None = None  # why we cancel it: "cancel", "lost", "stop"
        self.progress: Progress | None = None  # as last written to the store
        self.writing = False  # the function has returned; its outcome is being written
        self.done = asyncio.Event()
        # On time.monotonic(): when the lease surely still held runs out. Counted from when
        # the claim or the last renewal was *sent*, so never later than the store's expiry.
        self.lease_until = lease_until


class Worker:
    """Runs the tasks of one `App` from its store until stopped."""

    store: Store  # the app's store, once `run` has opened it
    _finisher: _Finisher

    def __init__(
        self,
        app: App,
        *,
        queues: list[str] | None = None,
        concurrency: int = 10,
        queue_limits: Mapping[str, int] | None = None,
        lease: float | None = None,
        grace: float = 15.0,
        poll_interval: float = 0.5,
        cancel_poll: float = 0.25,
        pruning: Pruning | None = Pruning(),
        worker_id: str | None = None,
        schedule_poll: float = 1.0,
        connect_timeout: float = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {concurrency}")
        lease = float(os.environ.get("TASKWARD_LEASE", "30")) if lease is None else lease
        if not lease > 0:
            raise ValueError(f"lease must be > 0 seconds, not {lease}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, not {grace}")
        self.app = app
        self.queues = queues or None
        self.concurrency = concurrency
        self.queue_limits = _check_queue_limits(self.queues, queue_limits)
        self.lease = lease
        self.heartbeat_every = lease / 3
        self.grace = grace
        self.poll_interval = poll_interval
        self.cancel_poll = cancel_poll
        self.pruning = pruning
        self.schedule_poll = schedule_poll
        self.connect_timeout = connect_timeout
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runs: dict[UUID, _Run] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stop_now = False
        self._manager: TaskManager | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._claimer: asyncio.Task[None] | None = None
        self._waiting_for_work = False
        # When retries this worker wrote become due (time.monotonic()), soonest first: the
        # claim loop wakes for them instead of finding them at its next poll.
        self._due: list[float] = []
        self._leadership: Leadership | None = None

    # ----------------------------------------------------------------- control

    def stop(self) -> None:
        """Ask for a graceful stop; asking again stops at once (running tasks are released)."""
        if self._stopping.is_set():
            self._stop_now = True
            logger.warning("worker %s: second stop request, releasing running tasks now", self.id)
        self._stopping.set()
        self._slot_freed.set()
        if self._claimer is not None and self._waiting_for_work:
            self._claimer.cancel()  # only while it sleeps: never in the middle of a claim

    @property
    def running(self) -> int:
        """Tasks this worker is running now."""
        return len(self._runs)

    async def run(self, *, until_idle: bool = False) -> None:
        """Claim and run tasks until `stop` (or, with ``until_idle``, until none is due)."""
        store = self.store = await self._connect()
        self._finisher = _Finisher(store)
        logger.info(
            "worker %s: serving %s with %d slots on %s",
            self.id,
            ",".join(self.queues) if self.queues else "all queues",
            self.concurrency,
            redact_url(store.url),
        )
        leadership = self._leadership = Leadership(store, self.id, self.lease)
        manager = self._manager = TaskManager(
            # Unbounded: the claims bound what runs, and a run whose outcome is still being
            # written must not hold up the next one.
            concurrency=None,
            retain=Retention(max_finished=0),
        )
        helpers = [
            asyncio.create_task(self._heartbeats(), name="taskward-heartbeats"),
            asyncio.create_task(self._guard_leases(), name="taskward-lease-guard"),
            asyncio.create_task(self._watch(), name="taskward-cancel-watch"),
            asyncio.create_task(leadership.keep(), name="taskward-leadership"),
            asyncio.create_task(self._maintenance(), name="taskward-maintenance"),
            # Fires durable schedules while this process leads maintenance (taskward.scheduler).
            asyncio.create_task(
                run_schedules(
                    self.app,
                    store,
                    poll=self.schedule_poll,
                    leading=lambda: leadership.held,
                ),
                name="taskward-schedules",
            ),
        ]
        # The claim loop is a task of its own so that a stop can wake it from its sleep, and
        # so that the store's wait_for_change always sees the same waiting task.
        self._claimer = asyncio.create_task(self._claim_loop(until_idle), name="taskward-claimer")
        try:
            try:
                await self._claimer
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # run() itself was cancelled
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await manager.shutdown(grace=1.0)
            with contextlib.suppress(Exception):  # else its beat simply expires
                await store.worker_gone(self.id)
            logger.info("worker %s: stopped", self.id)

    async def _connect(self) -> Store:
        """The app's store, opened. A store that cannot be reached yet (a database still
        starting, a session ended under the schema check) is tried again with backoff, like
        every other store call, for up to ``connect_timeout`` seconds."""
        deadline = time.monotonic() + self.connect_timeout
        failures = 0
        while True:
            try:
                return await self.app.connect()
            except StoreError as exc:
                failures += 1
                if self._stopping.is_set() or time.monotonic() >= deadline:
                    raise StoreError(
                        f"the store stayed unreachable for {self.connect_timeout:g}s: {exc}"
                    ) from exc
                await self._backoff("open", exc, failures)

    async def _claim_loop(self, until_idle: bool) -> None:
        failures = 0
        while not self._stopping.is_set():
            asks, at_limit = self._asks()
            if not asks:  # every slot taken, or every queue at its own limit
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            sent = time.monotonic()
            claimed, more, error = await self._claim(asks)
            for record in claimed:  # even when a later claim failed: these are leased to us
                self._start(record, sent + self.lease)
            if error is not None:
                failures += 1
                await self._backoff("claim", error, failures)
                continue
            failures = 0
            if more:
                continue  # maybe more are due: claim again once a slot frees
            if until_idle and not claimed:
                if not self._runs:
                    return
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            # A queue at its own limit gets a slot back without a store change: look again
            # soon. (When no queue has room, the wait above is for a freed slot instead.)
            await self._wait_for_work(self._next_look(sent, at_limit))

    def _next_look(self, claimed_at: float, at_limit: bool) -> float:
        """How long the claim loop may sleep: until the poll, or a retry of ours falls due.

        Retries due by ``claimed_at`` were due for the claim made then: forgotten.
        """
        due = self._due
        while due and due[0] <= claimed_at:
            heapq.heappop(due)
        wait = LIMITED_QUEUE_POLL if at_limit else self.poll_interval
        if due:
            wait = min(wait, max(due[0] - time.monotonic(), 0.0))
        return wait

    def _asks(self) -> tuple[list[tuple[list[str] | None, int]], bool]:
        """The claims to make now, (queues, how many), within the free slots and the limits;
        and whether a queue is at its own limit.

        Queues with a limit of their own come first (each claimed on its own, up to its free
        slots), then the others together, with what is left.
        """
        free = self.concurrency - self._busy()
        if free <= 0:
            return [], False
        if not self.queue_limits:
            return [(self.queues, free)], False
        running: dict[str, int] = {}
        for run in self._runs.values():
            if not run.writing:
                queue = run.record.queue
                running[queue] = running.get(queue, 0) + 1
        asks: list[tuple[list[str] | None, int]] = []
        at_limit = False
        for queue, limit in self.queue_limits.items():
            room = limit - running.get(queue, 0)
            at_limit = at_limit or room <= 0
            if room > 0 and free > 0:
                asks.append(([queue], min(free, room)))
                free -= min(free, room)
        others = [q for q in self.queues or () if q not in self.queue_limits]
        if others and free > 0:
            asks.append((others, free))
        return asks, at_limit

    async def _claim(
        self, asks: list[tuple[list[str] | None, int]]
    ) -> tuple[list[TaskRecord], bool, Exception | None]:
        """Make the claims: what they got, whether one got all it asked for (more may be
        due), and the error that stopped them, if one did."""
        claimed: list[TaskRecord] = []
        more = False
        for queues, n in asks:
            try:
                got = await self.store.claim(self.id, queues, n, self.lease)
            except Exception as exc:
                return claimed, more, exc
            claimed.extend(got)
            more = more or len(got) == n
        return claimed, more, None

    async def _wait_for_work(self, timeout: float) -> None:
        """Sleep until the store signals a change, ``timeout`` passes, or a stop."""
        self._waiting_for_work = True
        try:
            await self.store.wait_for_change(timeout)
        finally:
            self._waiting_for_work = False

    async def _drain(self) -> None:
        """Graceful stop: no more claims; let runs finish within the grace, release the rest."""
        if not self._runs:
            return
        if not self._stop_now:
            logger.info(
                "worker %s: stopping, waiting up to %.1fs for %d running tasks",
                self.id,
                self.grace,
                len(self._runs),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_done(stop_now_breaks=True), self.grace)
        running = [run for run in self._runs.values() if not run.writing]
        if running:
            logger.warning("worker %s: releasing %d tasks still running", self.id, len(running))
            await self._cancel_runs(running, "stop")
        # Outcomes still being written are let finish: cancelling them would run a task twice.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_done(stop_now_breaks=False), CANCEL_GRACE * 5)

    async def _all_done(self, stop_now_breaks: bool) -> None:
        while self._runs and not (stop_now_breaks and self._stop_now):
            self._slot_freed.clear()
            await self._slot_freed.wait()

    # ----------------------------------------------------------------- one task

    def _start(self, record: TaskRecord, lease_until: float) -> None:
        run = _Run(record, lease_until)
        self._runs[record.id] = run
        assert self._manager is not None
        self._manager.submit_nowait(str(record.id), self._execute, run)

    def _busy(self) -> int:
        """Slots taken: runs whose function has not returned yet."""
        return sum(1 for run in self._runs.values() if not run.writing)

    async def _execute(self, run: _Run) -> None:
        record = run.record
        try:
            outcome = await self._call(run)
            # The slot is free as soon as the function returns: the next claim overlaps
            # with this outcome's write (the run stays leased and heartbeated until then).
            run.writing = True
            self._slot_freed.set()
            await self._record_outcome(run, outcome)
        finally:
            self._runs.pop(record.id, None)  # gone already if it was abandoned
            run.done.set()
            self._slot_freed.set()

    async def _call(self, run: _Run) -> _Outcome:
        """Run the task function; return what happened, never raise (but a stop)."""
        record = run.record
        try:
            fn = self.app.get_task(record.task)
        except UnknownTaskError:
            return _Outcome.fatal(
                f"unknown task {record.task!r}: no task function of that name is registered "
                "in this worker's app"
            )
        args: Any = None
        try:
            args = read_json(record.args)
            if not isinstance(args, dict):
                raise TypeError(f"arguments must be a JSON object, not {type(args).__name__}")
            kwargs = fn.validate_json_args(args)
        except Exception as exc:  # any row at all: RecursionError for a too deeply nested one
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, RecursionError):
                reason = "nested too deeply to be decoded"
            elif isinstance(args, dict):  # a validation error may quote a secret's value
                reason = mask(reason, secret_values(args, fn.secrets))
            return _Outcome.fatal(f"the stored arguments cannot be used: {reason}")
        try:
            if record.timeout is None:  # most tasks: no timeout context to set up
                result = await _invoke(fn, kwargs)
            else:
                async with asyncio.timeout(record.timeout):
                    result = await _invoke(fn, kwargs)
        except asyncio.CancelledError:
            if run.cancel is None:
                raise  # not ours: let it stop the worker
            return _Outcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
        except TimeoutError as exc:
            if run.cancel is not None:
                return _Outcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
            secrets = secret_values(args, fn.secrets)
            return _Outcome.failure(exc, f"timed out after {record.timeout}s", secrets)
        except Exception as exc:
            if run.cancel is not None:
                return _Outcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
            # The error and traceback are stored and logged: the secrets' values go.
            return _Outcome.failure(exc, secrets=secret_values(args, fn.secrets))
        if run.cancel is not None:
            # It swallowed our cancellation and returned: a cancel asked for stays a cancel
            # (as in TaskManager), rather than turning into Completed.
            return _Outcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
        try:
            return _Outcome(Status.COMPLETED, result=fn.dump_result(result))
        except (ValueError, TypeError, TaskwardError) as exc:
            message = f"the result cannot be stored as JSON: {exc}"
            return _Outcome.fatal(mask(message, secret_values(args, fn.secrets)))

    async def _record_outcome(self, run: _Run, outcome: _Outcome) -> None:
        """Write the outcome, fenced by the lease: retry, release, cancel, fail or complete."""
        record = run.record
        store = self.store
        token = record.lease_token
        assert token is not None
        if run.cancel == "lost":
            return  # another worker owns it now; anything we wrote would be refused anyway
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
            return
        if self._new_progress(run) is not None:  # most runs report none
            await self._store_call(lambda: self._write_progress(run))
        write: Callable[[], Awaitable[bool]]
        write_retry = False
        delay = 0.0
        if run.cancel == "stop":
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

            write_retry = True

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

            def write() -> Awaitable[bool]:
                return self._finisher.finish(final)

        written = await self._store_call(write)
        if written and write_retry:
            # Wake up for it ourselves: counted from after the write, never before it is due.
            heapq.heappush(self._due, time.monotonic() + delay)
        if written is False:
            logger.warning(
                "task %s (%s): lease lost before its outcome (%s) was written; "
                "the outcome is discarded",
                record.id,
                record.task,
                outcome.status,
            )

    async def _store_call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Retry a store write through outages, with backoff, while this worker has time."""
        failures = 0
        while True:
            try:
                return await call()
            except LeaseLostError:
                return None
            except InvalidArgumentsError as exc:  # the store refused the data: no retry helps
                logger.error("worker %s: the store refused a write (%s); not retried", self.id, exc)
                return None
            except Exception as exc:
                failures += 1
                if self._stop_now and failures > 3:
                    logger.error("giving up a store write at stop: %s", exc)
                    return None
                await self._backoff("write", exc, failures)

    async def _backoff(self, what: str, exc: BaseException, failures: int) -> None:
        delay = retry_delay(failures, first=0.1, cap=5.0)
        log = logger.warning if failures < 5 else logger.error
        log("worker %s: store %s failed (%s); retrying in %.2fs", self.id, what, exc, delay)
        await asyncio.sleep(delay)

    async def _cancel_runs(self, runs: list[_Run], reason: str) -> None:
        manager = self._manager
        assert manager is not None
        for run in runs:
            run.cancel = run.cancel or reason
        results = await asyncio.gather(
            *(manager.cancel(str(run.record.id), grace=CANCEL_GRACE) for run in runs),
            return_exceptions=True,
        )
        for run, info in zip(runs, results, strict=True):
            if run.done.is_set() or isinstance(info, BaseException):
                continue
            # The run ignored cancellation and was abandoned: write its end ourselves.
            record = run.record
            token = record.lease_token or ""
            self._runs.pop(record.id, None)
            self._slot_freed.set()
            await self._store_call(functools.partial(self._write_abandoned, record, token, reason))

    async def _write_abandoned(self, record: TaskRecord, token: str, reason: str) -> bool:
        if reason == "stop":
            return await self.store.requeue(record.id, token, refund_attempt=True)
        if reason == "cancel":
            return await self.store.finish(
                record.id, token, Status.CANCELLED, error="cancelled; it ignored cancellation"
            )
        return False

    # ----------------------------------------------------------------- helper loops

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _beat(self) -> None:
        """Tell the store this worker is alive (for stats and readiness), until a lease."""
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "queue_limits": self.queue_limits or None,
            "concurrency": self.concurrency,
            "running": len(self._runs),
        }
        try:
            await self.store.worker_beat(self.id, json.dumps(info), self.lease)
        except Exception as exc:
            logger.warning("worker %s: beat failed (%s)", self.id, exc)

    async def _heartbeats(self) -> None:
        store = self.store
        while True:
            await self._beat()
            await asyncio.sleep(self.heartbeat_every)
            runs = [run for run in self._runs.values() if run.cancel != "lost"]
            if not runs:
                continue
            leases = [(run.record.id, run.record.lease_token or "") for run in runs]
            sent = time.monotonic()
            try:
                lost = await store.heartbeat(self.id, leases, self.lease)
            except Exception as exc:
                logger.warning("worker %s: heartbeat failed (%s)", self.id, exc)
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
                self._spawn(self._cancel_runs(lost_runs, "lost"))

    async def _guard_leases(self) -> None:
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
                self._spawn(self._cancel_runs(expired, "lost"))

    async def _watch(self) -> None:
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
                        await self._write_progress(run)
            except Exception as exc:
                logger.warning("worker %s: progress write failed (%s)", self.id, exc)
            try:
                wanted = await store.cancel_requested([run.record.id for run in runs])
            except Exception as exc:
                logger.warning("worker %s: cancel watch failed (%s)", self.id, exc)
                continue
            to_cancel = [run for run in runs if run.record.id in wanted]
            if to_cancel:
                for run in to_cancel:
                    logger.info("task %s (%s): cancel requested", run.record.id, run.record.task)
                self._spawn(self._cancel_runs(to_cancel, "cancel"))

    async def _maintenance(self) -> None:
        """Rescue tasks whose lease expired; prune old finished tasks in small batches.

        Only while this worker holds the maintenance role (`Leadership`), checked before
        each step: when the leader dies or stalls, another takes over within a lease.
        """
        store = self.store
        leadership = self._leadership
        assert leadership is not None
        rescue_every = min(self.lease / 3, 5.0)
        since_prune = float("inf")
        while True:
            try:
                leading = leadership.held
                for record in await store.rescue(leader=self.id) if leading else []:
                    logger.warning(
                        "task %s (%s): its worker was lost (lease expired); now %s",
                        record.id,
                        record.task,
                        record.status,
                    )
                if leading and self.pruning is not None and since_prune >= self.pruning.every:
                    since_prune = 0.0
                    ages = self.pruning.ages()
                    batch = self.pruning.batch
                    # Small batches, with a pause between, so other writers get their turn.
                    for _ in range(100):
                        if not (ages and leadership.held) or await store.prune(ages, batch) < batch:
                            break
                        await asyncio.sleep(0.05)
            except Exception as exc:
                logger.warning("worker %s: maintenance failed (%s)", self.id, exc)
            await asyncio.sleep(rescue_every)
            since_prune += rescue_every

    def _new_progress(self, run: _Run) -> Progress | None:
        """The run's progress if it changed since the last write, else None."""
        assert self._manager is not None
        p = self._manager.progress_of(str(run.record.id))
        return None if p is None or p == run.progress else p

    async def _write_progress(self, run: _Run) -> None:
        """Write the run's progress if it changed since the last write."""
        p = self._new_progress(run)
        if p is None:
            return
        run.progress = p
        await self.store.set_progress(
            run.record.id,
            run.record.lease_token or "",
            json.dumps({"done": p.done, "total": p.total, "message": p.message}),
        )


def _check_queue_limits(
    queues: list[str] | None, limits: Mapping[str, int] | None
) -> dict[str, int]:
    """The per-queue limits, checked: each names a served queue and is a positive int."""
    if not limits:
        return {}
    if queues is None:
        raise ValueError(
            "per-queue limits need the queues listed: a worker that serves every queue"
            " cannot leave the limited ones out of its other claims"
        )
    out: dict[str, int] = {}
    for queue, limit in limits.items():
        if queue not in queues:
            raise ValueError(f"queue {queue!r} has a limit but is not among the served {queues}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the limit of queue {queue!r} must be an integer >= 1, not {limit!r}")
        out[queue] = limit
    return out


def _invoke(fn: TaskFunction[Any, Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
    """The task function's call: a coroutine, or a thread for a plain function."""
    if fn.is_async:
        return fn.fn(**kwargs)  # type: ignore[no-any-return]
    return asyncio.to_thread(fn.fn, **kwargs)


class _Finisher:
    """Writes the outcomes of runs that end together in one `Store.finish_many` call.

    The first outcome is written at once; those that end while a write is under way wait for
    the next one and share it. Each caller gets its own answer (lease held or lost), and
    retries on its own if the write failed.
    """

    _BATCH = 500

    def __init__(self, store: Store) -> None:
        self.store = store
        self.waiting: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def finish(self, outcome: Outcome) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append((outcome, future))
        if self.writer is None:
            self.writer = asyncio.create_task(self._write(), name="taskward-finisher")
        return await future

    async def _write(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[: self._BATCH], self.waiting[self._BATCH :]
                try:
                    held = await self.store.finish_many([outcome for outcome, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), ok in zip(batch, held, strict=True):
                    if not future.done():
                        future.set_result(ok)
        finally:
            self.writer = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one run ended, ready to be written."""

    status: Status
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    retry: bool = False

    @classmethod
    def failure(
        cls, exc: BaseException, message: str | None = None, secrets: list[str] | None = None
    ) -> _Outcome:
        """A failed attempt that may be retried; ``secrets``' values masked in its texts."""
        text = message or (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        tb = "".join(traceback.format_exception(exc))
        if secrets:
            text, tb = mask(text, secrets), mask(tb, secrets)
        return cls(Status.FAILED, error=_storable(text), traceback=_storable(tb), retry=True)

    @classmethod
    def fatal(cls, message: str) -> _Outcome:
        """A failure no retry can mend (bad row, unknown task, unstorable result)."""
        return cls(Status.FAILED, error=_storable(message), retry=False)


def _storable(text: str) -> str:
    """Text every store can hold: a NUL written as the four characters ``\\x00``, and lone
    surrogates escaped (an error message may quote any bytes a task met)."""
    text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
