"""The public surface of ``taskward``: exactly the curated names, each importable."""

from __future__ import annotations

import taskward

# Grows on purpose only: adding a name here is a decision about the public API.
EXPECTED = [
    "App",
    "Backoff",
    "Status",
    "TaskInfo",
    "TaskManager",
    "TaskwardError",
    "__version__",
    "cancelled",
    "current_task",
    "progress",
]


def test_all_is_exactly_the_curated_list() -> None:
    assert taskward.__all__ == EXPECTED


def test_every_exported_name_exists_and_belongs_to_taskward() -> None:
    for name in taskward.__all__:
        value = getattr(taskward, name)
        if name == "__version__":
            assert isinstance(value, str)
            assert value
            continue
        assert value.__module__.startswith("taskward."), name


def test_star_import_gives_the_exported_names() -> None:
    namespace: dict[str, object] = {}
    exec("from taskward import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(EXPECTED)
