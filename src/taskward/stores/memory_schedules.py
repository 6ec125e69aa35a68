"""The schedule methods of the in-memory store (`taskward.stores.memory.MemoryStore`).

Schedules live in a dict by name; what a pause, a resume or a firing does to one is decided
by `taskward.stores.rules`, as in the SQL stores. Firing inserts its tick tasks through the
store's own `insert`, which never awaits: the compare-and-set and the insert happen with no
other coroutine in between, as one transaction would in SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from taskward.stores.base import NewTask, ScheduleRecord, TaskRecord
from taskward.stores.rules import (
    duplicate_schedule_error,
    fired_changes,
    holds,
    may_fire,
    new_schedule,
    paused_changes,
)

__all__ = ["MemorySchedules"]


class MemorySchedules:
    """The schedule methods of `MemoryStore` (which provides the attributes below)."""

    _schedules: dict[str, ScheduleRecord]
    _clock: Callable[[], float]
    _leader: tuple[str, float] | None  # (holder, expires_at), as `lead` keeps it

    if TYPE_CHECKING:

        async def insert(self, tasks: Sequence[NewTask]) -> list[TaskRecord]: ...

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        """Create a schedule, or (with ``replace``) update its definition."""
        old = self._schedules.get(name)
        if old is not None and not replace:
            raise duplicate_schedule_error(name)
        now = self._clock()
        if old is None:
            new = new_schedule(name, definition, now)
        else:
            new = dataclasses.replace(old, definition=definition, updated_at=now)
        self._schedules[name] = new
        return new

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The schedule of this name, or None."""
        return self._schedules.get(name)

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        return [self._schedules[n] for n in sorted(self._schedules)]

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False when there is none."""
        return self._schedules.pop(name, None) is not None

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume; resuming a paused schedule forgets its last tick."""
        old = self._schedules.get(name)
        if old is None:
            return None
        changes = paused_changes(old, paused, self._clock())
        if changes is None:
            return old
        new = dataclasses.replace(old, **changes)
        self._schedules[name] = new
        return new

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
        """Compare-and-set the last tick and insert the tick tasks, all or nothing (only while
        ``leader``, when given, holds the maintenance role)."""
        if leader is not None and not holds(self._leader, leader, self._clock()):
            return False
        old = self._schedules.get(name)
        if old is None or not may_fire(old, expected_last_tick):
            return False
        if tasks:
            # insert never awaits, so nothing runs between this check and the change below;
            # if it raises, nothing has changed.
            await self.insert(tasks)
        changes = fired_changes(old, new_last_tick, fired, self._clock())
        self._schedules[name] = dataclasses.replace(old, **changes)
        return True
