"""Strict JSON: the one reader of JSON text from outside, and the check of Python values about
to become JSON. What it refuses (NaN, infinities, repeated keys, nesting past 64) and how it
says so: the problem and the path to it."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskward.errors import InvalidArgumentsError, InvalidJSONError
from taskward.models import read_json
from taskward.strictjson import MAX_DEPTH, check_json_value, parse_strict_json


def refused(text: str | bytes) -> InvalidJSONError:
    with pytest.raises(InvalidJSONError) as caught:
        parse_strict_json(text)
    return caught.value


def nested(levels: int, inner: Any = 1) -> Any:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        ("NaN", (), "NaN is not valid JSON"),
        ("Infinity", (), "Infinity is not valid JSON"),
        ('{"x": NaN}', ("x",), "NaN is not valid JSON"),
        ('{"x": -Infinity}', ("x",), "-Infinity is not valid JSON"),
        ('{"args": {"x": [1, 2, Infinity]}}', ("args", "x", 2), "Infinity is not valid JSON"),
        ('[{"a": 1}, {"b": NaN}]', (1, "b"), "NaN is not valid JSON"),
        ("1e400", (), "a number too large for a float"),
        ('{"x": [-1e999]}', ("x", 0), "a number too large for a float"),
        ('{"args": {"x": 1}, "args": {"x": 2}}', (), "the key 'args' appears more than once"),
        ('{"args": {"x": 1, "y": 2, "x": 3}}', ("args",), "the key 'x' appears more than once"),
        ('[[{"k": 1, "k": 1}]]', (0, 0), "the key 'k' appears more than once"),
        # The same key spelled two ways is still the same key.
        ('{"a": 1, "\\u0061": 2}', (), "the key 'a' appears more than once"),
    ],
)
def test_what_is_refused_is_named_with_its_path(
    text: str, path: tuple[str | int, ...], problem: str
) -> None:
    error = refused(text)
    assert error.path == path
    assert error.problem.startswith(problem)
    where = ".".join(str(p) for p in path)
    assert str(error) == (f"{where}: {error.problem}" if path else error.problem)
    assert isinstance(error, InvalidArgumentsError)
    assert isinstance(error, ValueError)


def test_the_first_problem_in_document_order_is_reported() -> None:
    assert refused('{"a": [NaN], "a": 1}').path == ()  # the object comes before its values
    assert refused('{"a": {"b": Infinity}, "c": NaN}').path == ("a", "b")


def test_nesting_up_to_64_levels_is_fine_and_deeper_is_refused() -> None:
    assert parse_strict_json(json.dumps(nested(MAX_DEPTH))) == nested(MAX_DEPTH)
    assert parse_strict_json(json.dumps({"a": nested(MAX_DEPTH - 1)})) == {
        "a": nested(MAX_DEPTH - 1)
    }
    for text in (json.dumps(nested(MAX_DEPTH + 1)), json.dumps({"a": nested(MAX_DEPTH)})):
        assert refused(text).problem == "nested deeper than 64 levels of arrays and objects"


def test_a_megabyte_of_brackets_is_refused_quickly_without_recursion() -> None:
    started = time.perf_counter()
    for text in ("[" * 1_000_000, "{" + '"a":{' * 300_000, "[" * 500_000 + "]" * 500_000):
        assert "nested deeper than 64" in str(refused(text))
    assert time.perf_counter() - started < 2.0


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"s": "[{" * 1000, "t": ['\\"]]]\\\\'] * 100})
    assert parse_strict_json(text) == json.loads(text)
    wide = json.dumps([[i] for i in range(10_000)])  # many brackets, two levels
    assert parse_strict_json(wide) == json.loads(wide)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "not valid JSON: Expecting value (line 1, column 1)"),
        ('{"a": 1,}', "not valid JSON"),
        ("{'a': 1}", "not valid JSON"),
        ('{"a": 1} x', "not valid JSON: Extra data"),
        (b'{"a": "\xff"}', "not UTF-8 text (byte 7)"),
        ('{"a": "line\nbreak"}', "not valid JSON: Invalid control character"),
    ],
)
def test_malformed_text_says_where(text: str | bytes, words: str) -> None:
    assert str(refused(text)).startswith(words)


def test_bytes_and_text_read_alike() -> None:
    doc = {"name": "été", "n": [1, 2.5, None, True, "NaN"], "big": 2**70}
    text = json.dumps(doc, ensure_ascii=False)
    assert parse_strict_json(text) == parse_strict_json(text.encode()) == doc


def test_messages_do_not_echo_values() -> None:
    secret = "hunter2-secret"
    error = refused(json.dumps({"password": secret})[:-1] + ', "x": NaN}')
    assert secret not in str(error)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_any_json_written_by_python_reads_back_unchanged(value: Any) -> None:
    check_json_value(value)
    assert parse_strict_json(json.dumps(value)) == value
    assert parse_strict_json(json.dumps(value, ensure_ascii=False).encode()) == value


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        (math.nan, (), "NaN is not valid JSON"),
        ({"a": [1.0, math.inf]}, ("a", 1), "Infinity is not valid JSON"),
        ({"a": ({"b": -math.inf},)}, ("a", 0, "b"), "-Infinity is not valid JSON"),
        ({"s": {math.nan}}, ("s", 0), "NaN is not valid JSON"),
        (nested(MAX_DEPTH + 1), (0,) * MAX_DEPTH, "nested deeper than 64 levels"),
        ({"deep": nested(MAX_DEPTH)}, ("deep",) + (0,) * (MAX_DEPTH - 1), "nested deeper"),
    ],
)
def test_python_values_are_checked_the_same_way(
    value: Any, path: tuple[str | int, ...], problem: str
) -> None:
    with pytest.raises(InvalidJSONError) as caught:
        check_json_value(value)
    assert caught.value.path == path
    assert caught.value.problem.startswith(problem)


def test_python_values_that_are_fine_pass() -> None:
    check_json_value(nested(MAX_DEPTH))
    check_json_value({"when": object(), "n": [1, 2.5, "NaN"], "t": (1, 2)})


def test_python_values_nested_very_deep_are_refused_without_recursion() -> None:
    with pytest.raises(InvalidJSONError, match="nested deeper than 64"):
        check_json_value(nested(100_000))


def test_a_deep_path_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidJSONError) as caught:
        check_json_value({"tree": nested(MAX_DEPTH)})
    assert str(caught.value).startswith("tree.0.0.0.....0: nested deeper")


def test_stored_rows_are_still_read_leniently() -> None:
    # Rows written before these rules (or by hand) must still show: read_json is not strict.
    assert math.isnan(read_json('{"x": NaN}')["x"])
    assert read_json('{"a": 1, "a": 2}') == {"a": 2}
