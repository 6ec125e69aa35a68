"""Task statuses, the one transition table, and the public snapshot of a task.

Every part of taskward (the in-process manager, the stores, the worker, the API, the CLI)
speaks of tasks with these five statuses and moves them only along ``TRANSITIONS``.
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import pydantic_core

from taskward._fast import uuid_from_int
from taskward.errors import InvalidTransitionError
from taskward.redact import Secrets, redact_args

_T = TypeVar("_T")

__all__ = [
    "ACTIVE",
    "FINISHED",
    "TRANSITIONS",
    "Progress",
    "Status",
    "TaskInfo",
    "check_transition",
    "from_timestamp",
    "new_task_id",
]


class Status(enum.StrEnum):
    """Where a task is in its life. The values are the words shown everywhere (JSON, CLI)."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_active(self) -> bool:
        """True for Pending and Running: the task still holds its name."""
        return self in ACTIVE

    @property
    def is_finished(self) -> bool:
        """True for Completed, Failed and Cancelled."""
        return self in FINISHED


ACTIVE: frozenset[Status] = frozenset({Status.PENDING, Status.RUNNING})
FINISHED: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

#: The only moves a task may make.
#: - Running -> Pending: a retry after a failed attempt, a rescue after a lost lease, or a
#:   release at graceful worker stop.
#: - Failed/Cancelled -> Pending: an explicit retry by a user.
#: - Pending -> Failed: a durable task that cannot even start (e.g. it expired).
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
}


def check_transition(old: Status, new: Status) -> None:
    """Raise `InvalidTransitionError` unless ``old -> new`` is in `TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        raise InvalidTransitionError(f"a task cannot go from {old} to {new}")


def new_task_id() -> UUID:
    """A new task id: a UUID version 7 (RFC 9562), ordered by creation time.

    The first 48 bits are the time in ms; the 12 bits after the version (``rand_a``) are the
    fraction of that millisecond, in steps of 1/4096 ms (RFC 9562 §6.2, method 3), so ids made
    within one millisecond are ordered too. Within a process each id sorts after the one
    before, across threads as well: one whose time would not (two ids in one step, or a clock
    set back) takes the previous id's time plus one step instead, so its time may run a little
    ahead of the clock until the clock catches up. The last 62 bits are random (os.urandom).

    Time-ordered ids land at the end of the stores' id indexes instead of at random places,
    which makes inserts about twice as fast on SQLite (and kinder to PostgreSQL's B-trees).
    """
    global _last_clock, _random_bytes, _random_pos
    # The time as one 60-bit number: milliseconds, then 12 bits of fraction.
    clock = (time.time_ns() << 12) // 1_000_000
    with _id_lock:
        if clock <= _last_clock:
            clock = _last_clock + 1
        _last_clock = clock
        pos = _random_pos
        if pos + 8 > len(_random_bytes):
            _random_bytes, pos = os.urandom(4096), 0
        _random_pos = pos + 8
        random = int.from_bytes(_random_bytes[pos : pos + 8])
    return uuid_from_int(
        (clock >> 12) << 80 | (clock & 0xFFF) << 64 | _UUID7_FIXED | random & _UUID7_RANDOM
    )


# Version 7 in bits 76-79 and the RFC 4122 variant (0b10) in bits 62-63; 62 random bits below.
_UUID7_FIXED = 0x7000_8000_0000_0000_0000
_UUID7_RANDOM = 0x3FFF_FFFF_FFFF_FFFF

# One lock orders the ids of all threads and shares the random bytes. os.urandom is a system
# call: one per 512 ids rather than one per id. A forked child starts afresh, never reusing
# its parent's bytes (its ids still sort after the parent's made before the fork).
_id_lock = threading.Lock()
_last_clock = 0
_random_bytes = b""
_random_pos = 0


def _forget_random_bytes() -> None:
    global _id_lock, _random_bytes, _random_pos
    _id_lock = threading.Lock()  # another thread may have held it at the fork
    _random_bytes, _random_pos = b"", 0


os.register_at_fork(after_in_child=_forget_random_bytes)


def read_json(text: str | bytes) -> Any:
    """JSON text as Python values; ValueError (or RecursionError) if it is not JSON.

    pydantic_core's reader, about 7 times faster than the json module's, and the json
    module's for what that one refuses but json reads: lone surrogates, nesting deeper
    than 200.
    """
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        return json.loads(text)


def from_timestamp(ts: float | None) -> datetime | None:
    """A POSIX timestamp as an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class Progress:
    """What a running task last reported with `taskward.progress`."""

    done: float
    total: float | None = None
    message: str | None = None

    @property
    def fraction(self) -> float | None:
        """done / total, when a positive total is known."""
        if self.total is None or self.total <= 0:
            return None
        return min(1.0, self.done / self.total)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    """A read-only snapshot of one task.

    In-process tasks (`TaskManager`) fill the first group of fields; durable tasks fill all.
    """

    name: str | None
    status: Status
    error: str | None = None
    result: Any = None
    progress: Progress | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Durable tasks only.
    id: UUID | None = None
    task: str | None = None
    args: Mapping[str, Any] | None = None
    priority: int = 0
    queue: str | None = None
    attempts: int = 0
    max_attempts: int = 1
    run_at: datetime | None = None
    traceback: str | None = None

    @property
    def is_active(self) -> bool:
        """True while the task is Pending or Running."""
        return self.status in ACTIVE

    @property
    def is_finished(self) -> bool:
        """True once the task is Completed, Failed or Cancelled."""
        return self.status in FINISHED

    def to_json(self, secrets: Secrets | None = None) -> dict[str, Any]:
        """A JSON-ready dict: the shape the HTTP API and ``--json`` of the CLI show.

        Secret arguments are shown as ``"***"``: those named in ``TASKWARD_REDACT``, and
        those ``secrets`` marks (from the task function's types: `App.secrets`).
        """

        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        progress = self.progress
        return {
            "id": None if self.id is None else str(self.id),
            "name": self.name,
            "task": self.task,
            "args": None if self.args is None else redact_args(self.args, secrets),
            "priority": self.priority,
            "queue": self.queue,
            "status": self.status.value,
            "error": self.error,
            "traceback": self.traceback,
            "result": self.result,
            "progress": None
            if progress is None
            else {"done": progress.done, "total": progress.total, "message": progress.message},
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created_at": when(self.created_at),
            "run_at": when(self.run_at),
            "started_at": when(self.started_at),
            "finished_at": when(self.finished_at),
        }
