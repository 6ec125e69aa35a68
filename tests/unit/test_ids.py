"""Task ids are UUID version 7: unique, and ordered by creation time."""

from __future__ import annotations

import copy
import os
import pickle
import threading
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
    random_bits = 0x0FFF_3FFF_FFFF_FFFF_FFFF
    per_thread: list[list[int]] = [[] for _ in range(4)]

    def draw(out: list[int]) -> None:
        out.extend(new_task_id().int & random_bits for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drawn = [bits for out in per_thread for bits in out]
    assert len(set(drawn)) == len(drawn)

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
