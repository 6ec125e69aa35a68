"""The rules every store applies the same way, so that each answers the contract suite alike:
cursors, due times, new records, names in a batch, finish statuses, page limits, lease
tokens, and what a rescue of an expired lease does. Pure functions of their arguments, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from typing import Any

from taskward._fast import record_factory
from taskward.errors import DuplicateNameError, InvalidTransitionError
from taskward.models import FINISHED, Status
from taskward.stores.base import NewTask, TaskRecord

_CURSOR_PREFIX = "seq:"


def encode_cursor(seq: int) -> str:
    """An opaque `Page.cursor` that resumes listing below ``seq``."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq inside a cursor made by `encode_cursor`; ValueError for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        raise ValueError(f"invalid cursor: {cursor!r}") from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if digits == text or not digits.isdigit() or len(digits) > 19:
        raise ValueError(f"invalid cursor: {cursor!r}")
    return int(digits)


#: ``TaskRecord(...)`` at about half the cost (taskward._fast): stores build them by the thousand.
new_record = record_factory(TaskRecord)


def pending_record(task: NewTask, seq: int, run_at: float, created_at: float) -> TaskRecord:
    """The record of a task just inserted: Pending, never attempted."""
    return new_record(
        id=task.id,
        seq=seq,
        task=task.task,
        args=task.args,
        name=task.name,
        priority=task.priority,
        queue=task.queue,
        status=Status.PENDING,
        attempts=0,
        max_attempts=task.max_attempts,
        timeout=task.timeout,
        run_at=run_at,
        created_at=created_at,
    )


def resolve_run_at(task: NewTask, now: float) -> float:
    """When a new task becomes due: its ``run_at``, else ``now + delay``."""
    if task.run_at is not None:
        if task.delay is not None:
            raise ValueError("give a task either delay or run_at, not both")
        return task.run_at
    return now + (task.delay or 0.0)


def check_batch_names(tasks: Sequence[NewTask]) -> None:
    """Raise `DuplicateNameError` when a name appears twice in one insert."""
    seen: set[str] = set()
    for t in tasks:
        if t.name is None:
            continue
        if t.name in seen:
            raise DuplicateNameError(f"the name {t.name!r} appears twice in one insert")
        seen.add(t.name)


def duplicate_name_error(name: str) -> DuplicateNameError:
    """The error for a name held by an active task."""
    return DuplicateNameError(f"a task named {name!r} is already Pending or Running")


def check_finish_status(status: Status) -> None:
    """`Store.finish` only moves a task to a finished status."""
    if status not in FINISHED:
        raise InvalidTransitionError(f"finish() needs a finished status, not {status}")


def duplicate_schedule_error(name: str) -> DuplicateNameError:
    """The error for a schedule name that is taken."""
    return DuplicateNameError(f"a schedule named {name!r} already exists")


def lease_expired_error(attempts: int) -> str:
    """The error of a task that lost its lease on its last attempt."""
    noun = "attempt" if attempts == 1 else "attempts"
    return f"lease expired after {attempts} {noun}: the worker was lost"


def check_limit(limit: int) -> None:
    """A page holds at least one task."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def new_lease_token() -> str:
    """A fresh fencing token for one claim."""
    return secrets.token_hex(16)


# A heap entry: (priority, run_at, seq, generation, id). seq is unique per task and the
# generation unique per entry, so comparison never reaches the UUID.


def rescued_changes(row: TaskRecord, now: float) -> dict[str, Any]:
    """The changes that rescue an expired Running task (shared with the SQL stores)."""
    lease = {"lease_token": None, "lease_expires_at": None}
    if row.cancel_requested:
        # The user asked for a cancel and the worker is gone: honour the cancel.
        return {"status": Status.CANCELLED, "finished_at": now, **lease}
    if row.attempts >= row.max_attempts:
        return {
            "status": Status.FAILED,
            "finished_at": now,
            "error": lease_expired_error(row.attempts),
            **lease,
        }
    return {"status": Status.PENDING, **lease}


def may_lead(current: tuple[str, float] | None, holder: str, now: float) -> bool:
    """Whether ``holder`` may take or renew a role held as ``current`` (holder, expires_at):
    when it is free, expired, or already its own. (PostgreSQL says the same in its SQL.)"""
    return current is None or current[0] == holder or current[1] <= now


def holds(current: tuple[str, float] | None, holder: str, now: float) -> bool:
    """Whether ``holder`` holds a role held as ``current`` (holder, expires_at) at ``now``."""
    return current is not None and current[0] == holder and current[1] > now


#: The statuses a user may retry a task from: the finished ones that `TRANSITIONS` lets go
#: back to Pending.
RETRYABLE: frozenset[Status] = frozenset({Status.FAILED, Status.CANCELLED})


def retry_refused_error(status: Status) -> InvalidTransitionError:
    """The error for a retry of a task whose status is not `RETRYABLE`."""
    return InvalidTransitionError(f"only a Failed or Cancelled task can be retried, not {status}")
