"""Every store against the one transition table: whatever sequence of operations a store is
given, each task's status moves only along `taskward.models.TRANSITIONS`.

A seeded random walk drives every store operation that can change a status (insert, claim,
heartbeat, finish and finish_many with every status, requeue, progress, cancel requests,
retry, rescue, prune), with fresh and stale lease tokens and a clock that moves; after each
step the statuses of all tasks are compared with the step before. Refusals the contract
allows (a retry of an active task, a finish with a lost lease) are part of the walk.
"""

from __future__ import annotations

import contextlib
import random
from uuid import UUID

import pytest
from store_helpers import FakeClock, new

from taskward.errors import DuplicateNameError, InvalidTransitionError
from taskward.models import FINISHED, TRANSITIONS, Status
from taskward.stores import Store, TaskRecord
from taskward.stores.base import Outcome

STEPS = 400


async def snapshot(store: Store, ids: list[UUID]) -> dict[UUID, Status | None]:
    """The status of each task (None: deleted), read a page at a time."""
    found: dict[UUID, Status] = {}
    cursor = None
    while True:
        page = await store.list(limit=500, cursor=cursor)
        found.update((row.id, row.status) for row in page.items)
        cursor = page.cursor
        if cursor is None:
            break
    return {task_id: found.get(task_id) for task_id in ids}


def check_moves(
    step: str, before: dict[UUID, Status | None], after: dict[UUID, Status | None]
) -> None:
    for task_id, old in before.items():
        new_status = after[task_id]
        if old is None:
            assert new_status is None, f"{step}: a deleted task came back"
        elif new_status is None:
            assert step == "prune", f"{step}: deleted a task"
            assert old in FINISHED, f"prune deleted a {old} task"
        elif new_status is not old:
            assert new_status in TRANSITIONS[old], f"{step}: {old} -> {new_status}"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_statuses_move_only_along_the_transition_table(
    store: Store, clock: FakeClock, seed: int
) -> None:
    rng = random.Random(seed)
    ids: list[UUID] = []
    leased: dict[UUID, TaskRecord] = {}  # the latest claim of each task (its token)
    stale: list[TaskRecord] = []  # claims whose lease may since have been lost
    seen: set[tuple[Status, Status]] = set()

    def some_claim() -> TaskRecord | None:
        pool = list(leased.values()) + stale
        return rng.choice(pool) if pool else None

    for _ in range(STEPS):
        before = await snapshot(store, ids)
        step = rng.choice(
            [
                "insert",
                "claim",
                "claim",
                "heartbeat",
                "finish",
                "finish",
                "finish_many",
                "requeue",
                "progress",
                "cancel",
                "retry",
                "rescue",
                "prune",
                "clock",
            ]
        )
        if step == "insert":
            batch = [
                new(
                    rng.choice([None, f"n{rng.randrange(4)}"]),
                    max_attempts=rng.randint(1, 3),
                    delay=rng.choice([None, 0.0, 5.0]),
                )
                for _ in range(rng.randint(1, 3))
            ]
            with contextlib.suppress(DuplicateNameError):  # a name still active: no insert
                ids += [row.id for row in await store.insert(batch)]
        elif step == "claim":
            for row in await store.claim("w", None, rng.randint(1, 3), rng.choice([1.0, 30.0])):
                if row.id in leased:
                    stale.append(leased[row.id])
                leased[row.id] = row
        elif step == "heartbeat" and leased:
            rows = rng.sample(list(leased.values()), k=min(2, len(leased)))
            await store.heartbeat("w", [(r.id, r.lease_token or "") for r in rows], 30.0)
        elif step == "finish" and (claim := some_claim()) is not None:
            status = rng.choice(sorted(FINISHED))
            await store.finish(claim.id, claim.lease_token or "", status, error="e")
        elif step == "finish_many" and leased:
            rows = rng.sample(list(leased.values()), k=min(3, len(leased)))
            outcomes = [
                Outcome(
                    task_id=r.id,
                    token=r.lease_token or "",
                    status=rng.choice(sorted(FINISHED)),
                    result="1",
                )
                for r in rows
            ]
            await store.finish_many(outcomes)
        elif step == "requeue" and (claim := some_claim()) is not None:
            await store.requeue(
                claim.id,
                claim.lease_token or "",
                delay=rng.choice([0.0, 2.0]),
                error="retry",
                refund_attempt=rng.random() < 0.5,
            )
        elif step == "progress" and (claim := some_claim()) is not None:
            await store.set_progress(claim.id, claim.lease_token or "", '{"done": 1}')
        elif step == "cancel" and ids:
            await store.request_cancel(rng.choice(ids))
        elif step == "retry" and ids:
            ended = [
                i for i, status in before.items() if status in (Status.FAILED, Status.CANCELLED)
            ]
            # Mostly a task that can be retried; sometimes any: active or Completed, or one
            # whose name is taken again, is refused and stays as it is.
            with contextlib.suppress(InvalidTransitionError, DuplicateNameError):
                await store.retry(rng.choice(ended if ended and rng.random() < 0.7 else ids))
        elif step == "rescue":
            await store.rescue()
        elif step == "prune":
            await store.prune({s: rng.choice([0.0, 100.0]) for s in FINISHED}, 2)
        elif step == "clock":
            clock.advance(rng.choice([0.5, 2.0, 40.0]))
        after = await snapshot(store, ids)
        check_moves(step, before, after)
        seen.update(
            (old, now)
            for task_id, old in before.items()
            if old is not None and (now := after[task_id]) is not None and now is not old
        )
    # The walk took every edge a store can take (Pending -> Failed is the in-process
    # manager's alone): else it would prove little.
    edges = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert seen == edges - {(Status.PENDING, Status.FAILED)}
