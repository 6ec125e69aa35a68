"""Cron expressions: exactly five checked fields (or a known macro), read by croniter.

`check_cron` refuses anything croniter would read with another meaning than standard cron
(a sixth field taken as seconds, croniter's own extensions, backwards ranges) and names the
field and the problem; `croniter_class` loads croniter, an optional dependency, on first use.
The tick arithmetic that uses them is in `taskward.scheduler`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskward.errors import ConfigurationError, InvalidArgumentsError

__all__ = ["CRON_MACROS", "MAX_CRON_LENGTH", "check_cron", "croniter_class"]

MAX_CRON_LENGTH = 200


def croniter_class() -> Any:
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - croniter is a dev dependency
        raise ConfigurationError(
            "cron schedules need croniter: pip install 'taskward[cron]'"
        ) from None
    return croniter


#: The cron macros accepted, each a five-field expression that croniter knows by name.
CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True, slots=True)
class _CronField:
    """One of the five fields: its name, its range, and the names its values may have."""

    name: str
    low: int
    high: int  # the highest value accepted (7, Sunday again, for the day of the week)
    last: int  # the highest value '*' covers (6 for the day of the week)
    names: Mapping[str, int]

    def span(self) -> str:
        """``0-59``, or ``1-12 or jan-dec`` for a field with names."""
        if not self.names:
            return f"{self.low}-{self.high}"
        first, *_, final = self.names
        return f"{self.low}-{self.high} or {first}-{final}"


_CRON_FIELDS = (
    _CronField("minute", 0, 59, 59, {}),
    _CronField("hour", 0, 23, 23, {}),
    _CronField("day-of-month", 1, 31, 31, {}),
    _CronField("month", 1, 12, 12, {name: i for i, name in enumerate(_MONTHS, 1)}),
    _CronField("day-of-week", 0, 7, 6, {name: i for i, name in enumerate(_DAYS)}),
)
_CRON_HINT = "numbers, names, '*', ranges (1-5), steps (*/15) and lists (1,15) only"


def _cron_error(expr: str, detail: str) -> InvalidArgumentsError:
    return InvalidArgumentsError(f"invalid cron expression {expr!r}: {detail}", field="cron")


def _cron_value(field: _CronField, text: str, token: str, expr: str) -> int:
    """One value of a field (a number or a name), checked against the field's range."""
    where = f"{field.name} field {text!r}"
    if token.isascii() and token.isdigit():
        value = int(token)
        if not field.low <= value <= field.high:
            what = where if token == text else f"{where}: {token}"
            raise _cron_error(expr, f"{what} is out of range {field.span()}")
        return value
    if token.lower() in field.names:
        return field.names[token.lower()]
    if not token:
        raise _cron_error(expr, f"{where}: a range needs a value on each side of '-'")
    raise _cron_error(expr, f"{where}: {token!r} is not a value of this field ({_CRON_HINT})")


def _cron_item(field: _CronField, text: str, item: str, expr: str) -> set[int]:
    """The values of one list item: ``*``, ``?``, ``v``, ``a-b``, each with an optional step."""
    where = f"{field.name} field {text!r}"
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()):
            raise _cron_error(expr, f"{where}: the step {step_text!r} is not a whole number")
        step = int(step_text)
        if step < 1:
            raise _cron_error(expr, f"{where}: a step must be at least 1")
        most = field.last - field.low + 1
        if step > most:
            raise _cron_error(expr, f"{where}: a step must be at most {most}")
    if base == "?":
        # croniter reads '?' as '*' in the two day fields only, and never with a step.
        if field.name not in ("day-of-month", "day-of-week") or slash:
            raise _cron_error(expr, f"{where}: '?' stands alone, and only for a day field")
        base = "*"
    if base == "*":
        first, final = field.low, field.last
    else:
        start, dash, end = base.partition("-")
        first = _cron_value(field, text, start, expr)
        if dash:
            final = _cron_value(field, text, end, expr)
            if final < first:
                raise _cron_error(
                    expr, f"{where}: the range {base!r} goes backwards; a range goes upwards"
                )
        else:
            final = max(field.last, first) if slash else first  # 'a/n': from a on, every n
    values = set(range(first, final + 1, step))
    if field.high == 7 and 7 in values:  # Sunday is 0 and 7
        values = (values - {7}) | {0}
    return values


def _cron_field(field: _CronField, text: str, expr: str) -> set[int]:
    """The values a field stands for; `InvalidArgumentsError` saying what is wrong with it."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _cron_error(expr, f"{field.name} field {text!r}: an empty item in a list")
        values |= _cron_item(field, text, item, expr)
    return values


def check_cron(expr: object) -> None:
    """Refuse anything but five cron fields or a macro, saying which field is wrong and how.

    croniter reads more (a sixth field as seconds, ``L``, ``W``, ``#``, ranges that wrap
    around): each is refused here rather than read with a meaning the user may not expect.
    What is accepted must be read by croniter as these rules read it, and fire some day.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidArgumentsError(f"cron must be a cron expression, got {expr!r}", field="cron")
    if len(expr) > MAX_CRON_LENGTH:
        raise InvalidArgumentsError(
            f"cron expression must be at most {MAX_CRON_LENGTH} characters", field="cron"
        )
    text = expr.strip()
    croniter = croniter_class()
    if text.startswith("@"):
        macro = text.lower()
        if macro == "@reboot":
            raise _cron_error(
                expr, "'@reboot' has no meaning for a schedule (it never ticks); use five fields"
            )
        if macro not in CRON_MACROS or not croniter.is_valid(text):
            raise _cron_error(expr, f"unknown macro; known: {', '.join(CRON_MACROS)}")
    else:
        fields = text.split()
        if len(fields) != 5:
            extra = " (seconds and years are not supported)" if len(fields) in (6, 7) else ""
            raise _cron_error(
                expr,
                f"expected five fields (minute hour day-of-month month day-of-week), e.g. "
                f"'0 3 * * *', but it has {len(fields)}{extra}",
            )
        ours = [_cron_field(f, t, expr) for f, t in zip(_CRON_FIELDS, fields, strict=True)]
        if not croniter.is_valid(text):
            raise _cron_error(expr, "the cron library refuses it")
        theirs = getattr(croniter(text), "expanded", None)
        for field, item, values, read in zip(
            _CRON_FIELDS, fields, ours, theirs or ours, strict=True
        ):
            read_values = set(range(field.low, field.last + 1)) if read == ["*"] else set(read)
            if read_values != values:
                raise _cron_error(
                    expr,
                    f"{field.name} field {item!r} would be read as another set of values by "
                    "the cron library; write the values out (e.g. 1,2,3)",
                )
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:  # croniter's own errors: a date that never comes (30 February)
        raise _cron_error(expr, "it never fires (no such date)") from None
