"""Durable schedules, the pure part: tick arithmetic (intervals, cron, time zones, DST gaps and
overlaps), catch-up and max_instances plans, validation, and firing on a memory store with a
fake clock. Time is always an argument: nothing here sleeps."""

from __future__ import annotations

import itertools
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskward.app import App
from taskward.cron import CRON_MACROS
from taskward.errors import (
    ConfigurationError,
    DuplicateNameError,
    InvalidArgumentsError,
    UnknownScheduleError,
)
from taskward.maintenance import fire_due
from taskward.models import Status
from taskward.scheduler import (
    MAX_TICKS_PER_ROUND,
    Plan,
    Schedule,
    latest_tick,
    next_tick,
    plan,
    tick_name,
)
from taskward.stores import MemoryStore

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """A UTC wall time as POSIX seconds."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def local(at: float, zone: ZoneInfo) -> str:
    """A POSIX time as the wall time (with offset) people in ``zone`` read."""
    return datetime.fromtimestamp(at, zone).isoformat()


def every(seconds: float, **options: Any) -> Schedule:
    return Schedule(name="s", task="t", every=seconds, **options)


def cron(expr: str, timezone: str = "UTC", **options: Any) -> Schedule:
    return Schedule(name="s", task="t", cron=expr, timezone=timezone, **options)


def ticks_between(schedule: Schedule, start: float, end: float) -> list[float]:
    out: list[float] = []
    tick = start
    while (tick := next_tick(schedule, tick)) <= end:
        out.append(tick)
    return out


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": 0}, "every must be a positive number"),
        ({"every": -5}, "every must be a positive number"),
        ({"every": float("inf")}, "every must be a positive number"),
        ({"every": timedelta(0)}, "every must be a positive number"),
        ({"every": True}, "every must be a positive number"),
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "every day"}, "invalid cron expression"),
        ({"cron": "0 0 30 2 *"}, "invalid cron expression '0 0 30 2 *': it never fires"),
        ({"every": 0.0001}, "every must be between 0.001 s and"),
        ({"every": 1e12}, "every must be between 0.001 s and"),
        ({"cron": ""}, "cron must be a cron expression"),
        ({}, "either every= or cron="),
        ({"every": 5, "cron": "* * * * *"}, "either every= or cron="),
        ({"every": 5, "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"every": 5, "max_instances": 0}, "max_instances must be an integer >= 1"),
        ({"every": 5, "name": "a@b"}, "must not contain '@'"),
        ({"every": 5, "name": " "}, "schedule name must be a non-empty string"),
        # Names the HTTP API could not address in /api/schedules/NAME.
        ({"every": 5, "name": "reports/daily"}, "schedule name must not contain '/'"),
        ({"every": 5, "name": "a\\b"}, "schedule name must not contain '\\\\'"),
        ({"every": 5, "name": "why?"}, "schedule name must not contain '?'"),
        ({"every": 5, "name": "no#1"}, "schedule name must not contain '#'"),
        ({"every": 5, "name": "50%"}, "schedule name must not contain '%'"),
        ({"every": 5, "name": "two\nlines"}, "schedule name must not contain '\\n'"),
    ],
)
def test_bad_schedules_are_refused_with_a_clear_error(
    options: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {"name": "s", "task": "t", **options}
    with pytest.raises(InvalidArgumentsError, match=re.escape(message)):
        Schedule(**fields)


def test_names_that_fit_a_url_path_segment_are_accepted() -> None:
    for name in ("nightly report", "sync:crm", "été-1", "a.b_c-d+e"):
        assert Schedule(name=name, task="t", every=60).name == name


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        # Not five fields: croniter would read a sixth as seconds, a seventh as years.
        ("0 0 3 * * *", "expected five fields (minute hour day-of-month month day-of-week)"),
        ("0 0 3 * * *", "but it has 6 (seconds and years are not supported)"),
        ("0 3 * * * 2030", "but it has 6"),
        ("* * * * * * *", "but it has 7"),
        ("0 3 * *", "but it has 4"),
        # Each field: what is wrong with which one.
        ("*/0 * * * *", "minute field '*/0': a step must be at least 1"),
        ("61 * * * *", "minute field '61' is out of range 0-59"),
        ("1,61 * * * *", "minute field '1,61': 61 is out of range 0-59"),
        ("0 24 * * *", "hour field '24' is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field '0' is out of range 1-31"),
        ("0 0 32 * *", "day-of-month field '32' is out of range 1-31"),
        ("0 0 1 13 *", "month field '13' is out of range 1-12 or jan-dec"),
        ("0 0 1 0 *", "month field '0' is out of range 1-12 or jan-dec"),
        ("0 0 * * 8", "day-of-week field '8' is out of range 0-7 or sun-sat"),
        ("*/61 * * * *", "minute field '*/61': a step must be at most 60"),
        ("0 */25 * * *", "hour field '*/25': a step must be at most 24"),
        ("*/x * * * *", "minute field '*/x': the step 'x' is not a whole number"),
        ("5-2 * * * *", "minute field '5-2': the range '5-2' goes backwards"),
        ("0 0 * * sat-sun", "day-of-week field 'sat-sun': the range 'sat-sun' goes backwards"),
        ("0 0 * 12-1 *", "month field '12-1': the range '12-1' goes backwards"),
        ("0,,5 * * * *", "minute field '0,,5': an empty item in a list"),
        ("1- * * * *", "minute field '1-': a range needs a value on each side of '-'"),
        ("-1 * * * *", "minute field '-1': a range needs a value on each side of '-'"),
        ("1.5 * * * *", "minute field '1.5': '1.5' is not a value of this field"),
        ("0 0 * January *", "month field 'January': 'January' is not a value of this field"),
        ("0 0 * * monday", "day-of-week field 'monday': 'monday' is not a value"),
        # croniter's extensions are refused, not read with a meaning of its own.
        ("0 0 L * *", "day-of-month field 'L': 'L' is not a value of this field"),
        ("0 0 1W * *", "day-of-month field '1W'"),
        ("0 0 * * 5#2", "day-of-week field '5#2'"),
        ("H * * * *", "minute field 'H'"),
        ("? * * * *", "minute field '?': '?' stands alone, and only for a day field"),
        ("0 0 ?/2 * *", "day-of-month field '?/2': '?' stands alone"),
        # croniter would read these as other days than standard cron does: refused.
        ("0 0 * * 7-7", "day-of-week field '7-7' would be read as another set of values"),
        ("0 0 * * 7/2", "day-of-week field '7/2' would be read as another set of values"),
        # Macros: known ones only; @reboot means nothing to a schedule.
        ("@reboot", "'@reboot' has no meaning for a schedule"),
        ("@fortnightly", "unknown macro; known: @hourly, @daily, @midnight, @weekly"),
        ("@hourly 5", "unknown macro"),
        # Well-formed, but no such date.
        ("0 0 31 2 *", "it never fires (no such date)"),
    ],
)
def test_cron_errors_say_what_is_wrong_with_which_field(expr: str, problem: str) -> None:
    with pytest.raises(InvalidArgumentsError, match=re.escape(problem)) as caught:
        cron(expr)
    assert str(caught.value).startswith(f"invalid cron expression {expr!r}: ")
    assert caught.value.field == "cron"


def test_the_five_field_message_only_when_the_count_is_wrong() -> None:
    with pytest.raises(InvalidArgumentsError) as caught:
        cron("61 * * * *")
    assert "five fields" not in str(caught.value)


@pytest.mark.parametrize(
    "expr",
    [
        "0 3 * * *",
        " 0  3 * * * ",
        "0\t3 * * *",
        "*/15 2,3 * * *",
        "1-5/2 0-23/6 1-31/10 */3 *",
        "5/15 * * * *",
        "*/60 * * * *",
        "00 09 * * *",
        "0 9 * jan-mar,DEC mon-fri",
        "0 9 * * SUN",
        "0 9 * * 7",
        "0 9 * * 5-7",
        "0 9 * * 0,7",
        "0 9 * * mon/2",
        "0 9 ? * 1",
        "0 9 1 * ?",
        "0 0 29 2 *",
        *CRON_MACROS,
        "@DAILY",
    ],
)
def test_standard_cron_expressions_and_macros_are_accepted(expr: str) -> None:
    s = cron(expr)
    assert next_tick(s, ts(2024, 1, 1)) > ts(2024, 1, 1)


def test_sunday_is_both_0_and_7() -> None:
    start = ts(2024, 1, 1)  # a Monday
    sundays = ticks_between(cron("0 9 * * 0"), start, ts(2024, 2, 1))
    assert ticks_between(cron("0 9 * * 7"), start, ts(2024, 2, 1)) == sundays
    assert ticks_between(cron("0 9 * * sun"), start, ts(2024, 2, 1)) == sundays
    assert [datetime.fromtimestamp(t, UTC).day for t in sundays] == [7, 14, 21, 28]


# A reference reading of cron, written apart from the code under test: the minutes a
# five-field expression fires at, as standard cron defines them. A day runs when it matches
# both day fields, or either one when both are restricted (neither is '*' or '?').
_REF_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def _ref_values(text: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            first, last = (int(x) for x in base.split("-"))
        else:
            first = int(base)
            last = max(first, high) if step else first
        out.update(range(first, last + 1, int(step or 1)))
    return out


def _ref_next(expr: str, after: datetime) -> datetime | None:
    """The first minute after ``after`` (UTC) that ``expr`` fires at, within ten years."""
    fields = expr.split()
    minute, hour, dom, month, dow = (
        _ref_values(text, low, high) for text, (low, high) in zip(fields, _REF_RANGES, strict=True)
    )
    dow = {0 if d == 7 else d for d in dow}  # Sunday is 0, and 7 where written out
    either = fields[2] not in ("*", "?") and fields[4] not in ("*", "?")
    times = sorted((h, m) for h in hour for m in minute)
    day = after.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(3660):
        in_dom, in_dow = day.day in dom, (day.weekday() + 1) % 7 in dow
        if day.month in month and ((in_dom or in_dow) if either else (in_dom and in_dow)):
            for h, m in times:
                at = day.replace(hour=h, minute=m)
                if at > after:
                    return at
        day += timedelta(days=1)
    return None


@settings(max_examples=300, deadline=None)
@given(
    minute=st.sampled_from(["0", "*/20", "15,45", "5-10/5", "59", "7/25"]),
    hour=st.sampled_from(["*", "0", "*/6", "9-17", "23", "3/7"]),
    dom=st.sampled_from(["*", "?", "1", "15", "1-7", "*/10", "28-31", "31", "30", "2/9"]),
    month=st.sampled_from(["*", "1", "2", "6-8", "*/4", "11/1", "feb", "apr-jun"]),
    dow=st.sampled_from(["*", "?", "0", "1", "5", "7", "1-5", "5-7", "6,0", "*/2", "3/2", "sun"]),
    start_minute=st.integers(0, 4 * 365 * 24 * 60),
)
def test_accepted_expressions_fire_as_standard_cron_reads_them(
    minute: str, hour: str, dom: str, month: str, dow: str, start_minute: int
) -> None:
    expr = f"{minute} {hour} {dom} {month} {dow}"
    names = {"feb": "2", "apr-jun": "4-6", "sun": "0"}
    standard = " ".join(names.get(part, part) for part in expr.split())
    start = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=start_minute)
    expected = _ref_next(standard, start)
    if expected is None:  # no such date (31 February): refused, never a schedule
        with pytest.raises(InvalidArgumentsError, match="it never fires"):
            cron(expr)
        return
    assert next_tick(cron(expr), start.timestamp()) == expected.timestamp(), expr


def test_a_timedelta_interval_is_stored_as_seconds() -> None:
    assert every(timedelta(minutes=5)).every == 300.0  # type: ignore[arg-type]


def test_definition_round_trips() -> None:
    s = cron("0 3 * * *", "Europe/Paris", args={"x": [1, 2]}, catch_up=True, max_instances=3)
    assert Schedule.from_definition("s", s.definition()) == s
    with pytest.raises(InvalidArgumentsError, match="corrupt definition"):
        Schedule.from_definition("s", "{not json")
    with pytest.raises(InvalidArgumentsError, match="either every= or cron="):
        Schedule.from_definition("s", '{"task": "t"}')


# -- intervals ------------------------------------------------------------------------------


def test_interval_ticks_are_aligned_to_the_epoch() -> None:
    s = every(60)
    assert next_tick(s, ts(2024, 1, 1, 12, 0, 30)) == ts(2024, 1, 1, 12, 1)
    assert next_tick(s, ts(2024, 1, 1, 12, 1)) == ts(2024, 1, 1, 12, 2)  # strictly after
    assert latest_tick(s, ts(2024, 1, 1, 12, 1)) == ts(2024, 1, 1, 12, 1)  # at counts
    assert latest_tick(s, ts(2024, 1, 1, 12, 1, 59)) == ts(2024, 1, 1, 12, 1)


def test_fractional_intervals_never_repeat_or_go_backwards() -> None:
    s = every(0.1)
    ticks = ticks_between(s, 1000.0, 1010.0)
    assert len(ticks) == 100
    assert all(b > a for a, b in itertools.pairwise(ticks))
    for t in ticks:
        assert latest_tick(s, t) == t


# -- cron, time zones and DST ----------------------------------------------------------------


def test_cron_in_utc() -> None:
    s = cron("0 3 * * *")
    assert next_tick(s, ts(2024, 5, 1, 2, 59)) == ts(2024, 5, 1, 3)
    assert next_tick(s, ts(2024, 5, 1, 3)) == ts(2024, 5, 2, 3)
    assert latest_tick(s, ts(2024, 5, 1, 3)) == ts(2024, 5, 1, 3)
    assert latest_tick(s, ts(2024, 5, 1, 2, 59)) == ts(2024, 4, 30, 3)


def test_cron_follows_the_wall_clock_of_its_time_zone() -> None:
    s = cron("0 3 * * *", "Europe/Paris")
    winter = next_tick(s, ts(2024, 1, 10))
    summer = next_tick(s, ts(2024, 7, 10))
    assert local(winter, PARIS) == "2024-01-10T03:00:00+01:00"
    assert local(summer, PARIS) == "2024-07-10T03:00:00+02:00"


def test_a_time_skipped_by_spring_forward_fires_once_at_the_end_of_the_gap() -> None:
    # Paris, 2024-03-31: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    s = cron("30 2 * * *", "Europe/Paris")
    ticks = ticks_between(s, ts(2024, 3, 29), ts(2024, 4, 2))
    assert [local(t, PARIS) for t in ticks] == [
        "2024-03-29T02:30:00+01:00",
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]


def test_several_times_in_the_gap_fire_once_together() -> None:
    s = cron("*/15 2,3 * * *", "Europe/Paris")
    ticks = ticks_between(s, ts(2024, 3, 30, 23), ts(2024, 3, 31, 2))
    assert [local(t, PARIS) for t in ticks] == [
        "2024-03-31T03:00:00+02:00",  # 02:00, 02:15, 02:30, 02:45 and 03:00 itself: once
        "2024-03-31T03:15:00+02:00",
        "2024-03-31T03:30:00+02:00",
        "2024-03-31T03:45:00+02:00",
    ]


def test_a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence() -> None:
    # Paris, 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    s = cron("30 2 * * *", "Europe/Paris")
    ticks = ticks_between(s, ts(2024, 10, 25), ts(2024, 10, 29))
    assert [local(t, PARIS) for t in ticks] == [
        "2024-10-25T02:30:00+02:00",
        "2024-10-26T02:30:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
    ]
    # Asked during the second 02:30-03:00, the newest tick is still the first 02:30.
    second_pass = ts(2024, 10, 27, 1, 45)
    assert local(second_pass, PARIS) == "2024-10-27T02:45:00+01:00"
    assert local(latest_tick(s, second_pass), PARIS) == "2024-10-27T02:30:00+02:00"
    assert local(next_tick(s, second_pass), PARIS) == "2024-10-28T02:30:00+01:00"


def test_new_york_spring_forward_and_fall_back() -> None:
    s = cron("30 2 * * *", "America/New_York")
    spring = ticks_between(s, ts(2024, 3, 9, 12), ts(2024, 3, 11, 12))
    assert [local(t, NEW_YORK) for t in spring] == [
        "2024-03-10T03:00:00-04:00",
        "2024-03-11T02:30:00-04:00",
    ]
    # 2024-11-03: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice, fires once.
    s = cron("30 1 * * *", "America/New_York")
    fall = ticks_between(s, ts(2024, 11, 2, 12), ts(2024, 11, 4, 12))
    assert [local(t, NEW_YORK) for t in fall] == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]


def test_latest_and_next_tick_agree_everywhere_around_dst_changes() -> None:
    schedules = [
        cron("30 2 * * *", "Europe/Paris"),
        cron("*/20 * * * *", "Europe/Paris"),
        cron("0 * * * *", "America/New_York"),
        every(900),
    ]
    starts = [ts(2024, 3, 30, 22), ts(2024, 10, 26, 22), ts(2024, 3, 10, 4), ts(2024, 11, 3, 3)]
    for s in schedules:
        for start in starts:
            for step in range(0, 8 * 3600, 317):  # odd steps: land between and on ticks
                at = start + step
                newest = latest_tick(s, at)
                following = next_tick(s, newest)
                assert newest <= at < following, (s.describe(), local(at, PARIS))
                assert next_tick(s, at) == following


# -- plans: first round, catch-up, max_instances --------------------------------------------


def test_a_new_schedule_starts_counting_at_its_first_round() -> None:
    s = every(60)
    assert plan(s, None, ts(2024, 1, 1, 12, 0, 30)) == Plan([], ts(2024, 1, 1, 12))


def test_nothing_is_due_before_the_next_tick() -> None:
    s = every(60)
    last = ts(2024, 1, 1, 12)
    assert plan(s, last, last + 59.9) == Plan([], last)
    assert plan(s, last, last + 60) == Plan([last + 60], last + 60)


def test_after_downtime_without_catch_up_one_late_tick_runs_and_the_rest_are_skipped() -> None:
    s = every(60)
    last = ts(2024, 1, 1, 12)
    now = last + 10 * 60 + 5  # ten ticks missed
    assert plan(s, last, now) == Plan([last + 600], last + 600)


def test_after_downtime_with_catch_up_each_missed_tick_runs_once() -> None:
    s = every(60, catch_up=True, max_instances=100)
    last = ts(2024, 1, 1, 12)
    step = plan(s, last, last + 10 * 60 + 5)
    assert step.ticks == [last + 60 * i for i in range(1, 11)]
    assert step.last_tick == last + 600
    # A long outage is caught up in bounded rounds, each tick once.
    s = every(1, catch_up=True, max_instances=10_000)
    first = plan(s, last, last + 1000)
    assert first.ticks == [last + i for i in range(1, MAX_TICKS_PER_ROUND + 1)]
    second = plan(s, first.last_tick, last + 1000)
    assert second.ticks[0] == last + MAX_TICKS_PER_ROUND + 1


def test_cron_catch_up_over_a_dst_day_fires_each_wall_time_once() -> None:
    s = cron("*/30 * * * *", "Europe/Paris", catch_up=True, max_instances=1000)
    step = plan(s, ts(2024, 3, 30, 22), ts(2024, 3, 31, 4), limit=1000)
    assert len(step.ticks) == len(set(step.ticks))
    walls = [local(t, PARIS)[11:16] for t in step.ticks]
    assert walls.count("03:00") == 1
    assert "02:30" not in walls


def test_max_instances_skips_ticks_without_catch_up() -> None:
    s = every(60, max_instances=2)
    last = ts(2024, 1, 1, 12)
    assert plan(s, last, last + 60, active=1) == Plan([last + 60], last + 60)
    # Full: the tick is skipped (last_tick moves on), not postponed.
    assert plan(s, last, last + 60, active=2) == Plan([], last + 60)


def test_max_instances_postpones_ticks_with_catch_up() -> None:
    s = every(60, max_instances=2, catch_up=True)
    last = ts(2024, 1, 1, 12)
    assert plan(s, last, last + 300, active=0) == Plan([last + 60, last + 120], last + 120)
    assert plan(s, last, last + 300, active=1) == Plan([last + 60], last + 60)
    assert plan(s, last, last + 300, active=2) == Plan([], last)  # waits for room


def test_tick_names_are_the_schedule_and_the_utc_tick_time() -> None:
    assert tick_name(every(60), ts(2024, 3, 31, 1)) == "s@2024-03-31T01:00:00Z"
    assert tick_name(every(0.5), ts(2024, 3, 31, 1) + 0.5) == "s@2024-03-31T01:00:00.500000Z"


# -- firing on a store (memory, fake clock) -------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(clock: Clock, store: MemoryStore | None = None) -> App:
    app = App(store or MemoryStore(clock=clock))

    @app.task(name="report", queue="reports")
    async def report(kind: str, pages: int = 1) -> None:
        """A task to schedule."""

    return app


async def test_ticks_become_named_tasks_with_the_schedule_args() -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    app = make_app(clock)
    app.schedule("minutely", "report", every=60, args={"kind": "sales"})
    await app.store_schedules()
    store = await app.connect()
    assert await fire_due(app, store, clock()) == ts(2024, 1, 1, 12, 1)  # anchors, no task
    assert (await app.list())[0] == []
    clock.now = ts(2024, 1, 1, 12, 1) + 0.5
    assert await fire_due(app, store, clock()) == ts(2024, 1, 1, 12, 2)
    [info] = (await app.list())[0]
    assert info.name == "minutely@2024-01-01T12:01:00Z"
    assert (info.task, info.queue) == ("report", "reports")
    assert info.args == {"kind": "sales", "pages": 1}
    assert info.run_at == datetime(2024, 1, 1, 12, 1, tzinfo=UTC)
    assert await app.get_by_name("minutely@2024-01-01T12:01:00Z") == info
    # Asked again at the same time: nothing more.
    await fire_due(app, store, clock())
    assert len((await app.list())[0]) == 1


async def test_two_processes_that_both_think_they_lead_fire_each_tick_once() -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    store = MemoryStore(clock=clock)
    one, two = make_app(clock, store), make_app(clock, store)
    for app in (one, two):
        app.schedule("often", "report", every=1, args={"kind": "x"}, max_instances=1000)
        await app.store_schedules()
    for _ in range(20):
        clock.now += 0.5
        await fire_due(one, store, clock())
        await fire_due(two, store, clock())
    names = [i.name for i in (await one.list(limit=1000))[0]]
    assert len(names) == len(set(names)) == 10


async def test_max_instances_holds_back_a_slow_schedule() -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    app = make_app(clock)
    app.schedule("slow", "report", every=60, args={"kind": "x"})
    await app.store_schedules()
    store = await app.connect()
    await fire_due(app, store, clock())
    for minute in range(1, 4):
        clock.now = ts(2024, 1, 1, 12, minute, 1)
        await fire_due(app, store, clock())
    # Nobody ran the first tick: the next two were skipped rather than piled up.
    names = [i.name for i in (await app.list())[0]]
    assert names == ["slow@2024-01-01T12:01:00Z"]
    claimed = await store.claim("w", None, 1, 30)
    await store.finish(claimed[0].id, claimed[0].lease_token or "", Status.COMPLETED)
    clock.now = ts(2024, 1, 1, 12, 4, 1)
    await fire_due(app, store, clock())
    newest = (await app.list())[0][0]
    assert newest.name == "slow@2024-01-01T12:04:00Z"


async def test_code_schedules_keep_their_last_tick_across_restarts() -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    store = MemoryStore(clock=clock)
    first = make_app(clock, store)
    first.schedule("s", "report", every=60, args={"kind": "x"}, catch_up=True)
    await first.store_schedules()
    await fire_due(first, store, clock())
    clock.now = ts(2024, 1, 1, 12, 1, 1)
    await fire_due(first, store, clock())
    # A new process with a changed definition: the tick already fired is not fired again.
    second = make_app(clock, store)
    second.schedule("s", "report", every=60, args={"kind": "y"}, catch_up=True)
    await second.store_schedules()
    await fire_due(second, store, clock())
    assert len((await second.list())[0]) == 1
    [info] = await second.list_schedules()
    assert info.schedule.args == {"kind": "y"}
    assert info.last_tick == datetime(2024, 1, 1, 12, 1, tzinfo=UTC)
    assert info.next_tick == datetime(2024, 1, 1, 12, 2, tzinfo=UTC)


async def test_the_last_tick_shown_is_the_last_one_that_fired() -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    app = make_app(clock)
    await app.add_schedule(Schedule(name="s", task="report", every=60, args={"kind": "x"}))
    store = await app.connect()

    async def shown() -> tuple[datetime | None, datetime | None]:
        info = await app.get_schedule("s")
        assert info is not None
        return info.last_tick, info.next_tick

    assert await shown() == (None, datetime(2024, 1, 1, 12, 1, tzinfo=UTC))
    # The first round starts counting at 12:00 but fires nothing: nothing shown yet.
    await fire_due(app, store, clock())
    assert await shown() == (None, datetime(2024, 1, 1, 12, 1, tzinfo=UTC))
    clock.now = ts(2024, 1, 1, 12, 1, 1)
    await fire_due(app, store, clock())
    fired = datetime(2024, 1, 1, 12, 1, tzinfo=UTC)
    assert await shown() == (fired, datetime(2024, 1, 1, 12, 2, tzinfo=UTC))
    # 12:02 finds the 12:01 task still Pending (max_instances=1): skipped, so not shown.
    clock.now = ts(2024, 1, 1, 12, 2, 1)
    await fire_due(app, store, clock())
    assert [i.name for i in (await app.list())[0]] == ["s@2024-01-01T12:01:00Z"]
    assert await shown() == (fired, datetime(2024, 1, 1, 12, 3, tzinfo=UTC))
    # Pausing and resuming keeps what fired last; a restarted count shows nothing new.
    await app.pause_schedule("s")
    resumed = await app.resume_schedule("s")
    assert resumed.last_tick == fired
    clock.now = ts(2024, 1, 1, 12, 5, 1)
    await fire_due(app, store, clock())
    assert (await shown())[0] == fired
    [listed] = await app.list_schedules()
    assert listed.to_json()["last_tick"] == "2024-01-01T12:01:00+00:00"


async def test_pause_and_resume_skip_the_ticks_missed_meanwhile() -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    app = make_app(clock)
    await app.add_schedule(Schedule(name="p", task="report", every=60, args={"kind": "x"}))
    store = await app.connect()
    await fire_due(app, store, clock())
    paused = await app.pause_schedule("p")
    assert paused.paused
    assert paused.next_tick is None
    clock.now = ts(2024, 1, 1, 12, 5, 1)
    await fire_due(app, store, clock())
    assert (await app.list())[0] == []
    resumed = await app.resume_schedule("p")
    assert not resumed.paused
    await fire_due(app, store, clock())
    assert (await app.list())[0] == []  # the five missed ticks never fire
    clock.now = ts(2024, 1, 1, 12, 6, 1)
    await fire_due(app, store, clock())
    assert [i.name for i in (await app.list())[0]] == ["p@2024-01-01T12:06:00Z"]


async def test_store_schedule_errors() -> None:
    clock = Clock(ts(2024, 1, 1))
    app = make_app(clock)
    s = Schedule(name="p", task="report", every=60, args={"kind": "x"})
    await app.add_schedule(s)
    with pytest.raises(DuplicateNameError, match="a schedule named 'p' already exists"):
        await app.add_schedule(s)
    for call in (app.pause_schedule, app.resume_schedule, app.remove_schedule):
        with pytest.raises(UnknownScheduleError, match="no schedule named 'nope'"):
            await call("nope")
    assert await app.get_schedule("nope") is None
    await app.remove_schedule("p")
    assert await app.list_schedules() == []


def test_app_schedule_refuses_bad_schedules_with_clear_errors() -> None:
    app = make_app(Clock(0))
    with pytest.raises(ConfigurationError, match="schedule 'x': unknown task 'nope'"):
        app.schedule("x", "nope", every=60)
    with pytest.raises(ConfigurationError, match="schedule 'x': invalid cron expression"):
        app.schedule("x", "report", cron="0 25 * * *", args={"kind": "a"})
    with pytest.raises(ConfigurationError, match="hour field '25' is out of range 0-23"):
        app.schedule("x", "report", cron="0 25 * * *", args={"kind": "a"})
    with pytest.raises(ConfigurationError, match="it has 6 \\(seconds and years"):
        app.schedule("x", "report", cron="0 0 3 * * *", args={"kind": "a"})
    with pytest.raises(ConfigurationError, match="every must be a positive number"):
        app.schedule("x", "report", every=0, args={"kind": "a"})
    with pytest.raises(ConfigurationError, match="kind: missing required argument"):
        app.schedule("x", "report", every=60)

    def build_report() -> None:
        """A plain function: not registered with @app.task."""

    with pytest.raises(
        ConfigurationError,
        match=re.escape(
            "schedule 'x': test_app_schedule_refuses_bad_schedules_with_clear_errors.<locals>"
            ".build_report() is not a task function: decorate it with @app.task"
        ),
    ):
        app.schedule("x", build_report, every=60)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"give a task function .* or its name, not 42"):
        app.schedule("x", 42, every=60)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="schedule name must not contain '/'"):
        app.schedule("reports/x", "report", every=60, args={"kind": "a"})
    app.schedule("x", "report", every=60, args={"kind": "a"})
    with pytest.raises(ConfigurationError, match="already declared"):
        app.schedule("x", "report", every=60, args={"kind": "a"})
    assert list(app.schedules) == ["x"]


async def test_a_schedule_whose_task_this_app_lacks_waits_for_one_that_has_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(ts(2024, 1, 1, 12, 0, 30))
    store = MemoryStore(clock=clock)
    app = make_app(clock, store)
    await app.add_schedule(Schedule(name="p", task="report", every=60, args={"kind": "x"}))
    other = App(store)
    await fire_due(app, store, clock())
    clock.now += 60
    with caplog.at_level(logging.ERROR, "taskward.scheduler"):
        await fire_due(other, store, clock())
    assert "schedule 'p' cannot fire: unknown task 'report'" in caplog.text
    await fire_due(app, store, clock())
    assert len((await app.list())[0]) == 1
