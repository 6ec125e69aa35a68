"""Submit options: one frozen `SubmitOptions` value, checked once, from every entry point
(keywords of ``submit``, ``taskward submit``, ``POST /api/tasks``) to the `NewTask`.

An option left None takes the task function's own (its ``@app.task(...)`` value). A bad
option raises `InvalidArgumentsError` whose ``field`` names it, so that the HTTP API and the
CLI can point at it without reading the message.

Names and queues must be text every store holds alike (`check_text`): no NUL character
(PostgreSQL text cannot hold one) and no lone surrogate (it has no UTF-8 form). ``run_at``
must be a timezone-aware datetime: a naive one is refused rather than guessed (UTC or
local?), because guessing wrong silently shifts a schedule by hours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from taskward.errors import InvalidArgumentsError
from taskward.models import Status

__all__ = [
    "MAX_DELAY",
    "MAX_INT32",
    "MAX_NAME_LENGTH",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "NO_OPTIONS",
    "SubmitKeywords",
    "SubmitOptions",
    "as_options",
    "check_defaults",
    "check_label",
    "check_text",
    "parse_statuses",
    "submit_options",
]

MAX_NAME_LENGTH = 200
MAX_INT32 = 2**31 - 1
MIN_PRIORITY = -(2**31)
MAX_PRIORITY = MAX_INT32
#: Bounds that keep every due time a datetime can show (a row must always read back).
MAX_DELAY = 100 * 365.25 * 86_400
MIN_RUN_AT_YEAR, MAX_RUN_AT_YEAR = 1900, 9000


def check_text(kind: str, value: str, field: str | None = None) -> str:
    """``value``, unless a store could not hold it alike everywhere: `InvalidArgumentsError`.

    Refused: a NUL character (PostgreSQL text cannot hold one; SQLite and memory would) and a
    lone surrogate (no UTF-8 form: PostgreSQL and SQLite cannot encode it). For every name,
    queue and filter that reaches a store, so each store answers the same. ``kind`` starts
    the message; ``field`` (default: ``kind``) is the error's field.
    """
    field = field or kind
    if "\x00" in value:
        raise InvalidArgumentsError(f"{kind} must not contain a NUL character (\\x00)", field=field)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgumentsError(
                f"{kind} must be Unicode text, without lone surrogates "
                f"(found {value[exc.start]!r} at position {exc.start})",
                field=field,
            ) from None
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# One check per option; each takes any value (the annotations are not enforced at run time).


def check_label(kind: str, value: object) -> None:
    """A name or a queue: a non-empty string of at most 200 characters a store can hold."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentsError(f"{kind} must be a non-empty string, got {value!r}", field=kind)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgumentsError(
            f"{kind} must be at most {MAX_NAME_LENGTH} characters", field=kind
        )
    check_text(kind, value)


def _priority(value: object) -> None:
    if not _is_int(value) or not MIN_PRIORITY <= value <= MAX_PRIORITY:  # type: ignore[operator]
        raise InvalidArgumentsError(
            f"priority must be an integer in [{MIN_PRIORITY}, {MAX_PRIORITY}], got {value!r}",
            field="priority",
        )


def _max_attempts(value: object) -> None:
    if not _is_int(value) or not 1 <= value <= MAX_INT32:  # type: ignore[operator]
        raise InvalidArgumentsError(
            f"max_attempts must be an integer >= 1, got {value!r}", field="max_attempts"
        )


def _timeout(value: object) -> None:
    if not (_is_number(value) and math.isfinite(value) and value > 0):  # type: ignore[arg-type,operator]
        raise InvalidArgumentsError(
            f"timeout must be a number > 0 or None, got {value!r}", field="timeout"
        )


def _delay(value: object) -> None:
    if not (_is_number(value) and 0 <= value <= MAX_DELAY):  # type: ignore[operator]
        raise InvalidArgumentsError(
            f"delay must be a number of seconds in [0, {MAX_DELAY:.0f}] (100 years), got {value!r}",
            field="delay",
        )


