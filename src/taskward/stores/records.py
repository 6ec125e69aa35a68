"""The records stores take and give: tasks to insert, stored tasks, the outcomes workers
write, workers, schedules, pages and counts. Times are POSIX seconds on the store's clock;
arguments, results and progress are JSON text (decoded above the stores).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from taskward.models import Status

__all__ = [
    "Counts",
    "NewTask",
    "Outcome",
    "Page",
    "ScheduleRecord",
    "TaskRecord",
    "WorkerRecord",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    """A task to insert. ``delay`` is relative to the store's clock; ``run_at`` is absolute.

    ``traceparent``: the W3C trace context (``00-<trace id>-<span id>-<flags>``) the task's
    trace continues from: with tracing on, the parent of its ``send`` span, which `App`
    stores in its place (`taskward.tracing`); with tracing off, stored as given.
    """

    id: UUID
    task: str
    args: str = "{}"
    name: str | None = None
    priority: int = 0
    queue: str = "default"
    max_attempts: int = 3
    timeout: float | None = None
    delay: float | None = None
    run_at: float | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRecord:
    """One row of the tasks table, as the store holds it."""

    id: UUID
    seq: int
    task: str
    args: str
    name: str | None
    priority: int
    queue: str
    status: Status
    attempts: int
    max_attempts: int
    timeout: float | None
    run_at: float
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    worker_id: str | None = None
    cancel_requested: bool = False
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    progress: str | None = None
    traceparent: str | None = None  # the context of its send span, as stored (unchecked)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one run ended, for `Store.finish_many` (the arguments of `Store.finish`)."""

    task_id: UUID
    token: str
    status: Status
    result: str | None = None
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRecord:
    """A worker process that is alive: it beat within its ``ttl``."""

    id: str
    info: str  # JSON: host, pid, queues, concurrency, running
    started_at: float
    last_seen: float
    expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRecord:
    """One row of the schedules table: a definition (JSON), the newest tick handled and the
    newest tick that fired.

    ``last_tick`` is the firing's cursor: it also moves past ticks that submitted nothing (a
    schedule's first round starts counting there; a tick skipped for ``max_instances``).
    ``last_fired`` only moves when a tick's task is submitted: it is what users are shown.
    """

    name: str
    definition: str  # JSON: task, args, every or cron, timezone, catch_up, max_instances
    last_tick: float | None  # None: not counting yet (it starts at its next round)
    last_fired: float | None  # None: no tick has submitted a task yet
    paused: bool
    updated_at: float


@dataclass(frozen=True, slots=True)
class Page:
    """One page of `Store.list`, newest first; ``cursor`` fetches the next page (None: last)."""

    items: list[TaskRecord]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Counts:
    """Task counts by (queue, status)."""

    by_queue: Mapping[str, Mapping[Status, int]] = field(default_factory=dict)

    def by_status(self) -> dict[Status, int]:
        """Totals over all queues, every status present (zero when none)."""
        totals = dict.fromkeys(Status, 0)
        for per_status in self.by_queue.values():
            for status, n in per_status.items():
                totals[status] += n
        return totals
