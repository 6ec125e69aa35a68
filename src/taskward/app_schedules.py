"""An App's schedules: declared in code (`App.schedule`), stored, read, paused and resumed.

`AppSchedules` is the part of `taskward.app.App` about durable schedules; the tick
arithmetic is `taskward.scheduler`'s, and firing is `taskward.maintenance`'s.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from taskward.errors import (
    ConfigurationError,
    InvalidArgumentsError,
    UnknownScheduleError,
    UnknownTaskError,
)
from taskward.homeloop import on_home_loop as _on_home_loop
from taskward.options import check_text
from taskward.scheduler import Schedule, ScheduleInfo, schedule_info
from taskward.stores.base import Store
from taskward.tasks import TaskFunction

__all__ = ["AppSchedules"]


class AppSchedules:
    """The schedule methods of `App` (which provides the attributes below)."""

    _home: asyncio.AbstractEventLoop | None
    _schedules: dict[str, Schedule]

    if TYPE_CHECKING:

        def get_task(
            self, name: TaskFunction[Any, Any] | str | None = None
        ) -> TaskFunction[Any, Any]: ...

        async def _ready(self) -> Store: ...

    def schedule(
        self,
        name: str,
        task: TaskFunction[Any, Any] | str,
        *,
        every: float | timedelta | None = None,
        cron: str | None = None,
        args: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        catch_up: bool = False,
        max_instances: int = 1,
    ) -> Schedule:
        """Declare a durable schedule: submit ``task`` with ``args`` on every tick.

        ``every`` (seconds or a timedelta, ticks aligned to the Unix epoch) or ``cron`` (five
        fields, read in ``timezone``). Workers store it at start (keeping its last tick across
        restarts), and whichever process leads maintenance submits each tick once, as a task
        named ``<name>@<tick time>``. A bad schedule raises `ConfigurationError` here.
        """
        given: object = task  # the annotation is not checked at run time
        if not isinstance(given, TaskFunction | str):
            # A plain function: the usual slip is a missing @app.task on it.
            what = getattr(given, "__qualname__", None) if callable(given) else None
            raise ConfigurationError(
                f"schedule {name!r}: {what}() is not a task function: decorate it with"
                " @app.task (a schedule submits a task of it on every tick)"
                if what
                else f"schedule {name!r}: give a task function (@app.task) or its name,"
                f" not {given!r}"
            )
        try:
            sched = Schedule(
                name=name,
                task=task.name if isinstance(task, TaskFunction) else task,
                args=dict(args or {}),
                every=every,  # type: ignore[arg-type]  # a timedelta is converted
                cron=cron,
                timezone=timezone,
                catch_up=catch_up,
                max_instances=max_instances,
            )
            self.check_schedule(sched)
        except (InvalidArgumentsError, UnknownTaskError) as exc:
            raise ConfigurationError(f"schedule {name!r}: {exc}") from None
        if name in self._schedules:
            raise ConfigurationError(f"a schedule named {name!r} is already declared")
        self._schedules[name] = sched
        return sched

    @property
    def schedules(self) -> Mapping[str, Schedule]:
        """The schedules declared in code, by name (read-only)."""
        return MappingProxyType(self._schedules)

    def check_schedule(self, schedule: Schedule) -> None:
        """Raise `UnknownTaskError` or `InvalidArgumentsError` unless this app can fire it."""
        check_text("schedule name", schedule.name, field="name")
        self.get_task(schedule.task).prepare_args(dict(schedule.args))

    async def store_schedules(self) -> None:
        """Put the code-declared schedules in the store (their last ticks are kept)."""
        store = await self._ready()
        for sched in self._schedules.values():
            await store.put_schedule(sched.name, sched.definition(), replace=True)

    # -- schedules in the store ---------------------------------------------------------

    async def _schedule_info(self, name: str, record: Any) -> ScheduleInfo:
        if record is None:
            raise UnknownScheduleError(f"no schedule named {name!r}")
        store = await self._ready()
        return schedule_info(record, await store.now())

    @_on_home_loop
    async def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> ScheduleInfo:
        """Store a schedule (`DuplicateNameError` if the name is taken, unless ``replace``)."""
        self.check_schedule(schedule)
        store = await self._ready()
        record = await store.put_schedule(schedule.name, schedule.definition(), replace=replace)
        return await self._schedule_info(schedule.name, record)

    @_on_home_loop
    async def get_schedule(self, name: str) -> ScheduleInfo | None:
        """The stored schedule of this name, or None."""
        check_text("schedule name", name, field="name")
        record = await (await self._ready()).get_schedule(name)
        return None if record is None else await self._schedule_info(name, record)

    @_on_home_loop
    async def list_schedules(self) -> builtins.list[ScheduleInfo]:
        """Every stored schedule, by name (one whose row is corrupt is left out)."""
        store = await self._ready()
        now = await store.now()
        out = []
        for record in await store.list_schedules():
            try:
                out.append(schedule_info(record, now))
            except InvalidArgumentsError:
                continue
        return out

    @_on_home_loop
    async def remove_schedule(self, name: str) -> None:
        """Delete a stored schedule (its tasks stay); `UnknownScheduleError` if none."""
        check_text("schedule name", name, field="name")
        if not await (await self._ready()).delete_schedule(name):
            raise UnknownScheduleError(f"no schedule named {name!r}")

    @_on_home_loop
    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop firing a schedule until `resume_schedule`."""
        check_text("schedule name", name, field="name")
        record = await (await self._ready()).set_schedule_paused(name, True)
        return await self._schedule_info(name, record)

    @_on_home_loop
    async def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire a paused schedule again, from its next tick (missed ticks are skipped)."""
        check_text("schedule name", name, field="name")
        record = await (await self._ready()).set_schedule_paused(name, False)
        return await self._schedule_info(name, record)
