"""Helpers for the in-process worker tests: a worker runner and a fault injector (the bounded
waits are in tests/waiting.py)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from taskward.app import App
from taskward.errors import StoreError
from taskward.models import Status, TaskInfo
from taskward.stores.base import (
    Counts,
    NewTask,
    Outcome,
    Page,
    ScheduleRecord,
    Store,
    TaskRecord,
    WorkerRecord,
)
from taskward.worker import Worker


class StoreFactory(Protocol):
    """Makes a fresh, empty store of the kind under test (closed by the fixture)."""

    def __call__(self, clock: Callable[[], float] | None = None) -> Store: ...


def fast_worker(app: App, **options: Any) -> Worker:
    """A worker with tiny intervals, so every test runs in a fraction of a second."""
    settings: dict[str, Any] = {
        "lease": 1.0,
        "poll_interval": 0.02,
        "cancel_poll": 0.05,
        "grace": 1.0,
        "pruning": None,
        "concurrency": 4,
    }
    settings.update(options)
    return Worker(app, **settings)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` in the background; on exit stop it at once and re-raise any crash."""
    task = asyncio.create_task(worker.run(), name="worker-under-test")
    try:
        yield task
    finally:
        if not task.done():
            worker.stop()
            worker.stop()  # the second request: release what still runs, do not wait
        await asyncio.wait_for(task, 10.0)  # re-raises if the worker crashed


def tid(info: TaskInfo) -> UUID:
    """A durable task's id (TaskInfo.id is optional because in-process tasks have none)."""
    assert info.id is not None
    return info.id


async def count(app: App, status: Status) -> int:
    """How many tasks have ``status`` in the store now."""
    return (await app.counts()).by_status()[status]


class FaultyStore:
    """A real store behind a fault injector.

    ``fail={"claim": 3}`` makes the first three ``claim`` calls raise `StoreError` before
    reaching the store (an outage: nothing happened); methods in `broken` fail until removed.
    Every call is counted in `calls`, so tests can wait for the worker to make progress.
    """

    def __init__(self, inner: Store, fail: Mapping[str, int] | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self.fail: dict[str, int] = dict(fail or {})
        self.broken: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if method in self.broken:
            self.failed[method] += 1
            raise StoreError(f"injected outage: {method} is broken")
        if self.fail.get(method, 0) > 0:
            self.fail[method] -= 1
            self.failed[method] += 1
            raise StoreError(f"injected outage: {method} failed")

    async def open(self) -> None:
        self._enter("open")
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def now(self) -> float:
        return await self.inner.now()

    async def insert(self, tasks: Sequence[NewTask]) -> builtins.list[TaskRecord]:
        self._enter("insert")
        return await self.inner.insert(tasks)

    async def claim(
        self, worker_id: str, queues: Sequence[str] | None, limit: int, lease: float
    ) -> builtins.list[TaskRecord]:
        self._enter("claim")
        return await self.inner.claim(worker_id, queues, limit, lease)

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[UUID, str]], lease: float
    ) -> set[UUID]:
        self._enter("heartbeat")
        return await self.inner.heartbeat(worker_id, leases, lease)

    async def finish(
        self,
        task_id: UUID,
        token: str,
        status: Status,
        *,
        result: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        self._enter("finish")
        return await self.inner.finish(
            task_id, token, status, result=result, error=error, traceback=traceback
        )

    async def finish_many(self, outcomes: Sequence[Outcome]) -> builtins.list[bool]:
        self._enter("finish")  # the worker's way to finish: an outage of "finish" hits it
        return await self.inner.finish_many(outcomes)

    async def requeue(
        self,
        task_id: UUID,
        token: str,
        *,
        delay: float = 0.0,
        error: str | None = None,
        traceback: str | None = None,
        refund_attempt: bool = False,
    ) -> bool:
        self._enter("requeue")
        return await self.inner.requeue(
            task_id,
            token,
            delay=delay,
            error=error,
            traceback=traceback,
            refund_attempt=refund_attempt,
        )

    async def set_progress(self, task_id: UUID, token: str, progress: str) -> bool:
        self._enter("set_progress")
        return await self.inner.set_progress(task_id, token, progress)

    async def request_cancel(self, task_id: UUID) -> TaskRecord | None:
        self._enter("request_cancel")
        return await self.inner.request_cancel(task_id)

    async def cancel_requested(self, task_ids: Sequence[UUID]) -> set[UUID]:
        self._enter("cancel_requested")
        return await self.inner.cancel_requested(task_ids)

    async def retry(self, task_id: UUID) -> TaskRecord | None:
        self._enter("retry")
        return await self.inner.retry(task_id)

    async def get(self, task_id: UUID) -> TaskRecord | None:
        return await self.inner.get(task_id)

    async def get_by_name(self, name: str) -> TaskRecord | None:
        return await self.inner.get_by_name(name)

    async def counts(self) -> Counts:
        return await self.inner.counts()

    async def oldest_pending(self) -> dict[str, float]:
        return await self.inner.oldest_pending()

    async def rescue(self, leader: str | None = None) -> builtins.list[TaskRecord]:
        self._enter("rescue")
        return await self.inner.rescue(leader)

    async def prune(self, older_than: Mapping[Status, float], limit: int = 500) -> int:
        self._enter("prune")
        return await self.inner.prune(older_than, limit)

    async def wait_for_change(self, timeout: float) -> None:
        await self.inner.wait_for_change(timeout)

    async def lead(self, holder: str, ttl: float) -> bool:
        self._enter("lead")
        return await self.inner.lead(holder, ttl)

    async def resign(self, holder: str) -> None:
        self._enter("resign")
        await self.inner.resign(holder)

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        self._enter("worker_beat")
        await self.inner.worker_beat(worker_id, info, ttl)

    async def worker_gone(self, worker_id: str) -> None:
        self._enter("worker_gone")
        await self.inner.worker_gone(worker_id)

    async def workers(self) -> builtins.list[WorkerRecord]:
        self._enter("workers")
        return await self.inner.workers()

    async def put_schedule(
        self, name: str, definition: str, *, replace: bool = False
    ) -> ScheduleRecord:
        self._enter("put_schedule")
        return await self.inner.put_schedule(name, definition, replace=replace)

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        return await self.inner.get_schedule(name)

    async def list_schedules(self) -> builtins.list[ScheduleRecord]:
        self._enter("list_schedules")
        return await self.inner.list_schedules()

    async def delete_schedule(self, name: str) -> bool:
        return await self.inner.delete_schedule(name)

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        return await self.inner.set_schedule_paused(name, paused)

    async def fire_schedule(
        self,
        name: str,
        expected_last_tick: float | None,
        new_last_tick: float | None,
        tasks: Sequence[NewTask],
        *,
        fired: float | None = None,
        leader: str | None = None,
    ) -> bool:
        self._enter("fire_schedule")
        return await self.inner.fire_schedule(
            name, expected_last_tick, new_last_tick, tasks, fired=fired, leader=leader
        )

    async def count_active(self, name_prefix: str) -> int:
        return await self.inner.count_active(name_prefix)

    async def list(
        self,
        *,
        status: Sequence[Status] | None = None,
        task: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        return await self.inner.list(
            status=status, task=task, queue=queue, name=name, limit=limit, cursor=cursor
        )
