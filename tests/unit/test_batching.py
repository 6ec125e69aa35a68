"""`GroupCommit`: concurrent callers share writes, each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from taskward.batching import GroupCommit


async def settle() -> None:
    """Let the tasks just created run up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


class Writer:
    """Records each write; a write waits for ``gate`` so that callers can pile up."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[str]:
        self.writes.append(items)
        await self.gate.wait()
        if any(i < 0 for i in items):
            raise ValueError(f"bad item in {items}")
        return [f"r{i}" for i in items]


async def test_callers_that_arrive_during_a_write_share_the_next_one() -> None:
    writer = Writer()
    commit: GroupCommit[int, str] = GroupCommit(writer, max_batch=100, name="t")
    writer.gate.clear()
    first = asyncio.create_task(commit.submit([1]))
    await settle()  # the first write starts at once, without waiting for company
    assert writer.writes == [[1]]
    others = [asyncio.create_task(commit.submit([i, i + 1])) for i in (10, 20, 30)]
    await settle()
    writer.gate.set()
    assert await asyncio.wait_for(first, 1) == ["r1"]
    assert await asyncio.wait_for(asyncio.gather(*others), 1) == [
        ["r10", "r11"],
        ["r20", "r21"],
        ["r30", "r31"],
    ]
    assert writer.writes == [[1], [10, 11, 20, 21, 30, 31]]


async def test_a_write_holds_at_most_max_batch_items_and_never_splits_a_caller() -> None:
    writer = Writer()
    commit: GroupCommit[int, str] = GroupCommit(writer, max_batch=3, name="t")
    writer.gate.clear()
    tasks = [asyncio.create_task(commit.submit([1]))]
    await settle()
    tasks += [asyncio.create_task(commit.submit(items)) for items in ([2, 3], [4], [5, 6, 7])]
    await settle()
    writer.gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert writer.writes == [[1], [2, 3, 4], [5, 6, 7]]


async def test_a_failed_shared_write_fails_all_its_callers_by_default() -> None:
    writer = Writer()
    commit: GroupCommit[int, str] = GroupCommit(writer, max_batch=100, name="t")
    writer.gate.clear()
    first = asyncio.create_task(commit.submit([1]))
    await settle()
    good, bad = asyncio.create_task(commit.submit([2])), asyncio.create_task(commit.submit([-3]))
    await settle()
    writer.gate.set()
    assert await first == ["r1"]
    for task in (good, bad):
        with pytest.raises(ValueError, match="bad item"):
            await asyncio.wait_for(task, 1)


async def test_alone_on_error_only_the_caller_at_fault_gets_the_error() -> None:
    writer = Writer()
    commit: GroupCommit[int, str] = GroupCommit(
        writer, max_batch=100, name="t", alone_on_error=True
    )
    writer.gate.clear()
    first = asyncio.create_task(commit.submit([1]))
    await settle()
    good, bad = asyncio.create_task(commit.submit([2])), asyncio.create_task(commit.submit([-3]))
    await settle()
    writer.gate.set()
    assert await first == ["r1"]
    assert await asyncio.wait_for(good, 1) == ["r2"]
    with pytest.raises(ValueError, match=r"bad item in \[-3\]"):
        await asyncio.wait_for(bad, 1)
    assert writer.writes == [[1], [2, -3], [2], [-3]]


async def test_callers_are_not_left_waiting_when_the_writer_is_cancelled() -> None:
    writer = Writer()
    commit: GroupCommit[int, str] = GroupCommit(writer, max_batch=100, name="t")
    writer.gate.clear()
    first = asyncio.create_task(commit.submit([1]))
    await settle()
    second = asyncio.create_task(commit.submit([2]))
    await settle()
    drain = next(t for t in asyncio.all_tasks() if t.get_name() == "t")
    drain.cancel()
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1)
    writer.gate.set()
    assert await asyncio.wait_for(commit.submit([3]), 1) == ["r3"]  # usable again


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        GroupCommit(Writer(), max_batch=0, name="t")
