"""`SQLiteStore`: the `Store` protocol on one SQLite file, shared by any number of processes.

Each method checks its arguments with `taskward.stores.rules`, then hands an operation of
`operations` to the `Runner` (the loop's own connection when the write lock is free, else
the store's thread) and says what changed. Bulk inserts and prunes, which would hold the
event loop up, always go to the thread.

Other processes' changes are noticed by polling ``PRAGMA data_version`` every few
milliseconds while someone is in `wait_for_change`; this process's own changes set an event.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from taskward.errors import StoreError
from taskward.models import Status
from taskward.stores.base import (
    ChangeSignal,
    Counts,
    NewTask,
    Outcome,
    Page,
    ScheduleRecord,
    TaskRecord,
    WorkerRecord,
)
from taskward.stores.rules import (
    check_batch_names,
    check_finish_status,
    check_limit,
    encode_cursor,
    prune_cutoffs,
    waiting_since,
)
from taskward.stores.sqlite import operations as ops
from taskward.stores.sqlite.runner import Runner
from taskward.stores.sqlite.schema import SQL, migrate

__all__ = ["SQLiteStore"]

_FAST_ROWS = 50  # larger inserts go to the thread: they would hold up the event loop
_PRUNED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)  # the prune statement's order


class SQLiteStore:
    """A `Store` in one SQLite file, safe to share between processes."""

    url: str

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        url: str | None = None,
        busy_timeout: float = 5.0,
        lock_wait: float = 30.0,
        poll_interval: float = 0.005,
    ) -> None:
        self.path = os.fspath(path)
        self.url = url or f"sqlite:///{self.path}"
        self._clock = clock
        self._runner = Runner(self.path, busy_timeout=busy_timeout, lock_wait=lock_wait)
        self._poll_interval = poll_interval
        self._change = ChangeSignal()
        self._waiters = 0
        self._idle_since = 0.0
        self._poller: asyncio.Task[None] | None = None
        self._seen_version = 0  # PRAGMA data_version at the last poll
        self._idle = True  # the last claim found nothing

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, switch it to WAL, and create or check the schema. Idempotent."""
        await self._runner.open(self._setup)

    async def close(self) -> None:
        """Finish queued calls, close the connections, stop the thread, wake waiters."""
        closed = self._runner.close()
        self._notify()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await closed

    async def now(self) -> float:
        """The injected clock (``time.time`` by default)."""
        return self._clock()

    # -- writes ------------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[NewTask]) -> list[TaskRecord]:
        """Insert all tasks as Pending in one transaction, or none of them."""
        if not tasks:
            return []
        check_batch_names(tasks)
        if len(tasks) > _FAST_ROWS:
            inserting = self._runner.write_on_thread(ops.insert, (tasks, self._clock()))
            rows: list[TaskRecord] = await inserting
        else:
            rows = await self._runner.write(ops.insert, tasks, self._clock())
        self._notify()
        return rows

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due Pending tasks, best first."""
        if limit < 1 or (queues is not None and not queues):
            return []
        probe, claim = ops.claim_statements(worker_id, queues, limit, lease, self._clock())
        # After an empty claim, look before taking the write lock: workers polling an empty
        # queue then never queue up behind the processes that are busy writing. After a
        # fruitful one, more work is likely and the look would be wasted.
        precheck = (ops.exists, probe) if self._idle else None
        claimed: list[TaskRecord] = await self._runner.write_unless(precheck, ops.claim, claim)
        self._idle = not claimed
        return claimed

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        """Extend the leases still held; return the ids whose lease is lost."""
        if not leases:
            return set()
        return await self._runner.write(ops.heartbeat, leases, self._clock() + lease)

    async def finish(
        self,
        task_id: UUID,
        token: str,
        status: Status,
        *,
        result: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        """Running -> finished ``status`` while ``token`` holds the lease."""
        check_finish_status(status)
        params = (status.value, result, error, traceback, self._clock(), str(task_id), token)
        return await self._runner.write(ops.changed_one, SQL["finish"], params)

    async def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for each outcome, all in one transaction."""
        for o in outcomes:
            check_finish_status(o.status)
        now = self._clock()
        params = [
            (o.status.value, o.result, o.error, o.traceback, now, str(o.task_id), o.token)
            for o in outcomes
        ]
        return await self._runner.write(ops.changed_each, SQL["finish"], params)

    async def requeue(
        self,
        task_id: UUID,
        token: str,
        *,
        delay: float = 0.0,
        error: str | None = None,
        traceback: str | None = None,
        refund_attempt: bool = False,
    ) -> bool:
        """Running -> Pending after ``delay``; keeps the previous error when none is given."""
        params = {
            "run_at": self._clock() + delay,
            "refund": refund_attempt,
            "error": error,
            "traceback": traceback,
            "id": str(task_id),
            "token": token,
        }
        return await self._runner.write(ops.changed_one, SQL["requeue"], params)

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        """Record a running task's progress while ``token`` holds the lease."""
        params = (progress, str(task_id), token)
        return await self._runner.write(ops.changed_one, SQL["set_progress"], params)

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        """Cancel a Pending task now, or flag a Running one."""
        row, changed = await self._runner.write(ops.request_cancel, str(task_id), self._clock())
        if changed:
            self._notify()
        return row

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these Running tasks have a cancel request waiting."""
        if not task_ids:
            return set()
        return await self._runner.read(ops.cancel_requested, [str(i) for i in task_ids])

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        """Failed/Cancelled -> Pending, due now, attempts 0, outcome cleared."""
        row = await self._runner.write(ops.retry, str(task_id), self._clock())
        if row is not None:
            self._notify()
        return row

    async def rescue(self, leader: str | None = None) -> list[TaskRecord]:
        """Requeue, fail or cancel the Running tasks whose lease expired (only while
        ``leader``, when given, holds the maintenance role)."""
        return await self._runner.write(ops.rescue, self._clock(), leader)

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        """Delete up to ``limit`` finished tasks older than their status's age, oldest first."""
        if limit < 1:
            return 0
        cutoffs = prune_cutoffs(older_than, self._clock())
        params = (*(cutoffs.get(s) for s in _PRUNED), limit)
        # On the thread: deleting a batch can take a while, and is never urgent.
        pruned: int = await self._runner.write_on_thread(ops.rowcount, (SQL["prune"], params))
        return pruned

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` more seconds."""
        now = self._clock()
        params = (worker_id, info, now, now + ttl)
        await self._runner.write(ops.rowcount, SQL["worker_beat"], params)

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        await self._runner.write(ops.rowcount, SQL["worker_gone"], (worker_id,))

    async def workers(self) -> list[WorkerRecord]:
        """The workers alive now, oldest first."""
        await self._runner.write(ops.rowcount, SQL["forget_workers"], (self._clock(),))
        return await self._runner.read(ops.workers)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task with this id, or None."""
        return await self._runner.read(ops.get, str(task_id))

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The active task with this name, else the most recent one."""
        return await self._runner.read(ops.one, SQL["get_by_name"], (name,))

    async def counts(self) -> Counts:
        """How many tasks there are by queue and status."""
        return Counts(by_queue=await self._runner.read(ops.counts))

    async def oldest_pending(self) -> dict[str, float]:
        """How long each queue's longest-waiting due task has waited (`Store.oldest_pending`)."""
        heads = await self._runner.read(ops.pending_heads)
        return waiting_since(heads, self._clock())

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the maintenance role for ``holder`` until now + ``ttl``."""
        return await self._runner.write(ops.lead, holder, self._clock(), ttl)

    async def resign(self, holder: str) -> None:
        """Give the maintenance role up, if ``holder`` has it."""
        await self._runner.write(ops.rowcount, SQL["resign"], (holder,))

    async def wait_for_change(self, timeout: float) -> None:
        """Return when tasks changed here or in another process, or at ``timeout``."""
        if not self._runner.is_open:
            return
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        self._waiters += 1
        try:
            await self._change.wait(timeout)
        finally:
            self._waiters -= 1
            self._idle_since = time.monotonic()

    # -- schedules ---------------------------------------------------------------------------

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        """Create a schedule, or (with ``replace``) update its definition."""
        sql = SQL["schedule_replace" if replace else "schedule_insert"]
        return await self._runner.write(ops.put_schedule, sql, (name, definition, self._clock()))

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The schedule of this name, or None."""
        return await self._runner.read(ops.get_schedule, name)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Every schedule, by name."""
        return await self._runner.read(ops.list_schedules)

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False when there is none."""
        return await self._runner.write(ops.changed_one, SQL["schedule_delete"], (name,))

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume; resuming a paused schedule forgets its last tick."""
        return await self._runner.write(ops.pause_schedule, name, paused, self._clock())

    async def fire_schedule(
        self,
        name: str,
        expected_last_tick: float | None,
        new_last_tick: float | None,
        tasks: Sequence[NewTask],
        *,
        fired: float | None = None,
        leader: str | None = None,
    ) -> bool:
        """Compare-and-set the last tick and insert the tick tasks, in one transaction (only
        while ``leader``, when given, holds the maintenance role)."""
        check_batch_names(tasks)
        done = await self._runner.write(
            ops.fire_schedule,
            name,
            expected_last_tick,
            (new_last_tick, fired),
            tasks,
            self._clock(),
            leader,
        )
        if done and tasks:
            self._notify()
        return done

    async def count_active(self, name_prefix: str) -> int:
        """Active tasks whose name starts with ``name_prefix``."""
        return int(await self._runner.read(ops.scalar, SQL["count_active"], (name_prefix,)))

    # -- noticing changes --------------------------------------------------------------------

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Run once at open, in a write transaction: the schema, and the poll's baseline."""
        migrate(conn, self.path)
        self._seen_version = int(ops.scalar(conn, "PRAGMA data_version"))

    def _data_version_changed(self, conn: sqlite3.Connection) -> bool:
        version = int(ops.scalar(conn, "PRAGMA data_version"))
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def _notify(self) -> None:
        self._change.notify()

    async def _poll(self) -> None:
        """Watch for other processes' commits while anyone waits (and a second after, so
        a worker that claims between two waits does not lose what happened meanwhile)."""
        while self._runner.is_open:
            if not self._waiters and time.monotonic() - self._idle_since > 1.0:
                return
            await asyncio.sleep(self._poll_interval)
            try:
                changed = await self._runner.read(self._data_version_changed)
            except StoreError:
                self._notify()  # let the waiters go and meet the error themselves
                return
            if changed:
                self._notify()

    # `list` comes last: inside the class body its name would shadow the builtin.

    async def list(
        self,
        *,
        status: Sequence[Status] | None = None,
        task: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Tasks matching every filter, newest first."""
        check_limit(limit)
        filters = (("task", task), ("queue", queue), ("name", name))
        sql, params = ops.list_statement(status, filters, limit, cursor)
        rows = await self._runner.read(ops.many, sql, params)
        if len(rows) > limit:
            return Page(items=rows[:limit], cursor=encode_cursor(rows[limit - 1].seq))
        return Page(items=rows, cursor=None)
