"""The Store protocol: the thin I/O layer under durable tasks.

A store only moves rows: it inserts, claims, compares-and-sets statuses fenced by the lease
token, renews leases, records cancel requests, reads, counts and prunes. Retries, timeouts,
state rules and scheduling live above it (`taskward.app`, `taskward.worker`).

Times are POSIX seconds (floats) on **the store's clock**: `Store.now()`. Every store decides
"is this lease expired?" and "is this task due?" with its own clock (PostgreSQL: ``now()``),
never with a caller's, so hosts with skewed clocks agree.

Arguments, results and progress are JSON *text* here: decoding and validation happen above,
so a corrupt row fails its task with a clear error instead of crashing a worker.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable
from uuid import UUID

from taskward.models import Status
from taskward.stores.records import (
    Counts,
    NewTask,
    Outcome,
    Page,
    ScheduleRecord,
    TaskRecord,
    WorkerRecord,
)
from taskward.stores.signal import ChangeSignal

__all__ = [
    "ChangeSignal",
    "Counts",
    "NewTask",
    "Outcome",
    "Page",
    "ScheduleRecord",
    "Store",
    "TaskRecord",
    "TransactionalStore",
    "WorkerRecord",
]


@runtime_checkable
class Store(Protocol):
    """What every store (memory, SQLite, PostgreSQL) provides. All methods are coroutine-safe."""

    url: str

    async def open(self) -> None:
        """Connect and create or check the schema. Idempotent."""

    async def close(self) -> None:
        """Release connections and wake anyone blocked in `wait_for_change`."""

    async def now(self) -> float:
        """The store's clock, in POSIX seconds."""

    async def insert(self, tasks: Sequence[NewTask]) -> list[TaskRecord]:
        """Insert all tasks in one transaction, as Pending; all or nothing.

        Raises `DuplicateNameError` when a name is held by an active (Pending/Running) task,
        or appears twice in ``tasks``. Returns the rows in the order given.
        """
        ...

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> list[TaskRecord]:
        """Claim up to ``limit`` due Pending tasks of ``queues`` (None: every queue).

        Order: priority ascending, then run_at, then insertion order. Each claimed task becomes
        Running with a fresh ``lease_token``, ``lease_expires_at = now + lease``,
        ``started_at = now`` and ``attempts + 1``. No task is ever claimed by two callers.
        """
        ...

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        """Extend the leases of (id, token) pairs still held; return the ids whose lease is lost."""
        ...

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
        """Running -> a finished ``status``, only while ``token`` still holds the lease.

        Returns False (and changes nothing) when the lease is lost: a rescued or cancelled
        task cannot be overwritten by a stale worker.
        """
        ...

    async def finish_many(self, outcomes: Sequence[Outcome]) -> builtins.list[bool]:
        """`finish` for many runs in one round trip and transaction; a result per outcome.

        A busy worker finishes many tasks at once: one commit for all of them instead of one
        each is most of what a store can gain.
        """
        ...

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
        """Running -> Pending (a retry after ``delay`` or a release at stop), fenced like `finish`.

        ``refund_attempt`` gives the attempt back (graceful stop). Clears the lease and any
        cancel request. Returns False when the lease is lost.
        """
        ...

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        """Record a running task's progress (JSON text), fenced like `finish`."""
        ...

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        """Pending -> Cancelled at once; Running -> ``cancel_requested``; finished: unchanged.

        Returns the row after the change, or None when there is no such task.
        """
        ...

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these Running tasks have a cancel request waiting."""
        ...

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        """Failed/Cancelled -> Pending, due now, with attempts back to 0 and errors cleared.

        Raises `InvalidTransitionError` for an active or Completed task and
        `DuplicateNameError` when its name is now held by another active task.
        Returns None when there is no such task.
        """
        ...

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task with this id, or None."""
        ...

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The active task with this name, else the most recently created one, else None."""
        ...

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
        """Tasks matching every filter given, newest first, ``limit`` per page.

        Raises `ValueError` for a cursor this store did not make.
        """
        ...

    async def counts(self) -> Counts:
        """How many tasks there are by queue and status."""
        ...

    async def oldest_pending(self) -> dict[str, float]:
        """For each queue with a due Pending task (``run_at`` <= now, no cancel asked): how
        many seconds its longest-waiting one has been due (now - its ``run_at``, never
        negative). Queues with no due task are left out; tasks due later are not waiting.

        Read from the claim index, one seek per (queue, priority) pair with Pending tasks:
        its cost follows the number of queues and priorities, not of tasks.
        """
        ...

    async def rescue(self, leader: str | None = None) -> builtins.list[TaskRecord]:
        """Handle Running tasks whose lease expired (their worker died or stalled).

        Each goes back to Pending (the next claim counts a new attempt), or to Failed with
        the error "lease expired ..." when it has used all its attempts. Returns the rows after.
        With ``leader``, only while that holder has the maintenance role (see `lead`), checked
        in the same transaction on the store's clock: a leader that lost the role while it
        was stopped or cut off rescues nothing.
        """
        ...

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        """Delete up to ``limit`` finished tasks whose ``finished_at`` is older than
        ``now - older_than[status]`` (statuses not in the mapping are kept). Returns the count.
        """
        ...

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` more seconds, with its ``info`` (JSON)."""
        ...

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        ...

    async def workers(self) -> builtins.list[WorkerRecord]:
        """The workers alive now, oldest first (and forget those whose beat expired)."""
        ...

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the maintenance role for ``holder`` until the store's now + ``ttl``.

        The role is a lease row on the store's clock: True when ``holder`` now leads (the
        role was free, expired, or already its own), False while another holder's lease
        runs. Only the leader rescues, prunes and fires schedules, so many workers do not
        repeat the same work; a leader that stops renewing (it died, is stopped, or cannot
        reach the store) loses the role after ``ttl``, whatever becomes of its connection.
        """
        ...

    async def resign(self, holder: str) -> None:
        """Give up the maintenance role if ``holder`` has it (a clean stop), so another
        process takes it at its next try instead of after the lease."""
        ...

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        """Create a schedule (not paused, never fired) and return it.

        When one of this name exists: with ``replace`` its definition is updated (its
        ``last_tick``, ``last_fired`` and ``paused`` stay); without, `DuplicateNameError`.
        """
        ...

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The schedule of this name, or None."""
        ...

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Every schedule, by name."""
        ...

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule (its tasks stay); False when there is none of this name."""
        ...

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume a schedule; None when there is none of this name.

        Resuming a paused schedule forgets its ``last_tick``, so the ticks it missed while
        paused never fire: it starts counting again at its next round. ``last_fired`` stays.
        """
        ...

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
        """Move a schedule's ``last_tick`` and insert its tick ``tasks``, in one transaction.

        ``fired``, the newest tick of ``tasks``, becomes ``last_fired``; None leaves it.
        With ``leader``, only while that holder has the maintenance role, checked in the same
        transaction on the store's clock (as `rescue` does): a leader whose statement was held
        up past the end of its role (stopped, cut off) fires nothing when it lands.
        Only while the schedule exists, is not paused and its ``last_tick`` still equals
        ``expected_last_tick`` (compare-and-set): else nothing changes and it returns False.
        So a tick is inserted once however many processes try. Raises as `insert` does
        (`DuplicateNameError`), and then changes nothing either.
        """
        ...

    async def count_active(self, name_prefix: str) -> int:
        """How many Pending or Running tasks have a name that starts with ``name_prefix``."""
        ...

    async def wait_for_change(self, timeout: float) -> None:
        """Return soon after tasks were inserted, retried or cancel-requested, or at ``timeout``.

        In one process this is an event; across processes a store may poll cheaply (SQLite's
        data_version) or listen (PostgreSQL NOTIFY). Spurious returns are allowed; lost
        wake-ups are not: a change since the calling task's previous wait returns at once
        (see `ChangeSignal`), so call it from one long-lived task, not a fresh one each time.
        """
        ...


@runtime_checkable
class TransactionalStore(Protocol):
    """A store whose `Store.insert` can also run on the caller's own database connection.

    With ``connection=`` (PostgreSQL: an asyncpg connection, usually inside the caller's
    transaction) the tasks exist only if the caller's transaction commits.
    """

    transactional: Literal[True]

    async def insert(
        self, tasks: Sequence[NewTask], *, connection: Any = None
    ) -> builtins.list[TaskRecord]:
        """Insert as `Store.insert` does; on ``connection`` when one is given."""
        ...
