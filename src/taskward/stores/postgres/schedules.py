"""The PostgreSQL store's durable schedules: the statements of ``schedules.sql``, as methods.

`ScheduleOps` is mixed into `PostgresStore`: the `Store` methods that keep schedules in
``taskward_schedules``. Firing a tick is one transaction: the compare-and-set of the last
tick and the insert of the tick's tasks, so each tick fires once however many leaders race.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from taskward.stores.base import ChangeSignal, NewTask, ScheduleRecord, TaskRecord
from taskward.stores.postgres.rows import schedule_record
from taskward.stores.postgres.runner import DB_ERRORS, Runner, affected
from taskward.stores.postgres.statements import QUERIES, SCHEDULE_QUERIES
from taskward.stores.rules import duplicate_schedule_error

__all__ = ["ScheduleOps"]

_Q = SCHEDULE_QUERIES


class ScheduleOps:
    """The schedule methods of `PostgresStore` (which provides the attributes below)."""

    _runner: Runner
    _change: ChangeSignal

    if TYPE_CHECKING:

        def _fake(self) -> float | None: ...

        async def insert(
            self, tasks: Sequence[NewTask], *, connection: Any = None
        ) -> builtins.list[TaskRecord]: ...

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        """Create a schedule, or (with ``replace``) update its definition."""
        statement = _Q["schedule_replace" if replace else "schedule_insert"]
        try:
            rows = await self._runner.fetch(statement, self._fake(), name, definition)
        except asyncpg.UniqueViolationError:
            raise duplicate_schedule_error(name) from None
        return schedule_record(rows[0])

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        """The schedule of this name, or None."""
        rows = await self._runner.fetch(_Q["schedule_get"], name)
        return schedule_record(rows[0]) if rows else None

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        """Every schedule, by name."""
        return [schedule_record(r) for r in await self._runner.fetch(_Q["schedule_list"])]

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False when there is none."""
        return affected(await self._runner.execute(_Q["schedule_delete"], name)) == 1

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume; resuming a paused schedule forgets its last tick."""
        rows = await self._runner.fetch(_Q["schedule_pause"], self._fake(), paused, name)
        return schedule_record(rows[0]) if rows else await self.get_schedule(name)

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
        """Compare-and-set the last tick and insert the tick tasks, in one transaction (only
        while ``leader``, when given, holds the maintenance role: read in the transaction,
        so a statement held up past the end of the role fires nothing)."""
        runner = self._runner
        try:
            async with runner.need_pool().acquire() as conn, conn.transaction():
                if leader is not None and not await conn.fetchval(
                    QUERIES["leading"].sql, self._fake(), leader
                ):
                    return False
                status = await conn.execute(
                    _Q["schedule_fire"].sql,
                    self._fake(),
                    new_last_tick,
                    name,
                    expected_last_tick,
                    fired,
                )
                if affected(status) != 1:
                    return False
                if tasks:
                    await self.insert(tasks, connection=conn)
        except DB_ERRORS as e:
            raise runner.error(e) from e
        if tasks:
            self._change.notify()
        return True

    async def count_active(self, name_prefix: str) -> int:
        """Active tasks whose name starts with ``name_prefix``."""
        count: int = await self._runner.fetchval(_Q["count_active"], name_prefix)
        return count
