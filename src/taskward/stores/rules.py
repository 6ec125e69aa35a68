"""The rules every store applies the same way, so that each answers the contract suite alike:
cursors, due times, new records, names in a batch, finish statuses, page limits, lease
tokens, and what a claim, finish, requeue, cancel, retry, rescue, prune or schedule change
does to a row. Pure functions of their arguments, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taskward._fast import record_factory
from taskward.errors import DuplicateNameError, InvalidTransitionError
from taskward.models import FINISHED, Status
from taskward.stores.base import NewTask, ScheduleRecord, TaskRecord

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
        traceparent=task.traceparent,
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


# What each change does to a task or a schedule: a store reads the row, asks the rule and
# writes what it says. The SQL stores also say the claim, finish and requeue rules in their
# statements: those are the workers' hot path, where a read before each write would cost a
# round trip per task; the contract suite holds every store to the same answers.

#: The statuses a user may retry a task from: the finished ones that `TRANSITIONS` lets go
#: back to Pending.
RETRYABLE: frozenset[Status] = frozenset({Status.FAILED, Status.CANCELLED})


def retry_refused_error(status: Status) -> InvalidTransitionError:
    """The error for a retry of a task whose status is not `RETRYABLE`."""
    return InvalidTransitionError(f"only a Failed or Cancelled task can be retried, not {status}")


def holds_lease(row: TaskRecord, token: str) -> bool:
    """Whether ``token`` is the lease of this Running task: the fence of a worker's writes."""
    return row.status is Status.RUNNING and row.lease_token == token


def claimable(row: TaskRecord) -> bool:
    """Whether a claim may take this task once it is due: Pending, no cancel asked."""
    return row.status is Status.PENDING and not row.cancel_requested


def waiting_since(heads: Iterable[tuple[str, float]], now: float) -> dict[str, float]:
    """`Store.oldest_pending` from candidate (queue, run_at) pairs of claimable tasks: for
    each queue, ``now`` minus its earliest ``run_at`` that is due by ``now``. A task due
    later is not waiting, so a queue with only such tasks is left out."""
    oldest: dict[str, float] = {}
    for queue, run_at in heads:
        if run_at <= now and (queue not in oldest or run_at < oldest[queue]):
            oldest[queue] = run_at
    return {queue: now - run_at for queue, run_at in oldest.items()}


def lease_expired(row: TaskRecord, now: float) -> bool:
    """Whether this task is Running on a lease that ended before ``now`` (a rescue's)."""
    return (
        row.status is Status.RUNNING
        and row.lease_expires_at is not None
        and row.lease_expires_at < now
    )


def awaits_cancel(row: TaskRecord) -> bool:
    """Whether this task is Running with a cancel request its worker has yet to act on."""
    return row.status is Status.RUNNING and row.cancel_requested


def claimed_changes(row: TaskRecord, worker_id: str, now: float, lease: float) -> dict[str, Any]:
    """What a claim does: Running, one more attempt, leased to ``worker_id`` for ``lease`` s."""
    return {
        "status": Status.RUNNING,
        "attempts": row.attempts + 1,
        "started_at": now,
        "worker_id": worker_id,
        "lease_token": new_lease_token(),
        "lease_expires_at": now + lease,
    }


def finished_changes(
    status: Status, now: float, *, result: str | None, error: str | None, traceback: str | None
) -> dict[str, Any]:
    """What a worker's finish does: the finished ``status`` and outcome, the lease let go."""
    check_finish_status(status)
    return {
        "status": status,
        "result": result,
        "error": error,
        "traceback": traceback,
        "finished_at": now,
        "lease_token": None,
        "lease_expires_at": None,
    }


def requeued_changes(
    row: TaskRecord,
    now: float,
    *,
    delay: float,
    error: str | None,
    traceback: str | None,
    refund_attempt: bool,
) -> dict[str, Any]:
    """What a requeue does: Pending again after ``delay``, the lease and any cancel request
    dropped, the attempt given back when asked; without a new error the previous one (and
    its traceback) stays, as in a graceful release."""
    changes: dict[str, Any] = {
        "status": Status.PENDING,
        "run_at": now + delay,
        "attempts": max(row.attempts - 1, 0) if refund_attempt else row.attempts,
        "lease_token": None,
        "lease_expires_at": None,
        "cancel_requested": False,
    }
    if error is not None:
        changes.update(error=error, traceback=traceback)
    return changes


def cancel_changes(row: TaskRecord, now: float) -> dict[str, Any] | None:
    """What a cancel request does: a Pending task is Cancelled at once, a Running one is
    flagged for its worker; None when there is nothing to do (finished, or flagged before)."""
    if row.status is Status.PENDING:
        return {"status": Status.CANCELLED, "finished_at": now}
    if row.status is Status.RUNNING and not row.cancel_requested:
        return {"cancel_requested": True}
    return None


def check_retryable(status: Status) -> None:
    """Only a Failed or Cancelled task can be retried by a user."""
    if status not in RETRYABLE:
        raise retry_refused_error(status)


def retried_changes(row: TaskRecord, now: float) -> dict[str, Any]:
    """What a user's retry does: Pending, due now, no attempts, every outcome cleared;
    `InvalidTransitionError` unless the task is Failed or Cancelled."""
    check_retryable(row.status)
    return {
        "status": Status.PENDING,
        "attempts": 0,
        "run_at": now,
        "started_at": None,
        "finished_at": None,
        "lease_token": None,
        "lease_expires_at": None,
        "worker_id": None,
        "cancel_requested": False,
        "result": None,
        "error": None,
        "traceback": None,
        "progress": None,
    }


def prune_cutoffs(older_than: Mapping[Status, float], now: float) -> dict[Status, float]:
    """For each finished status named, the time before which its tasks may be pruned; the
    statuses not named (and the active ones) are kept whatever their age."""
    return {s: now - age for s, age in older_than.items() if s in FINISHED}


def new_schedule(name: str, definition: str, now: float) -> ScheduleRecord:
    """A schedule just created: not counting ticks yet, never fired, running."""
    return ScheduleRecord(
        name=name,
        definition=definition,
        last_tick=None,
        last_fired=None,
        paused=False,
        updated_at=now,
    )


def paused_changes(row: ScheduleRecord, paused: bool, now: float) -> dict[str, Any] | None:
    """What pausing or resuming does; None when the schedule is so already. Resuming
    forgets the last tick: the ticks missed meanwhile never fire."""
    if row.paused == paused:
        return None
    return {
        "paused": paused,
        "last_tick": row.last_tick if paused else None,
        "updated_at": now,
    }


def may_fire(row: ScheduleRecord | None, expected_last_tick: float | None) -> bool:
    """Whether a firing that read ``expected_last_tick`` may go on: the schedule exists,
    runs, and nobody fired it meanwhile (the compare-and-set that fires each tick once)."""
    return row is not None and not row.paused and row.last_tick == expected_last_tick


def fired_changes(
    row: ScheduleRecord, new_last_tick: float | None, fired: float | None, now: float
) -> dict[str, Any]:
    """What a firing does: the cursor moves to ``new_last_tick``; ``last_fired`` moves
    only when a tick submitted a task (``fired`` given)."""
    return {
        "last_tick": new_last_tick,
        "last_fired": row.last_fired if fired is None else fired,
        "updated_at": now,
    }
