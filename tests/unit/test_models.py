"""The shared vocabulary: statuses, their named sets, the one transition table, progress,
task snapshots, and the error tree whose docstrings are the default messages."""

from __future__ import annotations

import dataclasses
import inspect
import json
from datetime import UTC, datetime

import pytest

from taskward import errors
from taskward.errors import InvalidTransitionError, TaskwardError
from taskward.models import (
    ACTIVE,
    FINISHED,
    TRANSITIONS,
    Progress,
    Status,
    TaskInfo,
    check_transition,
    from_timestamp,
    read_json,
)

ALL = set(Status)

# The table, written out once more by hand: a change to models.TRANSITIONS must be deliberate.
ALLOWED = {
    (Status.PENDING, Status.RUNNING),
    (Status.PENDING, Status.CANCELLED),
    (Status.PENDING, Status.FAILED),
    (Status.RUNNING, Status.COMPLETED),
    (Status.RUNNING, Status.FAILED),
    (Status.RUNNING, Status.CANCELLED),
    (Status.RUNNING, Status.PENDING),
    (Status.FAILED, Status.PENDING),
    (Status.CANCELLED, Status.PENDING),
}


def test_statuses_are_the_words_shown_everywhere() -> None:
    assert [s.value for s in Status] == ["Pending", "Running", "Completed", "Failed", "Cancelled"]
    assert Status("Running") is Status.RUNNING
    assert f"{Status.FAILED}" == "Failed"


def test_active_and_finished_split_the_statuses() -> None:
    assert {Status.PENDING, Status.RUNNING} == ACTIVE
    assert {Status.COMPLETED, Status.FAILED, Status.CANCELLED} == FINISHED
    assert ACTIVE | FINISHED == ALL
    assert not ACTIVE & FINISHED
    for status in Status:
        assert status.is_active == (status in ACTIVE)
        assert status.is_finished == (status in FINISHED)


def test_the_transition_table_is_exactly_the_documented_one() -> None:
    assert set(TRANSITIONS) == ALL
    table = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert table == ALLOWED
    assert TRANSITIONS[Status.COMPLETED] == frozenset()  # Completed is final


@pytest.mark.parametrize("old", list(Status))
@pytest.mark.parametrize("new", list(Status))
def test_check_transition_allows_only_the_table(old: Status, new: Status) -> None:
    if (old, new) in ALLOWED:
        check_transition(old, new)
    else:
        with pytest.raises(InvalidTransitionError, match=f"cannot go from {old} to {new}"):
            check_transition(old, new)


def test_progress_fraction() -> None:
    assert Progress(1, 4).fraction == 0.25
    assert Progress(5, 4).fraction == 1.0  # clamped
    assert Progress(3).fraction is None
    assert Progress(3, 0).fraction is None
    assert Progress(2, 4, "half").message == "half"


def test_task_info_is_a_frozen_snapshot() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    info = TaskInfo(name="n", status=Status.RUNNING, created_at=created)
    assert info.is_active
    assert not info.is_finished
    assert (info.error, info.result, info.progress, info.started_at) == (None, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.status = Status.COMPLETED  # type: ignore[misc]
    done = dataclasses.replace(info, status=Status.CANCELLED)
    assert done.is_finished
    assert not done.is_active
    with pytest.raises(TypeError):
        TaskInfo("n", Status.RUNNING, created_at=created)  # type: ignore[call-arg]


def test_from_timestamp_is_aware_utc() -> None:
    assert from_timestamp(None) is None
    assert from_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    when = from_timestamp(1_700_000_000.5)
    assert when is not None
    assert when.tzinfo is UTC
    assert when.timestamp() == 1_700_000_000.5


# ----------------------------------------------------------------------- errors

ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, TaskwardError) and cls.__module__ == errors.__name__
]


def test_there_is_one_error_root_and_the_module_docstring_draws_every_error() -> None:
    assert len(ERROR_CLASSES) >= 13
    tree = errors.__doc__ or ""
    for cls in ERROR_CLASSES:
        assert issubclass(cls, TaskwardError)
        assert cls.__name__ in tree, f"{cls.__name__} is missing from the tree in errors.py"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_errors_docstring_is_its_default_message(cls: type[TaskwardError]) -> None:
    doc = (cls.__doc__ or "").strip()
    assert doc, f"{cls.__name__} has no docstring"
    error = cls()
    assert str(error) == doc
    assert error.message == doc
    custom = cls("task 'x' went wrong")
    assert str(custom) == custom.message == "task 'x' went wrong"


def test_errors_are_also_the_builtin_errors_people_catch() -> None:
    assert issubclass(errors.UnknownTaskError, LookupError)
    assert issubclass(errors.TaskTimeoutError, TimeoutError)
    assert issubclass(errors.InvalidArgumentsError, ValueError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.LeaseLostError, errors.StoreError)


def test_an_error_keeps_extra_arguments_and_an_empty_message_falls_back_to_the_default() -> None:
    error = errors.StoreError("cannot connect", "postgres")
    assert error.args == ("cannot connect", "postgres")
    assert str(errors.ClosedError("")) == "This is shutting down or closed and takes no new tasks."


def test_read_json_reads_what_the_json_module_reads() -> None:
    assert read_json('{"a": [1, 2.5, null, true], "b": "\\u00e9"}') == {
        "a": [1, 2.5, None, True],
        "b": "\u00e9",
    }
    assert read_json("123456789012345678901234567890") == 123456789012345678901234567890
    # What pydantic_core refuses, the json module's reader still takes.
    assert read_json('"\\ud800"') == "\ud800"
    deep = "[" * 300 + "]" * 300
    assert read_json(deep) == json.loads(deep)
    for bad in ("", "{", "[1,]", "{'a': 1}", '{"a": 1} x'):
        with pytest.raises(ValueError):  # noqa: PT011 - the json module says no more
            read_json(bad)
