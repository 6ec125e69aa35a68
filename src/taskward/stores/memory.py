"""The in-memory store: the reference `Store`, and the one users put in their own tests.

Everything lives in Python structures owned by one event loop. No method awaits while it
changes state, so each call is atomic with respect to every other coroutine: that is what
makes claims exclusive here, as a transaction does in SQL.

What a claim, finish, requeue, cancel, retry, rescue or schedule change does to a row is
decided by `taskward.stores.rules`, as in the SQL stores: each method here finds the row,
asks the rule and puts the answer (`_put`), so every store answers the contract suite the
same way. The rows and their indexes (a heap per queue, so a claim costs O(log n)) are kept
by `taskward.stores.memory_index`; the schedule methods are `taskward.stores.memory_schedules`.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
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
from taskward.stores.memory_index import FinishedEntry, MemoryIndex, ReadyEntry
from taskward.stores.memory_schedules import MemorySchedules
from taskward.stores.memory_workers import MemoryWorkers
from taskward.stores.rules import (
    awaits_cancel,
    cancel_changes,
    check_batch_names,
    check_limit,
    claimable,
    claimed_changes,
    decode_cursor,
    duplicate_name_error,
    encode_cursor,
    finished_changes,
    holds,
    holds_lease,
    lease_expired,
    pending_record,
    prune_cutoffs,
    requeued_changes,
    rescued_changes,
    resolve_run_at,
    retried_changes,
    waiting_since,
)

__all__ = ["MemoryStore"]


class MemoryStore(MemoryWorkers, MemoryIndex, MemorySchedules):
    """A `Store` in this process's memory: fast, exact, gone when the process ends."""

    url: str = "memory://"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        super().__init__()
        self._next_seq = 1
        self._change = ChangeSignal()
        self._closed = False
        self._workers: dict[str, WorkerRecord] = {}
        self._schedules: dict[str, ScheduleRecord] = {}
        self._leader: tuple[str, float] | None = None  # (holder, expires_at)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to connect to; makes a closed store usable again."""
        self._closed = False

    async def close(self) -> None:
        """Wake everyone in `wait_for_change`; the data stays for a later `open`."""
        self._closed = True
        self._notify()

    async def now(self) -> float:
        """The injected clock (``time.time`` by default)."""
        return self._clock()

    # -- writes ------------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[NewTask]) -> list[TaskRecord]:
        """Insert all tasks as Pending, or none of them."""
        check_batch_names(tasks)
        for t in tasks:
            if t.name is not None and t.name in self._active_names:
                raise duplicate_name_error(t.name)
            if t.id in self._rows:
                raise StoreError(f"a task with id {t.id} already exists")
        if len({t.id for t in tasks}) != len(tasks):
            raise StoreError("the same task id appears twice in one insert")
        now = self._clock()
        run_ats = [resolve_run_at(t, now) for t in tasks]  # may raise: before any change
        out: list[TaskRecord] = []
        for t, run_at in zip(tasks, run_ats, strict=True):
            row = pending_record(t, self._next_seq, run_at, now)
            self._next_seq += 1
            self._by_seq[row.seq] = row.id
            self._seqs.append(row.seq)
            if row.name is not None:
                self._named.setdefault(row.name, []).append(row.id)
            self._put(None, row)
            out.append(row)
        if out:
            self._notify()
        return out

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due Pending tasks, best first."""
        now = self._clock()
        self._promote(now)
        names = list(self._ready) if queues is None else list(dict.fromkeys(queues))
        heaps = [self._ready[q] for q in names if q in self._ready]
        out: list[TaskRecord] = []
        while len(out) < limit:
            best: list[ReadyEntry] | None = None
            for heap in heaps:
                self._settle(heap, now)
                if heap and (best is None or heap[0] < best[0]):
                    best = heap
            if best is None:
                break
            entry = heapq.heappop(best)
            old = self._rows[entry[4]]
            new = dataclasses.replace(old, **claimed_changes(old, worker_id, now, lease))
            self._put(old, new)
            out.append(new)
        return out

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        """Extend the leases still held; return the ids whose lease is lost."""
        now = self._clock()
        lost: set[UUID] = set()
        for task_id, token in leases:
            old = self._held(task_id, token)
            if old is None:
                lost.add(task_id)
            else:
                self._put(old, dataclasses.replace(old, lease_expires_at=now + lease))
        return lost

    async def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for each outcome, in order."""
        return [
            await self.finish(
                o.task_id, o.token, o.status, result=o.result, error=o.error, traceback=o.traceback
            )
            for o in outcomes
        ]

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
        changes = finished_changes(
            status, self._clock(), result=result, error=error, traceback=traceback
        )
        old = self._held(task_id, token)
        if old is None:
            return False
        self._put(old, dataclasses.replace(old, **changes))
        return True

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
        old = self._held(task_id, token)
        if old is None:
            return False
        changes = requeued_changes(
            old,
            self._clock(),
            delay=delay,
            error=error,
            traceback=traceback,
            refund_attempt=refund_attempt,
        )
        self._put(old, dataclasses.replace(old, **changes))
        return True

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        """Record a running task's progress while ``token`` holds the lease."""
        old = self._held(task_id, token)
        if old is None:
            return False
        self._put(old, dataclasses.replace(old, progress=progress))
        return True

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        """Cancel a Pending task now, or flag a Running one."""
        old = self._rows.get(task_id)
        if old is None:
            return None
        changes = cancel_changes(old, self._clock())
        if changes is None:
            return old
        new = dataclasses.replace(old, **changes)
        self._put(old, new)
        self._notify()
        return new

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these Running tasks have a cancel request waiting."""
        out: set[UUID] = set()
        for task_id in task_ids:
            row = self._rows.get(task_id)
            if row is not None and awaits_cancel(row):
                out.add(task_id)
        return out

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        """Failed/Cancelled -> Pending, due now, attempts 0, outcome cleared."""
        old = self._rows.get(task_id)
        if old is None:
            return None
        changes = retried_changes(old, self._clock())
        if old.name is not None and old.name in self._active_names:
            raise duplicate_name_error(old.name)
        new = dataclasses.replace(old, **changes)
        self._put(old, new)
        self._notify()
        return new

    async def rescue(self, leader: str | None = None) -> list[TaskRecord]:
        """Requeue, fail or cancel the Running tasks whose lease expired (only while
        ``leader``, when given, holds the maintenance role)."""
        now = self._clock()
        if leader is not None and not holds(self._leader, leader, now):
            return []
        expired = sorted(
            (self._rows[i] for i in self._running),
            key=lambda r: r.seq,
        )
        out: list[TaskRecord] = []
        for old in expired:
            if not lease_expired(old, now):
                continue
            new = dataclasses.replace(old, **rescued_changes(old, now))
            self._put(old, new)
            out.append(new)
        return out

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        """Delete up to ``limit`` finished tasks older than their status's age, oldest first."""
        now = self._clock()
        cutoffs = prune_cutoffs(older_than, now)
        deleted = 0
        while deleted < limit:
            # The oldest prunable task is at the top of one of the per-status heaps.
            best: list[FinishedEntry] | None = None
            for status, cutoff in cutoffs.items():
                heap = self._finished[status]
                while heap and not self._is_finished(heap[0], status):
                    heapq.heappop(heap)
                if heap and heap[0][0] < cutoff and (best is None or heap[0] < best[0]):
                    best = heap
            if best is None:
                break
            self._delete(self._rows[heapq.heappop(best)[2]])
            deleted += 1
        return deleted

    # -- reads -------------------------------------------------------------------------------

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task with this id, or None."""
        return self._rows.get(task_id)

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The active task with this name, else the most recent one."""
        active = self._active_names.get(name)
        if active is not None:
            return self._rows[active]
        same = self._named.get(name)
        return self._rows[same[-1]] if same else None

    async def counts(self) -> Counts:
        """How many tasks there are by queue and status."""
        return Counts(by_queue={q: dict(per) for q, per in self._counts.items() if per})

    async def oldest_pending(self) -> dict[str, float]:
        """How long each queue's longest-waiting due task has waited (`Store.oldest_pending`).

        A walk over the Pending tasks only (those with a live claim-heap entry)."""
        rows = self._rows
        heads = (
            (row.queue, row.run_at)
            for row in (rows[task_id] for task_id in self._generation)
            if claimable(row)
        )
        return waiting_since(heads, self._clock())

    async def wait_for_change(self, timeout: float) -> None:
        """Return when a task is inserted, retried or cancel-requested, or at ``timeout``."""
        if self._closed:
            return
        await self._change.wait(timeout)

    async def count_active(self, name_prefix: str) -> int:
        """Active tasks whose name starts with ``name_prefix``."""
        return sum(1 for n in self._active_names if n.startswith(name_prefix))

    # -- internals ---------------------------------------------------------------------------

    def _notify(self) -> None:
        self._change.notify()

    def _held(self, task_id: UUID, token: str) -> TaskRecord | None:
        row = self._rows.get(task_id)
        if row is None or not holds_lease(row, token):
            return None
        return row

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
        below = decode_cursor(cursor) if cursor is not None else None
        wanted = None if status is None else set(status)
        stop = len(self._seqs) if below is None else bisect.bisect_left(self._seqs, below)
        items: list[TaskRecord] = []
        more = False
        for i in range(stop - 1, -1, -1):
            task_id = self._by_seq.get(self._seqs[i])
            if task_id is None:
                continue
            row = self._rows[task_id]
            if (
                (wanted is not None and row.status not in wanted)
                or (task is not None and row.task != task)
                or (queue is not None and row.queue != queue)
                or (name is not None and row.name != name)
            ):
                continue
            if len(items) == limit:
                more = True
                break
            items.append(row)
        next_cursor = encode_cursor(items[-1].seq) if more and items else None
        return Page(items=items, cursor=next_cursor)
