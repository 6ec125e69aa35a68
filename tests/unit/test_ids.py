"""Task ids are UUID version 7: unique, and ordered by creation time."""

from __future__ import annotations

import copy
import os
import pickle
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from taskward import models
from taskward.models import new_task_id

RANDOM_BITS = 0x3FFF_FFFF_FFFF_FFFF  # rand_b: the last 62 bits


def test_ids_are_version_7_and_unique() -> None:
    ids = [new_task_id() for _ in range(10_000)]
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)
    # Each of the 62 random bits takes both values across the sample.
    random_bits = [i.int & RANDOM_BITS for i in ids]
    for bit in range(62):
        assert len({(r >> bit) & 1 for r in random_bits}) == 2, bit


def test_ids_made_in_a_row_are_in_order_within_a_millisecond_too() -> None:
    ids = [new_task_id() for _ in range(10_000)]  # thousands per millisecond
    millis = [i.int >> 80 for i in ids]
    assert len(set(millis)) < len(ids)  # many share a millisecond...
    assert ids == sorted(ids)  # ...and still sort in the order they were made
    assert len(set(ids)) == len(ids)
    # The 12 bits after the version are the fraction of the millisecond (1/4096 steps).
    ns = time.time_ns()
    task_id = new_task_id()
    fraction = (task_id.int >> 64) & 0xFFF
    assert task_id.int >> 80 >= ns // 1_000_000
    if task_id.int >> 80 == ns // 1_000_000:
        assert fraction >= (ns % 1_000_000) * 4096 // 1_000_000


def test_ids_stay_in_order_when_the_clock_stalls_or_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time_ns()
    before = new_task_id()
    # The ids' clock only (not the time module everyone shares): one that stands still...
    monkeypatch.setattr(models, "time", SimpleNamespace(time_ns=lambda: now))
    stalled = [new_task_id() for _ in range(5_000)]  # more ids than steps in 1 ms
    # ...then one set back a minute.
    monkeypatch.setattr(models, "time", SimpleNamespace(time_ns=lambda: now - 60 * 10**9))
    back = [new_task_id() for _ in range(100)]
    monkeypatch.undo()
    after = new_task_id()
    ids = [before, *stalled, *back, after]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    # The time runs on by 1/4096 ms per id past the stalled clock, not further.
    assert stalled[0].int >> 80 in (now // 1_000_000, now // 1_000_000 + 1)
    assert stalled[-1].int >> 80 <= now // 1_000_000 + 3


def test_ids_start_with_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    task_id = new_task_id()
    after = time.time_ns() // 1_000_000
    assert before <= task_id.int >> 80 <= after


def test_later_ids_sort_after_earlier_ones() -> None:
    first = new_task_id()
    time.sleep(0.002)  # next millisecond: the time prefix decides the order
    assert new_task_id() > first


def test_ids_are_ordinary_uuids() -> None:
    # Built without UUID.__init__'s checks: each must still be the UUID of its int.
    task_id = new_task_id()
    twin = uuid.UUID(int=task_id.int)
    assert task_id == twin
    assert hash(task_id) == hash(twin)
    assert str(task_id) == str(twin)
    assert uuid.UUID(str(task_id)) == task_id
    assert task_id.is_safe is uuid.SafeUUID.unknown
    assert pickle.loads(pickle.dumps(task_id)) == task_id
    assert copy.deepcopy(task_id) == task_id
    assert {task_id: 1}[twin] == 1


def test_threads_and_forked_children_draw_different_random_bits() -> None:
    random_bits = RANDOM_BITS
    per_thread: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def draw(out: list[uuid.UUID]) -> None:
        out.extend(new_task_id() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drawn = [i.int & random_bits for out in per_thread for i in out]
    assert len(set(drawn)) == len(drawn)
    # Threads share one order: each thread's ids are in order, and no two are equal.
    for out in per_thread:
        assert out == sorted(out)
    assert len({i for out in per_thread for i in out}) == 4 * 2_000

    # A child forked with unused bytes in the buffer must not hand out the parent's.
    new_task_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, str(new_task_id().int & random_bits).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_bits = int(pipe.read())
    os.waitpid(pid, 0)
    assert child_bits != new_task_id().int & random_bits
