"""Live task events: what changed, found by watching the store, fanned out to SSE streams.

Where events come from. Status changes happen in any process (workers elsewhere, the CLI),
and the store has no change feed yet, so `EventHub` combines two sources, both passed
through one de-duplicating `observe`:

- **this process**: the API routes report what they just did (submit, cancel, retry) at
  once, so a client sees its own actions without delay;
- **a poll of the store** every ``interval`` (0.5 s): the newest tasks (new inserts, up to
  ``NEW_PER_TICK`` per tick), the newest ``WINDOW`` Pending and Running tasks, and a ``get``
  of each task last seen active that has left those lists. Progress, written by workers a
  few times a second, shows up in the Running list.

What this can miss, by design (each is bounded work per tick): a change to a Pending task
older than the newest ``WINDOW`` Pending ones, made by another process (it shows when the
task starts running); more than ``NEW_PER_TICK`` inserts in one tick. A store-level change
feed (a version column, or PostgreSQL NOTIFY) would make it exact; the SSE format stays.

Each subscriber has a bounded queue: a client too slow to read loses the oldest events
(and is told so with a ``lagged`` event) rather than making the server hold everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from taskward.app import App
from taskward.models import FINISHED, Progress, Status, TaskInfo
from taskward.stores.base import Store, TaskRecord

__all__ = ["EventHub", "TaskEvent"]

logger = logging.getLogger("taskward.api.events")

WINDOW = 500
NEW_PER_TICK = 1000
_PAGE = 250
_MAX_GETS = 200
_THROUGHPUT_WINDOW = 60.0

#: Called with (status before or None when first seen, the task now) on every change.
ChangeListener = Callable[[Status | None, TaskInfo], None]


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One change of one task: ``status`` (incl. a new task) or ``progress``."""

    number: int
    kind: str
    task: dict[str, Any]

    def encode(self) -> bytes:
        """The event in Server-Sent Events wire format."""
        data = json.dumps(self.task, separators=(",", ":"))
        return f"id: {self.number}\nevent: {self.kind}\ndata: {data}\n\n".encode()


@dataclass(slots=True)
class _Seen:
    status: Status
    attempts: int
    progress: Progress | None
    seq: int | None


def _event_body(info: TaskInfo) -> dict[str, Any]:
    body = info.to_json()
    # Events carry what changes; the arguments and traceback are one GET away.
    body.pop("args", None)
    body.pop("traceback", None)
    return body


class _Subscriber:
    def __init__(self, ids: Collection[str] | None, task: str | None, queue: str | None) -> None:
        self.ids = frozenset(ids) if ids else None
        self.task = task
        self.queue = queue
        self.queue_: deque[TaskEvent] = deque(maxlen=1000)
        self.lagged = False
        self.ready = asyncio.Event()

    def wants(self, event: TaskEvent) -> bool:
        t = event.task
        return (
            (self.ids is None or t.get("id") in self.ids)
            and (self.task is None or t.get("task") == self.task)
            and (self.queue is None or t.get("queue") == self.queue)
        )

    def put(self, event: TaskEvent) -> None:
        if len(self.queue_) == self.queue_.maxlen:
            self.lagged = True
        self.queue_.append(event)
        self.ready.set()


