"""Task ids are UUID version 7: unique, and ordered by creation time."""

from __future__ import annotations

import time

from taskward.models import new_task_id


def test_ids_are_version_7_and_unique() -> None:
    ids = [new_task_id() for _ in range(10_000)]
    assert {i.version for i in ids} == {7}
    assert len(set(ids)) == len(ids)


def test_ids_start_with_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    task_id = new_task_id()
    after = time.time_ns() // 1_000_000
    assert before <= task_id.int >> 80 <= after


def test_later_ids_sort_after_earlier_ones() -> None:
    first = new_task_id()
    time.sleep(0.002)  # next millisecond: the time prefix decides the order
    assert new_task_id() > first