def _run_at(value: object) -> None:
    if not isinstance(value, datetime):
        raise InvalidArgumentsError(f"run_at must be a datetime, got {value!r}", field="run_at")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentsError(
            "run_at must be timezone-aware (e.g. datetime.now(UTC) + timedelta(...)); "
            "a naive datetime is ambiguous",
            field="run_at",
        )
    if not MIN_RUN_AT_YEAR <= value.year < MAX_RUN_AT_YEAR:
        raise InvalidArgumentsError(
            f"run_at must be between the years {MIN_RUN_AT_YEAR} and {MAX_RUN_AT_YEAR}, "
            f"got {value.isoformat()}",
            field="run_at",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOptions:
    """The options of one submit, checked when made; each None takes the task function's own.

    A bad option raises `InvalidArgumentsError` with ``field`` set to its name; ``delay`` and
    ``run_at`` together are refused (field ``run_at``). ``delay`` and ``timeout`` are seconds;
    ``run_at`` a timezone-aware datetime.
    """

    name: str | None = None
    priority: int | None = None
    queue: str | None = None
    delay: float | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        # In the order the options were always checked, so a value with two bad options
        # names the same one as before.
        if self.name is not None:
            check_label("name", self.name)
        if self.queue is not None:
            check_label("queue", self.queue)
        if self.priority is not None:
            _priority(self.priority)
        if self.max_attempts is not None:
            _max_attempts(self.max_attempts)
        if self.timeout is not None:
            _timeout(self.timeout)
        if self.delay is not None:
            if self.run_at is not None:
                raise InvalidArgumentsError("give delay or run_at, not both", field="run_at")
            _delay(self.delay)
        if self.run_at is not None:
            _run_at(self.run_at)


#: No option given: every one is the task function's own. `submit_options` returns this one
#: object rather than a new one, and the task function checks for it by identity.
NO_OPTIONS = SubmitOptions()


def submit_options(
    *,
    name: str | None = None,
    priority: int | None = None,
    queue: str | None = None,
    delay: float | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> SubmitOptions:
    """`SubmitOptions` of these keywords (`NO_OPTIONS` when none is given, made once)."""
    if (
        name is None
        and priority is None
        and queue is None
        and delay is None
        and run_at is None
        and max_attempts is None
        and timeout is None
    ):
        return NO_OPTIONS
    return SubmitOptions(
        name=name,
        priority=priority,
        queue=queue,
        delay=delay,
        run_at=run_at,
        max_attempts=max_attempts,
        timeout=timeout,
    )


def check_defaults(
    *, queue: object, priority: object, max_attempts: object, timeout: object
) -> None:
    """Check a task function's own options (``@app.task(...)``): as `SubmitOptions` does,
    but queue, priority and max_attempts must be given (a submit without them takes them)."""
    check_label("queue", queue)
    _priority(priority)
    _max_attempts(max_attempts)
    if timeout is not None:
        _timeout(timeout)


class SubmitKeywords(TypedDict, total=False):
    """`SubmitOptions` as keyword arguments (the ``**keywords`` of ``prepare_args``, ...)."""

    name: str | None
    priority: int | None
    queue: str | None
    delay: float | None
    run_at: datetime | None
    max_attempts: int | None
    timeout: float | None


def as_options(options: SubmitOptions | None, keywords: SubmitKeywords) -> SubmitOptions:
    """One `SubmitOptions` from either an object or keywords (both: `TypeError`)."""
    if options is None:
        return SubmitOptions(**keywords) if keywords else NO_OPTIONS
    if keywords:
        raise TypeError("give submit options as one SubmitOptions or as keywords, not both")
    if not isinstance(options, SubmitOptions):
        raise TypeError(f"options must be a SubmitOptions, got {options!r}")
    return options


def parse_statuses(status: Status | str | Iterable[Status | str] | None) -> list[Status] | None:
    """A status filter (one status, its name, or several) as statuses; None: no filter."""
    if status is None:
        return None
    items = [status] if isinstance(status, str) else list(status)
    out = []
    for item in items:
        try:
            out.append(Status(item))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise InvalidArgumentsError(f"unknown status {item!r}; known: {known}") from None
    return out
