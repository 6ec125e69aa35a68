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
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from taskward.children import ProcessPool
from taskward.errors import StoreError
from taskward.execution import Run, call
from taskward.leader import Leadership
from taskward.leases import RunWatch
from taskward.logformat import bind_run
from taskward.maintenance import Pruning, run_maintenance, run_schedules
from taskward.manager import Retention, TaskManager
from taskward.outcomes import Outcomes, Written
from taskward.queue_limits import Ask, check_queue_limits, plan_claims
from taskward.retry import retry_delay
from taskward.stores import redact_url
from taskward.stores.base import Store, TaskRecord

if TYPE_CHECKING:
    from taskward.app import App

__all__ = ["Pruning", "Worker"]

logger = logging.getLogger("taskward.worker")

#: Seconds a running task gets to honour a cancellation (a user's cancel, a lost lease, the
#: end of a stop's grace) before it is abandoned and its end recorded without it, so that a
#: cancel takes effect "within about a second" even for a task that ignores it.
CANCEL_GRACE = 1.0
# How soon a worker looks again for tasks of a queue that was at its own limit (`queue_limits`):
# a finished run frees a slot without any change in the store to wake the claim loop.
LIMITED_QUEUE_POLL = 0.05
#: Finished tasks kept 1 day (Completed) or 7 days (Failed, Cancelled), then pruned.
DEFAULT_PRUNING = Pruning()
T = TypeVar("T")


class Worker:
    """Runs the tasks of one `App` from its store until stopped."""

    store: Store  # the app's store, once `run` has opened it
    #: Told of each run's end: task name, seconds its function ran, and what was written
    #: (`outcomes.Written`; None: nothing). `taskward.worker_metrics` counts from it.
    observer: Callable[[str, float, Written | None], None] | None = None
    _outcomes: Outcomes
    _run_watch: RunWatch

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
        pruning: Pruning | None = DEFAULT_PRUNING,
        worker_id: str | None = None,
        schedule_poll: float = 1.0,
        connect_timeout: float = 60.0,
        processes: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: float | None = None,
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
        self.queue_limits = check_queue_limits(self.queues, queue_limits)
        self.lease = lease
        self.grace = grace
        self.poll_interval = poll_interval
        self.cancel_poll = cancel_poll
        self.pruning = pruning
        self.schedule_poll = schedule_poll
        self.connect_timeout = connect_timeout
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runs: dict[UUID, Run] = {}
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
        # For executor="process" functions; no child starts until one of those runs.
        self.children = ProcessPool(
            (os.cpu_count() or 1) if processes is None else processes,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
        )

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
        watch = self._run_watch = RunWatch(
            self.id,
            store,
            self._runs,
            lease=self.lease,
            cancel_poll=self.cancel_poll,
            progress_of=manager.progress_of,
            stop=lambda runs, why: self._spawn(self._cancel_runs(runs, why)),
            describe=self._describe,
        )
        self._outcomes = Outcomes(
            self.app,
            store,
            self.id,
            progress=watch,
            backoff=self._backoff,
            stop_now=lambda: self._stop_now,
            due=lambda at: heapq.heappush(self._due, at),
        )
        helpers = [
            asyncio.create_task(watch.heartbeats(), name="taskward-heartbeats"),
            asyncio.create_task(watch.guard(), name="taskward-lease-guard"),
            asyncio.create_task(watch.watch(), name="taskward-cancel-watch"),
            asyncio.create_task(leadership.keep(), name="taskward-leadership"),
            asyncio.create_task(
                run_maintenance(
                    store,
                    self.id,
                    lambda: leadership.held,
                    every=min(self.lease / 3, 5.0),
                    pruning=self.pruning,
                ),
                name="taskward-maintenance",
            ),
            # Fires durable schedules while this process leads maintenance (taskward.maintenance).
            asyncio.create_task(
                run_schedules(
                    self.app,
                    store,
                    poll=self.schedule_poll,
                    leading=lambda: leadership.held,
                    leader=self.id,
                ),
                name="taskward-schedules",
            ),
        ]
        if any(fn.in_child for fn in self.app.tasks.values()):
            helpers.append(asyncio.create_task(self.children.warm(), name="taskward-children"))
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
            await self.children.close()
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

    def _asks(self) -> tuple[list[Ask], bool]:
        """The claims to make now within the free slots and the per-queue limits."""
        free = self.concurrency - self._busy()
        if free <= 0:
            return [], False
        if not self.queue_limits:
            return [(self.queues, free)], False
        running = Counter(run.record.queue for run in self._runs.values() if not run.writing)
        return plan_claims(free, self.queues, self.queue_limits, running)

    async def _claim(self, asks: list[Ask]) -> tuple[list[TaskRecord], bool, Exception | None]:
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
        run = Run(record, lease_until)
        self._runs[record.id] = run
        assert self._manager is not None
        self._manager.submit_nowait(str(record.id), self._execute, run)

    def _busy(self) -> int:
        """Slots taken: runs whose function has not returned yet."""
        return sum(1 for run in self._runs.values() if not run.writing)

    async def _execute(self, run: Run) -> None:
        record = run.record
        bind_run(record)  # the task fields of every line this run logs (taskward.logformat)
        observer = self.observer
        started = time.monotonic() if observer is not None else 0.0
        try:
            tracing = self.app._tracing  # None unless tracing is on (taskward.tracing)
            if tracing is None or not tracing.active():
                outcome = await call(self.app, run, self.children)
            else:
                outcome = await tracing.process(run, lambda: call(self.app, run, self.children))
            ran = time.monotonic() - started if observer is not None else 0.0
            # The slot is free as soon as the function returns: the next claim overlaps
            # with this outcome's write (the run stays leased and heartbeated until then).
            run.writing = True
            self._slot_freed.set()
            written = await self._outcomes.record(run, outcome)
            if observer is not None:
                observer(record.task, ran, written)
        finally:
            self._runs.pop(record.id, None)  # gone already if it was abandoned
            run.done.set()
            self._slot_freed.set()

    async def _backoff(self, what: str, exc: BaseException, failures: int) -> None:
        delay = retry_delay(failures, first=0.1, cap=5.0)
        log = logger.warning if failures < 5 else logger.error
        log("worker %s: store %s failed (%s); retrying in %.2fs", self.id, what, exc, delay)
        await asyncio.sleep(delay)

    async def _cancel_runs(self, runs: list[Run], reason: str) -> None:
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
            await self._outcomes.store_call(
                functools.partial(self._outcomes.abandoned, record, token, reason)
            )

    # ----------------------------------------------------------------- helper loops

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _describe(self) -> dict[str, Any]:
        """What this worker says of itself with its beats (stats, readiness)."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "queue_limits": self.queue_limits or None,
            "concurrency": self.concurrency,
            "processes": self.children.size,
            "running": len(self._runs),
        }
