"""The stores' state rules as pure functions: every move a rule makes is in the one
transition table, and each rule refuses or ignores what it must."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import uuid4

import pytest

from taskward.errors import InvalidTransitionError
from taskward.models import FINISHED, TRANSITIONS, Status
from taskward.stores.base import TaskRecord
from taskward.stores.rules import (
    awaits_cancel,
    cancel_changes,
    claimable,
    claimed_changes,
    finished_changes,
    fired_changes,
    holds_lease,
    lease_expired,
    may_fire,
    new_schedule,
    paused_changes,
    prune_cutoffs,
    requeued_changes,
    rescued_changes,
    retried_changes,
)

NOW = 1_000.0


def _row(status: Status, **changes: Any) -> TaskRecord:
    base = TaskRecord(
        id=uuid4(),
        seq=1,
        task="t",
        args="{}",
        name=None,
        priority=0,
        queue="default",
        status=status,
        attempts=1,
        max_attempts=3,
        timeout=None,
        run_at=0.0,
        created_at=0.0,
    )
    return dataclasses.replace(base, **changes)


def _running(**changes: Any) -> TaskRecord:
    return _row(Status.RUNNING, **{"lease_token": "tok", "lease_expires_at": NOW - 1, **changes})


def _moves(row: TaskRecord, changes: dict[str, Any] | None) -> Status:
    """The status ``changes`` lead to, checked against the transition table."""
    new = row.status if changes is None else changes.get("status", row.status)
    assert new == row.status or new in TRANSITIONS[row.status], (row.status, new)
    return Status(new)


@pytest.mark.parametrize("status", list(Status))
def test_a_cancel_cancels_pending_flags_running_and_leaves_the_rest(status: Status) -> None:
    row = _row(status)
    changes = cancel_changes(row, NOW)
    if status is Status.PENDING:
        assert _moves(row, changes) is Status.CANCELLED
        assert changes == {"status": Status.CANCELLED, "finished_at": NOW}
    elif status is Status.RUNNING:
        assert changes == {"cancel_requested": True}
        flagged = dataclasses.replace(row, **changes)
        assert awaits_cancel(flagged)
        assert cancel_changes(flagged, NOW) is None  # asked once is enough
    else:
        assert changes is None


@pytest.mark.parametrize("status", list(Status))
def test_only_failed_and_cancelled_tasks_are_retried(status: Status) -> None:
    row = _row(status, error="boom", result="r", progress="p", finished_at=1.0)
    if status not in (Status.FAILED, Status.CANCELLED):
        with pytest.raises(InvalidTransitionError, match=f"not {status}"):
            retried_changes(row, NOW)
        return
    new = dataclasses.replace(row, **retried_changes(row, NOW))
    assert _moves(row, retried_changes(row, NOW)) is Status.PENDING
    assert (new.attempts, new.run_at, new.error, new.result, new.progress) == (0, NOW, *[None] * 3)
    assert new.finished_at is None
    assert claimable(new)


def test_a_rescue_requeues_fails_or_cancels_within_the_table() -> None:
    assert lease_expired(_running(), NOW)
    assert not lease_expired(_running(lease_expires_at=NOW), NOW)
    for row, expected in [
        (_running(), Status.PENDING),
        (_running(attempts=3), Status.FAILED),
        (_running(cancel_requested=True), Status.CANCELLED),
    ]:
        changes = rescued_changes(row, NOW)
        assert _moves(row, changes) is expected
        assert changes["lease_token"] is None


def test_a_worker_s_claim_finish_and_requeue_stay_within_the_table() -> None:
    pending = _row(Status.PENDING, attempts=0)
    claimed = dataclasses.replace(pending, **claimed_changes(pending, "w", NOW, 30))
    assert _moves(pending, claimed_changes(pending, "w", NOW, 30)) is Status.RUNNING
    assert (claimed.attempts, claimed.worker_id, claimed.lease_expires_at) == (1, "w", NOW + 30)
    assert claimed.lease_token is not None
    assert holds_lease(claimed, claimed.lease_token)
    assert not holds_lease(claimed, "someone else's")
    for status in FINISHED:
        changes = finished_changes(status, NOW, result=None, error=None, traceback=None)
        assert _moves(claimed, changes) is status
    with pytest.raises(InvalidTransitionError):
        finished_changes(Status.PENDING, NOW, result=None, error=None, traceback=None)


def test_a_requeue_keeps_the_old_error_unless_given_and_refunds_when_asked() -> None:
    row = _running(attempts=2, error="old", traceback="tb", cancel_requested=True)
    kept = requeued_changes(row, NOW, delay=5, error=None, traceback=None, refund_attempt=True)
    assert _moves(row, kept) is Status.PENDING
    new = dataclasses.replace(row, **kept)
    assert (new.run_at, new.attempts, new.error, new.traceback) == (NOW + 5, 1, "old", "tb")
    assert not new.cancel_requested
    replaced = requeued_changes(
        row, NOW, delay=0, error="new", traceback=None, refund_attempt=False
    )
    assert (replaced["attempts"], replaced["error"], replaced["traceback"]) == (2, "new", None)


def test_prune_cutoffs_name_only_finished_statuses() -> None:
    ages = {Status.COMPLETED: 10.0, Status.PENDING: 1.0, Status.FAILED: 20.0}
    assert prune_cutoffs(ages, NOW) == {Status.COMPLETED: NOW - 10, Status.FAILED: NOW - 20}


def test_schedule_rules() -> None:
    fresh = new_schedule("s", "{}", NOW)
    assert (fresh.last_tick, fresh.last_fired, fresh.paused) == (None, None, False)
    ticking = dataclasses.replace(fresh, last_tick=60.0, last_fired=60.0)
    assert paused_changes(ticking, False, NOW) is None  # running already
    pausing = paused_changes(ticking, True, NOW)
    assert pausing is not None
    paused = dataclasses.replace(ticking, **pausing)
    assert (paused.paused, paused.last_tick) == (True, 60.0)
    assert not may_fire(paused, 60.0)
    resumed = paused_changes(paused, False, NOW + 1)
    assert resumed == {"paused": False, "last_tick": None, "updated_at": NOW + 1}
    assert may_fire(ticking, 60.0)
    assert not may_fire(ticking, 0.0)  # someone fired it meanwhile
    assert not may_fire(None, None)
    assert fired_changes(ticking, 120.0, None, NOW)["last_fired"] == 60.0
    assert fired_changes(ticking, 120.0, 120.0, NOW)["last_fired"] == 120.0
