"""``@app.task(executor=...)``: checked when the function is decorated, with a clear error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from taskward.app import App
from taskward.children import ProcessPool
from taskward.errors import ConfigurationError


def plain(x: int) -> int:
    return x


async def coroutine(x: int) -> int:
    return x


def test_the_default_executor_follows_the_kind_of_function() -> None:
    app = App("memory://")
    assert app.task(plain).executor == "thread"
    assert app.task(coroutine).executor == "loop"
    assert not app.tasks["plain"].in_child


@pytest.mark.parametrize("fn", [plain, coroutine])
def test_process_takes_plain_and_async_functions(fn: Callable[[int], Any]) -> None:
    app = App("memory://")
    task = app.task(executor="process")(fn)
    assert task.executor == "process"
    assert task.in_child


@pytest.mark.parametrize(
    ("fn", "executor", "message"),
    [
        (plain, "processes", "executor must be one of 'thread', 'loop', 'process', not 'proc"),
        (plain, "loop", "executor='loop' needs an async def function"),
        (coroutine, "thread", "executor='thread' needs a plain def function"),
        (plain, 3, "executor must be one of"),
    ],
)
def test_a_bad_executor_is_refused_at_decoration(
    fn: object, executor: object, message: str
) -> None:
    app = App("memory://")
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        app.task(executor=executor)(fn)  # type: ignore[call-overload]
    assert app.tasks == {}


def test_process_needs_a_function_a_child_can_import() -> None:
    app = App("memory://")

    def nested() -> None:
        return None

    with pytest.raises(ConfigurationError, match="at the top level of a module"):
        app.task(executor="process")(nested)
    with pytest.raises(ConfigurationError, match="at the top level of a module"):
        app.task(executor="process", name="anonymous")(lambda: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 0}, "processes must be >= 1, not 0"),
        ({"size": 1, "max_tasks_per_child": 0}, "max_tasks_per_child must be >= 1, not 0"),
        ({"size": 1, "max_memory_per_child": 0}, "max_memory_per_child must be > 0 MB, not 0"),
    ],
)
def test_pool_settings_are_checked(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProcessPool(**options)
