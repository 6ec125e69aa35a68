"""Durable schedules: interval and cron tasks that fire once per tick, across any number of
processes.

A `Schedule` says *what* to run (a task function and its arguments) and *when* (``every``
seconds, or a ``cron`` expression in a ``timezone``). Its state in the store is two numbers:
``last_tick``, the newest tick already handled (the firing's cursor, which also moves past
ticks that submit nothing: where a new schedule starts counting, a tick skipped for
``max_instances``), and ``last_fired``, the newest tick that submitted its task (what users
are shown as the schedule's last tick). Everything else is pure:

- `next_tick` / `latest_tick` are the tick arithmetic. Intervals are aligned to the Unix epoch
  (``every=60`` ticks on each whole minute, UTC), so every process computes the same ticks
  and a tick's task name, ``<schedule>@<tick time>``, is the same everywhere. Cron
  expressions are read by croniter on the *wall clock* of the schedule's time zone, and each
  wall time becomes one instant: a wall time that a DST gap skips fires once, at the end of
  the gap; one that a DST overlap repeats fires once, at its first occurrence.
- `plan` turns (schedule, last tick, now, active ticks) into the ticks to fire and the new
  ``last_tick``. ``catch_up=False`` fires only the newest missed tick; ``catch_up=True`` fires
  each missed tick (at most `MAX_TICKS_PER_ROUND` per round). ``max_instances`` bounds the
  ticks Pending or Running at once: without catch-up, a tick that finds it full is skipped;
  with catch-up it waits for room.

Cron expressions are checked by `taskward.cron`. Firing the ticks (store I/O) is done by
`taskward.maintenance`, in the process that leads maintenance.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskward.cron import MAX_CRON_LENGTH, check_cron, croniter_class
from taskward.errors import InvalidArgumentsError
from taskward.options import MAX_DELAY, MAX_NAME_LENGTH
from taskward.redact import Secrets, redact_args

if TYPE_CHECKING:
    from taskward.stores.base import ScheduleRecord

__all__ = [
    "MAX_CRON_LENGTH",
    "MAX_SCHEDULE_NAME",
    "MAX_TICKS_PER_ROUND",
    "MIN_EVERY",
    "UNSAFE_NAME_CHARACTERS",
    "Plan",
    "Schedule",
    "ScheduleInfo",
    "latest_tick",
    "next_tick",
    "plan",
    "schedule_info",
    "tick_name",
]

logger = logging.getLogger("taskward.scheduler")

#: Most ticks one schedule fires in one round (catch-up after a long downtime goes on in
#: the next rounds, so one round never inserts an unbounded batch).
MAX_TICKS_PER_ROUND = 100
#: Longest a tick name's schedule part may be: the whole name must fit a task name.
MAX_SCHEDULE_NAME = MAX_NAME_LENGTH - 40
#: The shortest interval: shorter ones would round away against POSIX times.
MIN_EVERY = 0.001
#: Characters a schedule name may not hold: the HTTP API addresses a schedule by its name in
#: the URL path (``/api/schedules/NAME``), where "/" and "\" split it (proxies read "\" as
#: "/"), "?" and "#" end it, and "%" starts an escape; none survives a URL typed by hand or
#: joined without quoting. Characters that do not print (control characters) are refused too.
UNSAFE_NAME_CHARACTERS = frozenset("/\\?#%")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A task function to submit on every tick of an interval or a cron expression.

    Validated when made: `InvalidArgumentsError` names the bad field. Whether ``task`` is
    registered, and ``args`` fit it, the `App` checks (it knows the task functions).
    """

    name: str
    task: str
    args: Mapping[str, Any] = field(default_factory=dict)
    every: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    catch_up: bool = False
    max_instances: int = 1

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentsError(
                f"schedule name must be a non-empty string, got {name!r}", field="name"
            )
        if len(name) > MAX_SCHEDULE_NAME:
            raise InvalidArgumentsError(
                f"schedule name must be at most {MAX_SCHEDULE_NAME} characters", field="name"
            )
        if "@" in name:
            # Tick tasks are named "<schedule>@<tick>": an "@" in the schedule's own name
            # would make one schedule's ticks look like another's.
            raise InvalidArgumentsError(
                f"schedule name must not contain '@', got {name!r}", field="name"
            )
        for char in name:
            if char in UNSAFE_NAME_CHARACTERS or not char.isprintable():
                raise InvalidArgumentsError(
                    f"schedule name must not contain {char!r}: the HTTP API addresses a"
                    f" schedule by its name in the URL, got {name!r}",
                    field="name",
                )
        if not isinstance(self.task, str) or not self.task.strip():
            raise InvalidArgumentsError(
                f"task must be a non-empty string, got {self.task!r}", field="task"
            )
        if not isinstance(self.args, Mapping):
            raise InvalidArgumentsError(
                f"args must be a JSON object, got {self.args!r}", field="args"
            )
        if (self.every is None) == (self.cron is None):
            raise InvalidArgumentsError(
                "give a schedule either every= or cron=, not both", field="every"
            )
        if self.every is not None:
            every: object = self.every
            if isinstance(every, timedelta):
                every = every.total_seconds()
                object.__setattr__(self, "every", every)
            if (
                isinstance(every, bool)
                or not isinstance(every, int | float)
                or not math.isfinite(every)
                or every <= 0
            ):
                raise InvalidArgumentsError(
                    f"every must be a positive number of seconds (or a timedelta), got {every!r}",
                    field="every",
                )
            if not MIN_EVERY <= every <= MAX_DELAY:
                raise InvalidArgumentsError(
                    f"every must be between {MIN_EVERY} s and {MAX_DELAY:.0f} s (100 years),"
                    f" got {every!r}",
                    field="every",
                )
            object.__setattr__(self, "every", float(every))
        if self.cron is not None:
            check_cron(self.cron)
        _zone(self.timezone)
        mi = self.max_instances
        if isinstance(mi, bool) or not isinstance(mi, int) or mi < 1:
            raise InvalidArgumentsError(
                f"max_instances must be an integer >= 1, got {mi!r}", field="max_instances"
            )
        if not isinstance(self.catch_up, bool):
            raise InvalidArgumentsError(
                f"catch_up must be true or false, got {self.catch_up!r}", field="catch_up"
            )

    @property
    def prefix(self) -> str:
        """The start of every tick task's name: ``<schedule>@``."""
        return f"{self.name}@"

    def definition(self) -> str:
        """The JSON text the store keeps (everything but the name, which is its key)."""
        return json.dumps(
            {
                "task": self.task,
                "args": dict(self.args),
                "every": self.every,
                "cron": self.cron,
                "timezone": self.timezone,
                "catch_up": self.catch_up,
                "max_instances": self.max_instances,
            },
            sort_keys=True,
        )

    @classmethod
    def from_definition(cls, name: str, definition: str) -> Schedule:
        """The schedule a store row holds; `InvalidArgumentsError` when it is corrupt."""
        try:
            data = json.loads(definition)
        except ValueError as exc:
            raise InvalidArgumentsError(f"schedule {name!r}: corrupt definition: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidArgumentsError(f"schedule {name!r}: corrupt definition")
        known = {"task", "args", "every", "cron", "timezone", "catch_up", "max_instances"}
        try:
            return cls(name=name, **{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise InvalidArgumentsError(f"schedule {name!r}: corrupt definition: {exc}") from None

    def describe(self) -> str:
        """``every 60s`` or ``cron 0 3 * * * (Europe/Paris)``, for people."""
        if self.every is not None:
            return f"every {self.every:g}s"
        return f"cron {self.cron} ({self.timezone})"


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentsError(
            f"timezone must be an IANA time zone name, got {name!r}", field="timezone"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise InvalidArgumentsError(
            f"unknown timezone {name!r}: give an IANA name such as 'UTC' or 'Europe/Paris'",
            field="timezone",
        ) from None


# -- pure tick arithmetic --------------------------------------------------------------------


def _wall(at: float, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time in ``zone`` at the POSIX time ``at``."""
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> float:
    """The POSIX time of a wall-clock time in ``zone``.

    A wall time repeated by a DST overlap is its first occurrence; one skipped by a DST gap
    is the end of the gap (the first instant that exists after it).
    """
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    if _wall(first, zone) == wall:
        return first
    # In a gap: fold=1 reads the wall time with the offset after the change (an instant
    # before the gap), fold=0 with the offset before (an instant after it). The change lies
    # between; find it to the microsecond (offsets change on whole seconds anyway).
    lo = wall.replace(tzinfo=zone, fold=1).timestamp()
    hi = first
    offset_after = datetime.fromtimestamp(hi, zone).utcoffset()
    lo_s, hi_s = math.floor(lo), math.ceil(hi)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == offset_after:
            hi_s = mid
        else:
            lo_s = mid
    return float(hi_s)


def next_tick(schedule: Schedule, after: float) -> float:
    """The first tick strictly after the POSIX time ``after``."""
    if schedule.every is not None:
        every = schedule.every
        tick = (math.floor(after / every) + 1) * every
        while tick <= after:  # float rounding
            tick += every
        return tick
    zone = _zone(schedule.timezone)
    it = croniter_class()(schedule.cron, _wall(after, zone))
    while True:
        tick = _instant(it.get_next(datetime), zone)
        # A wall time in the second pass of an overlap maps to its first occurrence, which
        # may be at or before ``after``: it has fired already.
        if tick > after:
            return tick


def latest_tick(schedule: Schedule, at: float) -> float:
    """The newest tick at or before the POSIX time ``at``."""
    if schedule.every is not None:
        every = schedule.every
        tick = math.floor(at / every) * every
        while tick > at:
            tick -= every
        while tick + every <= at:
            tick += every
        return tick
    zone = _zone(schedule.timezone)
    # Start a microsecond later so that a tick exactly at ``at`` counts.
    it = croniter_class()(schedule.cron, _wall(at, zone) + timedelta(microseconds=1))
    tick = _instant(it.get_prev(datetime), zone)
    while tick > at:
        tick = _instant(it.get_prev(datetime), zone)
    # Wall times near DST changes do not map to instants in order one by one; walking
    # forward from a tick known to be early lands on the newest one.
    while (following := next_tick(schedule, tick)) <= at:
        tick = following
    return tick


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleInfo:
    """A stored schedule as users see it: its definition, state and next tick.

    ``last_tick`` is the newest tick that submitted its task (None: none has yet); ticks
    that were skipped, or passed before the schedule started counting, never show here.
    """

    schedule: Schedule
    paused: bool
    last_tick: datetime | None
    next_tick: datetime | None  # None while paused

    def to_json(self, secrets: Secrets | None = None) -> dict[str, Any]:
        """The JSON object the API and ``--json`` show; secret arguments as ``"***"`` (see
        `TaskInfo.to_json`)."""
        s = self.schedule
        return {
            "name": s.name,
            "task": s.task,
            "args": redact_args(s.args, secrets),
            "every": s.every,
            "cron": s.cron,
            "timezone": s.timezone,
            "catch_up": s.catch_up,
            "max_instances": s.max_instances,
            "paused": self.paused,
            "last_tick": None if self.last_tick is None else self.last_tick.isoformat(),
            "next_tick": None if self.next_tick is None else self.next_tick.isoformat(),
        }


def _datetime(at: float | None) -> datetime | None:
    return None if at is None else datetime.fromtimestamp(at, UTC)


def schedule_info(record: ScheduleRecord, now: float) -> ScheduleInfo:
    """The `ScheduleInfo` of a store row at ``now``; `InvalidArgumentsError` if corrupt."""
    schedule = Schedule.from_definition(record.name, record.definition)
    following = None
    if not record.paused:
        # A tick already due fires within a round: show it, not a later one.
        following = next_tick(schedule, now if record.last_tick is None else record.last_tick)
    return ScheduleInfo(
        schedule=schedule,
        paused=record.paused,
        last_tick=_datetime(record.last_fired),
        next_tick=_datetime(following),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """What one round does for one schedule: fire ``ticks``, then store ``last_tick``."""

    ticks: list[float]
    last_tick: float | None


def plan(
    schedule: Schedule,
    last_tick: float | None,
    now: float,
    *,
    active: int = 0,
    limit: int = MAX_TICKS_PER_ROUND,
) -> Plan:
    """The ticks due at ``now`` since ``last_tick``, and the ``last_tick`` to store after.

    A schedule that never ran (``last_tick`` None) starts counting at ``now``: nothing
    fires, and the newest tick so far becomes its ``last_tick``. ``active`` is how many of
    its ticks are Pending or Running now (for ``max_instances``).
    """
    if last_tick is None:
        return Plan([], latest_tick(schedule, now))
    room = max(schedule.max_instances - active, 0)
    if schedule.catch_up:
        ticks: list[float] = []
        tick = last_tick
        while len(ticks) < min(room, limit) and (tick := next_tick(schedule, tick)) <= now:
            ticks.append(tick)
        return Plan(ticks, ticks[-1] if ticks else last_tick)
    newest = latest_tick(schedule, now)
    if newest <= last_tick:
        return Plan([], last_tick)
    # Without catch-up, a tick that finds no room is skipped, not postponed.
    return Plan([newest] if room else [], newest)


def tick_name(schedule: Schedule, tick: float) -> str:
    """The name of a tick's task: ``<schedule>@<tick time in UTC, ISO 8601>``."""
    when = datetime.fromtimestamp(tick, UTC).isoformat().replace("+00:00", "Z")
    return f"{schedule.prefix}{when}"
