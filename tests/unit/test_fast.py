"""The private speed tricks (taskward._fast) build exactly what the plain way builds."""

from __future__ import annotations

import dataclasses
import pickle
import uuid

import pytest

from taskward._fast import record_factory, uuid_from_int
from taskward.models import Status, TaskInfo, new_task_id
from taskward.stores.base import NewTask, TaskRecord


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Sample:
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


def test_record_factory_builds_what_the_class_builds() -> None:
    make = record_factory(_Sample)
    assert make(a=1) == _Sample(a=1)
    assert make(a=2, b="y", c=(3,)) == _Sample(a=2, b="y", c=(3,))
    assert type(make(a=1)) is _Sample
    assert repr(make(a=1)) == "_Sample(a=1, b='x', c=())"
    with pytest.raises(TypeError, match="a"):
        make()
    with pytest.raises(TypeError):
        make(1)
    with pytest.raises(TypeError, match="d"):
        make(a=1, d=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        make(a=1).a = 2  # type: ignore[misc]
    assert dataclasses.replace(make(a=1), b="z") == _Sample(a=1, b="z")
    for cls in (TaskInfo, NewTask, TaskRecord):
        assert record_factory(cls) is record_factory(cls)  # made once


def test_the_public_records_stay_plain_dataclasses() -> None:
    for cls in (TaskInfo, NewTask, TaskRecord):
        names = cls.__init__.__code__.co_names
        assert not any(name.startswith("_slot_") for name in names), cls
    task_id = new_task_id()
    fields = {
        "id": task_id,
        "seq": 1,
        "task": "t",
        "args": "{}",
        "name": None,
        "priority": 0,
        "queue": "default",
        "status": Status.PENDING,
        "attempts": 0,
        "max_attempts": 3,
        "timeout": None,
        "run_at": 1.0,
        "created_at": 1.0,
    }
    assert record_factory(TaskRecord)(**fields) == TaskRecord(**fields)  # type: ignore[arg-type]


def test_record_factory_refuses_what_it_does_not_handle() -> None:
    @dataclasses.dataclass(frozen=True)
    class Factory:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class Post:
        a: int

        def __post_init__(self) -> None: ...

    @dataclasses.dataclass(frozen=True)
    class NoSlots:  # fields set through their slots need slots
        a: int

    for cls in (Factory, Post, NoSlots):
        with pytest.raises(TypeError, match="record_factory"):
            record_factory(cls)


def test_uuid_from_int_is_the_uuid_of_that_int() -> None:
    for value in (0, 1, 2**128 - 1, new_task_id().int):
        fast, plain = uuid_from_int(value), uuid.UUID(int=value)
        assert fast == plain
        assert hash(fast) == hash(plain)
        assert str(fast) == str(plain)
        assert fast.version == plain.version
        assert pickle.loads(pickle.dumps(fast)) == plain