class EventHub:
    """De-duplicated task changes from this process and from a poll of the store."""

    def __init__(self, app: App, *, interval: float = 0.5) -> None:
        self.app = app
        self.interval = interval
        self._seen: dict[UUID, _Seen] = {}
        self._high_seq: int | None = None  # newest insert seen; None until the first poll
        self._subscribers: set[_Subscriber] = set()
        self._listeners: list[ChangeListener] = []
        self._number = 0
        self._closed = asyncio.Event()
        self._finished: deque[tuple[float, Status]] = deque()

    # -- inputs -------------------------------------------------------------------------

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(before, info)`` on every change observed (metrics use this)."""
        self._listeners.append(listener)

    def observe(self, info: TaskInfo, seq: int | None = None, *, emit: bool = True) -> None:
        """Note a task's current state; publish an event if it changed since last seen."""
        if info.id is None:
            return
        before = self._seen.get(info.id)
        if (
            before is not None
            and before.status is info.status
            and before.attempts == info.attempts
            and before.progress == info.progress
        ):
            if seq is not None:
                before.seq = seq
            return
        if info.status in FINISHED:
            self._seen.pop(info.id, None)
        else:
            if seq is None and before is not None:
                seq = before.seq
            self._seen[info.id] = _Seen(info.status, info.attempts, info.progress, seq)
        if not emit:
            return
        only_progress = (
            before is not None and before.status is info.status and before.attempts == info.attempts
        )
        old_status = None if before is None else before.status
        if info.status in FINISHED and old_status is not info.status:
            self._finished.append((time.monotonic(), info.status))
            self._forget_old_finishes()
        for listener in self._listeners:
            try:
                listener(old_status, info)
            except Exception:
                logger.exception("an event listener failed")
        if self._subscribers:
            self._number += 1
            event = TaskEvent(
                self._number, "progress" if only_progress else "status", _event_body(info)
            )
            for sub in self._subscribers:
                if sub.wants(event):
                    sub.put(event)

    def reopen(self) -> None:
        """Accept subscribers and poll again after `close` (a new lifespan)."""
        self._closed.clear()

    def close(self) -> None:
        """End every stream (at shutdown) and the poll."""
        self._closed.set()
        for sub in self._subscribers:
            sub.ready.set()

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed.is_set()

    def throughput(self) -> dict[str, float]:
        """Tasks finished per second over the last minute, as seen by this process."""
        self._forget_old_finishes()
        counts = dict.fromkeys(FINISHED, 0)
        for _, status in self._finished:
            counts[status] += 1
        total = sum(counts.values())
        return {
            "window_seconds": _THROUGHPUT_WINDOW,
            "finished_per_second": total / _THROUGHPUT_WINDOW,
            "completed_per_second": counts[Status.COMPLETED] / _THROUGHPUT_WINDOW,
            "failed_per_second": counts[Status.FAILED] / _THROUGHPUT_WINDOW,
            "cancelled_per_second": counts[Status.CANCELLED] / _THROUGHPUT_WINDOW,
        }

    def _forget_old_finishes(self) -> None:
        horizon = time.monotonic() - _THROUGHPUT_WINDOW
        while self._finished and self._finished[0][0] < horizon:
            self._finished.popleft()

    # -- the poll -----------------------------------------------------------------------

    async def run(self) -> None:
        """Poll the store until `close`; survives store outages (logs, waits, retries)."""
        failures = 0
        while not self._closed.is_set():
            try:
                await self.poll()
                failures = 0
            except Exception as exc:
                failures += 1
                log = logger.warning if failures < 5 else logger.debug
                log("event poll failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self.interval * min(failures + 1, 10))

    async def poll(self) -> None:
        """One look at the store: publish what changed since the last look."""
        store = await self.app.connect()
        first = self._high_seq is None
        new = await self._new_records(store)
        pending = (await store.list(status=[Status.PENDING], limit=WINDOW)).items
        running = (await store.list(status=[Status.RUNNING], limit=WINDOW)).items
        fetched: set[UUID] = set()
        for record in (*new, *pending, *running):
            fetched.add(record.id)
            self.observe(self.app.info(record), record.seq, emit=not first)
        # A task we saw active that left the lists has changed: look at it, unless it only
        # fell out of a full window (then its absence says nothing).
        oldest = {
            Status.PENDING: pending[-1].seq if len(pending) == WINDOW else None,
            Status.RUNNING: running[-1].seq if len(running) == WINDOW else None,
        }
        gone: list[UUID] = []
        for task_id, seen in list(self._seen.items()):
            if task_id in fetched:
                continue
            floor = oldest.get(seen.status)
            if floor is not None and (seen.seq is None or seen.seq < floor):
                del self._seen[task_id]  # outside the window: seen again when it moves
                continue
            gone.append(task_id)
        for task_id in gone[:_MAX_GETS]:
            now = await store.get(task_id)
            if now is None:
                self._seen.pop(task_id, None)  # pruned
            else:
                self.observe(self.app.info(now), now.seq)

    async def _new_records(self, store: Store) -> list[TaskRecord]:
        """Tasks inserted since the last poll, oldest first."""
        out: list[TaskRecord] = []
        cursor: str | None = None
        high = self._high_seq
        while len(out) < NEW_PER_TICK:
            page = await store.list(limit=1 if high is None else _PAGE, cursor=cursor)
            fresh = [r for r in page.items if high is None or r.seq > high]
            out.extend(fresh)
            if high is None or len(fresh) < len(page.items) or page.cursor is None:
                break
            cursor = page.cursor
        if out:
            self._high_seq = max(r.seq for r in out)
        elif high is None:
            self._high_seq = 0
        out.reverse()
        return out if high is not None else []

    # -- outputs ------------------------------------------------------------------------

    async def subscribe(
        self,
        *,
        ids: Collection[str] | None = None,
        task: str | None = None,
        queue: str | None = None,
        keepalive: float = 15.0,
    ) -> AsyncGenerator[bytes, None]:
        """The SSE byte stream of matching events, with a comment line every ``keepalive``."""
        sub = _Subscriber(ids, task, queue)
        self._subscribers.add(sub)
        try:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                if sub.lagged:
                    sub.lagged = False
                    yield b'event: lagged\ndata: {"detail":"events were dropped"}\n\n'
                while sub.queue_:
                    yield sub.queue_.popleft().encode()
                if self._closed.is_set():
                    return
                sub.ready.clear()
                try:
                    await asyncio.wait_for(sub.ready.wait(), keepalive)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            self._subscribers.discard(sub)
