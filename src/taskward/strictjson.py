"""Strict JSON: what taskward accepts where arguments enter (HTTP bodies, ``--args``, Python).

JSON text from outside is read by `parse_strict_json`; values about to be stored as JSON (a
task's arguments, made in Python) are checked by `check_json_value`. Both refuse, with
`InvalidJSONError` naming the problem and where it is:

- ``NaN``, ``Infinity`` and ``-Infinity``: not JSON, although Python's json module writes
  and reads them, so each reader would make something else of them (a float, a string, an
  error); also a number too large for a float (``1e400``), which would read as infinity.
- an object with the same key twice: readers disagree on which value wins (most keep the
  last one silently).
- nesting deeper than `MAX_DEPTH` levels of arrays and objects: no argument needs it, and
  deep documents make recursive readers (and the code that walks the values) fail.
- a string with a lone surrogate (``"\\ud800"``): it is not Unicode text, has no UTF-8 form,
  and no store can hold it.

Stored rows are read with `taskward.models.read_json`, which stays lenient: a row written
before these rules, or by hand, must still be shown rather than hide the task.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from taskward.errors import InvalidJSONError

__all__ = ["MAX_DEPTH", "check_json_value", "parse_strict_json"]

#: The deepest nesting of arrays and objects accepted (``{"a": [1]}`` is 2 deep).
MAX_DEPTH = 64

NON_FINITE = "JSON numbers must be finite (no NaN, Infinity or -Infinity)"
TOO_LARGE = "a number too large for a float (it would read as infinity)"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels of arrays and objects"
SURROGATE = "a string with a lone surrogate ({}) is not Unicode text"

_CONTAINERS = (dict, list, tuple, set, frozenset)

# The escape of a surrogate: half of a pair, or alone (which is refused).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# A JSON string, or one bracket: the tokens that tell the nesting depth.
_DEPTH_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class _Refused:
    """What the parser's hooks put in place of a refused value, to be located afterwards."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


class _RepeatedKeys(dict[str, Any]):
    """An object that had a key more than once (the parser's hook marks it, to be located)."""

    __slots__ = ("key",)
    key: str


def _too_deep(text: str) -> bool:
    """Whether arrays and objects nest deeper than `MAX_DEPTH` (a loop, never a recursion)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # the usual case: too few brackets to be that deep, in strings or not
    depth = 0
    for match in _DEPTH_TOKENS.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_strict_json(text: str | bytes) -> Any:
    """The value of strict JSON text; `InvalidJSONError` (a ValueError) saying what is wrong.

    Bytes must be UTF-8. Besides what any JSON reader refuses, this one refuses NaN and
    Infinity (and numbers that overflow a float), repeated object keys, and nesting deeper
    than `MAX_DEPTH`.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSONError(f"not UTF-8 text (byte {exc.start})") from None
        surrogates = _SURROGATE_ESCAPE.search(text) is not None
    else:  # text made in Python may hold surrogates themselves, not only their escapes
        surrogates = _SURROGATE_ESCAPE.search(text) is not None or not _is_unicode(text)
    if _too_deep(text):
        raise InvalidJSONError(TOO_DEEP)
    marked = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal marked
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        marked = True
        repeated = _RepeatedKeys(obj)
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                repeated.key = key
                break
            seen.add(key)
        return repeated

    def constant(name: str) -> _Refused:
        nonlocal marked
        marked = True
        return _Refused(f"{name} is not valid JSON: {NON_FINITE}")

    def number(literal: str) -> float | _Refused:
        value = float(literal)
        if math.isfinite(value):
            return value
        nonlocal marked
        marked = True
        return _Refused(TOO_LARGE)

    try:
        value = json.loads(
            text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number
        )
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:  # cannot happen below MAX_DEPTH; kept as a last guard
        raise InvalidJSONError(TOO_DEEP) from None
    if marked:
        _raise_first_mark(value)
    if surrogates:
        _raise_first_surrogate(value)
    return value


def _is_unicode(text: str) -> bool:
    """Whether ``text`` has no lone surrogate (it encodes to UTF-8)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_first_surrogate(value: Any) -> None:
    """Raise for the first string (key or value) with a lone surrogate, if any, with its path."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                lone = next(c for c in item if "\ud800" <= c <= "\udfff")
                raise InvalidJSONError(SURROGATE.format(repr(lone)), path)
        elif isinstance(item, dict):
            for key in item:
                if not _is_unicode(key):
                    raise InvalidJSONError(SURROGATE.format("in a key"), path)
            stack.extend(((*path, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))


def _raise_first_mark(value: Any) -> None:
    """Raise for the first value the parser's hooks marked, in document order, with its path."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Refused):
            raise InvalidJSONError(item.problem, path)
        if isinstance(item, _RepeatedKeys):
            key = item.key if len(item.key) <= 100 else item.key[:100] + "..."
            raise InvalidJSONError(f"the key {key!r} appears more than once in an object", path)
        if isinstance(item, dict):
            stack.extend(((*path, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))
    raise AssertionError("a marked value was not found")  # pragma: no cover


def check_json_value(value: Any) -> None:
    """Raise `InvalidJSONError` unless every float in ``value`` is finite and its dicts,
    lists, tuples and sets nest at most `MAX_DEPTH` deep.

    For Python values about to be written as JSON (what pydantic's ``to_python`` gives);
    values of other types are left to the serialiser. A loop, never a recursion.
    """
    if not _is_fine(value):
        _raise_first_problem(value)


def _is_fine(value: Any) -> bool:
    """`check_json_value`'s fast path, a level of containers at a time: no paths kept."""
    level = [value]
    for depth in range(MAX_DEPTH + 1):
        deeper: list[Any] = []
        for item in level:
            if isinstance(item, float):
                if not math.isfinite(item):
                    return False
            elif isinstance(item, _CONTAINERS):
                if depth == MAX_DEPTH:
                    return False
                deeper.extend(item.values() if isinstance(item, dict) else item)
        if not deeper:
            break
        level = deeper
    return True


def _raise_first_problem(value: Any) -> None:
    """`check_json_value`'s slow path: find the first problem in order, with its path."""
    stack: list[tuple[tuple[str | int, ...], Any, int]] = [((), value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            name = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
            raise InvalidJSONError(f"{name} is not valid JSON: {NON_FINITE}", path)
        if isinstance(item, _CONTAINERS):
            if depth == MAX_DEPTH:
                raise InvalidJSONError(TOO_DEEP, path)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend(((*path, k), v, depth + 1) for k, v in reversed(list(pairs)))
    raise AssertionError("check_json_value found a problem that is not there")  # pragma: no cover
