"""Task ids are UUID version 7: unique, and ordered by creation time."""

from __future__ import annotations

import time
import uuid

from taskward.models import new_task_id


def test_ids_are_version_7_and_unique() -> None:
    ids = [new_task_id() for _ in range(10_000)]
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)
    # Each of the 74 random bits takes both values across the sample.
    random_bits = [(i.int & 0x0FFF_3FFF_FFFF_FFFF_FFFF) for i in ids]
    for bit in (*range(62), *range(64, 76)):
        assert len({(r >> bit) & 1 for r in random_bits}) == 2, bit


def test_ids_start_with_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    task_id = new_task_id()
    after = time.time_ns() // 1_000_000
    assert before <= task_id.int >> 80 <= after


def test_later_ids_sort_after_earlier_ones() -> None:
    first = new_task_id()
    time.sleep(0.002)  # next millisecond: the time prefix decides the order
    assert new_task_id() > first
