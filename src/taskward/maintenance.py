"""Maintenance: what the leading worker does for everyone, on its store, in the background.

- `run_maintenance`: rescue the tasks whose lease expired (their worker died or stalled)
  and prune old finished tasks in small batches, every ``min(lease / 3, 5)`` seconds.
- `run_schedules` / `fire_due`: fire the durable schedules' due ticks. `fire_due` applies
  `taskward.scheduler.plan` through the store's `fire_schedule`, which compares-and-sets the
  schedule's ``last_tick`` and inserts the tick tasks in one transaction, so each tick is
  inserted once even if two processes both believe they lead.

Both act only while this process holds the maintenance role (`taskward.leader`), checked
before every round and every step; each is also safe to repeat, so a stale leader cannot
do harm, only wasted work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from taskward.errors import DuplicateNameError, InvalidArgumentsError, TaskwardError
from taskward.models import Status
from taskward.retry import retry_delay
from taskward.scheduler import Schedule, next_tick, plan, tick_name

if TYPE_CHECKING:
    from taskward.app import App
    from taskward.stores.base import NewTask, ScheduleRecord, Store

__all__ = ["Pruning", "fire_due", "run_maintenance", "run_schedules"]

logger = logging.getLogger("taskward.maintenance")


@dataclass(frozen=True, slots=True)
class Pruning:
    """How long finished tasks are kept (seconds; None keeps them), pruned in small batches."""

    completed: float | None = 86_400.0
    failed: float | None = 7 * 86_400.0
    cancelled: float | None = 7 * 86_400.0
    batch: int = 500
    every: float = 60.0

    def ages(self) -> dict[Status, float]:
        """The store's ``prune`` argument."""
        ages = {
            Status.COMPLETED: self.completed,
            Status.FAILED: self.failed,
            Status.CANCELLED: self.cancelled,
        }
        return {status: age for status, age in ages.items() if age is not None}


async def run_maintenance(
    store: Store,
    leader: str,
    leading: Callable[[], bool],
    *,
    every: float,
    pruning: Pruning | None,
) -> None:
    """Rescue expired leases and prune, every ``every`` seconds while ``leading()``, as
    ``leader`` (the store checks the role again in the rescue's own transaction). Runs until
    cancelled; store failures are logged and tried again at the next round."""
    since_prune = float("inf")
    while True:
        try:
            for record in await store.rescue(leader=leader) if leading() else []:
                logger.warning(
                    "task %s (%s): its worker was lost (lease expired); now %s",
                    record.id,
                    record.task,
                    record.status,
                )
            if leading() and pruning is not None and since_prune >= pruning.every:
                since_prune = 0.0
                await _prune(store, pruning, leading)
        except Exception as exc:
            logger.warning("%s: maintenance failed (%s)", leader, exc)
        await asyncio.sleep(every)
        since_prune += every


async def _prune(store: Store, pruning: Pruning, leading: Callable[[], bool]) -> None:
    ages = pruning.ages()
    # Small batches, with a pause between, so other writers get their turn.
    for _ in range(100):
        if not (ages and leading()) or await store.prune(ages, pruning.batch) < pruning.batch:
            return
        await asyncio.sleep(0.05)


def _tick_tasks(app: App, schedule: Schedule, ticks: list[float]) -> list[NewTask]:
    fn = app.get_task(schedule.task)
    return [
        fn.prepare_args(
            dict(schedule.args),
            name=tick_name(schedule, tick),
            run_at=datetime.fromtimestamp(tick, UTC),
        )
        for tick in ticks
    ]


async def _fire_one(
    app: App, store: Store, record: ScheduleRecord, now: float, leader: str | None
) -> float | None:
    """Fire one schedule's due ticks; return its next tick (None: paused or broken)."""
    if record.paused:
        return None
    try:
        schedule = Schedule.from_definition(record.name, record.definition)
    except InvalidArgumentsError as exc:
        logger.error("schedule %r cannot be read, so it does not fire: %s", record.name, exc)
        return None
    active = await store.count_active(schedule.prefix) if record.last_tick is not None else 0
    step = plan(schedule, record.last_tick, now, active=active)
    if step.last_tick != record.last_tick:
        try:
            tasks = _tick_tasks(app, schedule, step.ticks)
        except TaskwardError as exc:
            # Another version of the app may know this task: leave the ticks for it.
            logger.error("schedule %r cannot fire: %s", record.name, exc)
            return None
        if not step.ticks and record.last_tick is not None:
            logger.warning(
                "schedule %r: tick skipped, %d of its tasks are still active (max_instances)",
                record.name,
                active,
            )
        try:
            fired = await store.fire_schedule(
                record.name,
                record.last_tick,
                step.last_tick,
                tasks,
                fired=step.ticks[-1] if step.ticks else None,
                leader=leader,
            )
        except DuplicateNameError as exc:
            logger.warning("schedule %r: tick skipped (%s)", record.name, exc)
            fired = await store.fire_schedule(
                record.name, record.last_tick, step.last_tick, [], leader=leader
            )
        if fired:
            for task in tasks:
                logger.info("schedule %r fired %s (task %s)", record.name, task.name, task.id)
        else:
            logger.debug(
                "schedule %r: another process fired it first, or this one no longer leads",
                record.name,
            )
            return now  # look again soon
    assert step.last_tick is not None
    return next_tick(schedule, step.last_tick)


async def fire_due(
    app: App, store: Store, now: float, *, leader: str | None = None
) -> float | None:
    """Fire every schedule's due ticks at ``now``; return the earliest next tick, if any.

    ``leader``: fire only while this holder has the maintenance role, as the store checks
    in each firing's own transaction."""
    soonest: float | None = None
    for record in await store.list_schedules():
        following = await _fire_one(app, store, record, now, leader)
        if following is not None and (soonest is None or following < soonest):
            soonest = following
    return soonest


async def run_schedules(
    app: App,
    store: Store,
    *,
    leading: Callable[[], bool],
    poll: float = 1.0,
    leader: str | None = None,
) -> None:
    """Store the app's code-declared schedules, then fire due ticks while ``leading()`` says
    this process leads maintenance (checked before every round, and again by the store in
    each firing's transaction for ``leader``, the role's holder).

    Wakes at the next tick or every ``poll`` seconds (to notice schedules added elsewhere);
    store failures are logged and retried. Runs until cancelled.
    """
    synced = False
    failures = 0
    while True:
        pause = poll
        try:
            if not synced:
                await app.store_schedules()
                synced = True
            if leading():
                now = await store.now()
                soonest = await fire_due(app, store, now, leader=leader)
                if soonest is not None:
                    pause = min(poll, max(soonest - now, 0.01))
            failures = 0
        except Exception as exc:
            failures += 1
            pause = retry_delay(failures, first=2 * poll, cap=30.0)
            logger.warning("schedules: round failed (%s); again in %.1fs", exc, pause)
        await asyncio.sleep(pause)
