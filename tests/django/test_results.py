"""Reading an exception's class path back from a stored traceback (pure: no store)."""

from __future__ import annotations

import traceback

import pytest
from shop.tasks import BoomError

from taskward.contrib.django.results import exception_path


def formatted(exc: BaseException) -> str:
    """The traceback text taskward stores for ``exc`` once raised."""
    try:
        raise exc
    except BaseException as raised:
        return "".join(traceback.format_exception(raised))


def test_a_builtin_a_project_class_and_a_multiline_message() -> None:
    assert exception_path(formatted(ValueError("a: b"))) == "builtins.ValueError"
    assert exception_path(formatted(BoomError("one\ntwo"))) == "shop.tasks.BoomError"


def test_the_last_exception_of_a_chain_with_notes() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            outer = BoomError("outer")
            outer.add_note("Note: a line that looks like a path")
            raise outer from inner
    except BoomError as exc:
        text = "".join(traceback.format_exception(exc))
    assert "KeyError" in text
    assert exception_path(text) == "shop.tasks.BoomError"


@pytest.mark.parametrize(
    "text",
    [None, "", "ValueError: no header", "Traceback (most recent call last):\n  File x\n"],
)
def test_no_path_without_a_traceback_of_python_s_shape(text: str | None) -> None:
    assert exception_path(text) is None


def test_an_exception_group_has_no_single_class() -> None:
    text = formatted(ExceptionGroup("many", [ValueError("x")]))
    assert exception_path(text) is None
