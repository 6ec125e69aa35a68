"""App: the registry of task functions and the Python API of durable tasks.

Decisions a user may notice:

- **Store.** ``App(store)`` takes a URL or a `Store` instance; without one it reads
  ``TASKWARD_DB`` and falls back to ``sqlite:///taskward.db``. The store opens lazily on the
  first operation (or ``await app.open()`` / ``async with app``). The app closes only a store
  it created from a URL; a `Store` instance passed in belongs to the caller.
- **Event loops.** A store belongs to one event loop: the one the app opened it in (its
  *home* loop). A coroutine method called from another loop runs on the home loop when that
  loop is running in another thread; when the home loop is gone (closed or stopped) the app
  binds to the caller's loop, with a fresh store for drivers that hold loop-bound connections.
- **Ids.** `get`, `cancel`, `retry` and `wait` take a UUID or its text. A well-formed id that
  matches nothing gives None from `get` and `UnknownTaskError` from the others; a malformed
  one is a caller's mistake and raises `InvalidArgumentsError`.
- **Sync facade.** ``app.sync`` runs the same coroutines on one private daemon thread with its
  own event loop, so Flask, Django and scripts can submit and query. With a database URL it
  uses its own store instance (the database is shared anyway); with ``memory://`` or a
  `Store` instance it shares the app's store, on the app's home loop. It refuses to run inside
  a running event loop, where blocking would freeze that loop. Its engine is public: a
  `Portal` (``app.portal()``) runs any coroutine of the app that way.
- **Another store.** ``app.with_store(url)`` is a new App with the same task functions,
  schedules and default task on another store (what ``taskward --db URL`` works with).
- **Text.** Names, queues, task names and schedule names, given to submit, look up or
  filter, are refused with `InvalidArgumentsError` when they hold a NUL character or a lone
  surrogate (see `taskward.options.check_text`): checked here, once, so that every store
  answers alike instead of one storing what another cannot.
- **Tracing.** ``tracing=None`` traces submits and runs with OpenTelemetry when its API is
  installed, ``True`` insists on it, ``False`` never traces (`taskward.tracing`).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import UUID

from taskward.app_schedules import AppSchedules
from taskward.errors import (
    ClosedError,
    ConfigurationError,
    InvalidArgumentsError,
    TaskCancelledError,
    TaskFailedError,
    TaskTimeoutError,
    UnknownTaskError,
)
from taskward.homeloop import HomeLoop
from taskward.homeloop import on_home_loop as _on_home_loop
from taskward.info import parse_task_id, task_info, worker_info
from taskward.models import (
    Status,
    TaskInfo,
)
from taskward.options import check_text, parse_statuses, submit_options
from taskward.portal import Portal
from taskward.registry import AppRegistry
from taskward.retry import retry_delay
from taskward.scheduler import Schedule
from taskward.stores import redact_url
from taskward.stores.base import Counts, NewTask, Store, TaskRecord, TransactionalStore
from taskward.tasks import TaskFunction
from taskward.tracing import check_traceparents, tracing_for

if TYPE_CHECKING:
    from taskward.sync import SyncApp

__all__ = ["DEFAULT_STORE_URL", "App", "Portal"]

DEFAULT_STORE_URL = "sqlite:///taskward.db"
MAX_PAGE = 1000

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# How often `App.wait` re-reads a task: finishing is not a store wake-up event, so it polls,
# quickly at first (short tasks) and then at most five times a second.
_POLL_FIRST = 0.005
_POLL_MAX = 0.2


class App(AppRegistry, AppSchedules, HomeLoop):
    """Task functions, and the store their tasks live in."""

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        default_task: str | None = None,
        tracing: bool | None = None,
    ) -> None:
        if store is None:
            store = os.environ.get("TASKWARD_DB") or DEFAULT_STORE_URL
        if isinstance(store, str):
            if not store.strip():
                raise ConfigurationError("the store URL is empty")
            self.url = store
            self._store: Store | None = None
            self._owns_store = True
        elif isinstance(store, Store):
            self.url = store.url
            self._store = store
            self._owns_store = False
        else:
            raise ConfigurationError(f"store must be a URL or a Store, got {store!r}")
        self.default_task = default_task
        self._tracing_setting = tracing
        self._tracing = tracing_for(tracing)  # None: off, one check per task (taskward.tracing)
        self._tasks: dict[str, TaskFunction[Any, Any]] = {}
        self._schedules: dict[str, Schedule] = {}
        self._home: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[None] | None = None
        self._closed = False
        self._sync: SyncApp | None = None  # made on first use of `sync`
        self._sync_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<App {redact_url(self.url)!r} tasks={len(self._tasks)}>"

    # -- lifecycle ----------------------------------------------------------------------

    def with_store(self, store: str | Store) -> App:
        """A new App on another store (a URL or a `Store`), with this app's task functions,
        schedules and default task: one app's tasks, read or run elsewhere.

        The task functions are the same objects, so their own ``submit`` still goes to the
        app that declared them. Later registrations on either app stay its own.
        """
        twin = App(store, default_task=self.default_task, tracing=self._tracing_setting)
        twin._tasks.update(self._tasks)
        twin._schedules.update(self._schedules)
        return twin

    async def workers(self) -> builtins.list[dict[str, Any]]:
        """The worker processes alive now: id, host, pid, queues, queue_limits (the queues
        with a limit of their own), concurrency, running, started_at, last_seen (their
        beats, every third of a lease)."""
        return [worker_info(w) for w in await (await self._ready()).workers()]

    async def connect(self) -> Store:
        """The app's store, opened on the running event loop (for workers and tools)."""
        return await self._ready()

    @_on_home_loop
    async def open(self) -> None:
        """Open the store (idempotent; every operation does it when needed)."""
        await self._ready()

    async def close(self) -> None:
        """Stop the sync facade and close the store this app opened. Final."""
        if self._closed:
            return
        self._closed = True
        with self._sync_lock:
            sync, self._sync = self._sync, None
        if sync is not None:
            await asyncio.to_thread(sync.close)
        store, home = self._store, self._home
        self._home = None
        if store is None or not self._owns_store or home is None:
            return
        loop = asyncio.get_running_loop()
        if home is not loop and home.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(store.close(), home))
        else:
            await store.close()

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def sync(self) -> SyncApp:
        """Blocking versions of the App's methods, for code without an event loop."""
        with self._sync_lock:
            if self._closed:
                raise ClosedError("this App is closed")
            if self._sync is None or self._sync.closed:
                from taskward.sync import SyncApp  # a thread and a loop, made only when asked

                self._sync = SyncApp(self)
            return self._sync

    def portal(self) -> Portal:
        """A new `Portal`: a blocking way into this app's coroutines for threads without an
        event loop (what `sync` is built on)."""
        shares = not self._owns_store or self._is_memory
        return Portal(
            self,
            # With a database URL, a twin on a store instance of its own: no connection is
            # used from two loops (the database is shared anyway).
            target=(lambda: self) if shares else (lambda: self.with_store(self.url)),
            release=self._unbind,
        )

    # -- tasks --------------------------------------------------------------------------

    def info(self, record: TaskRecord) -> TaskInfo:
        """The public `TaskInfo` of a stored row."""
        return task_info(record)

    async def submit(
        self,
        task: TaskFunction[Any, Any] | str,
        *args: Any,
        name: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        connection: Any = None,
        **kwargs: Any,
    ) -> TaskInfo:
        """Submit one task of a task function (or its name); see `TaskFunction.submit`."""
        options = submit_options(
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        new = self.get_task(task).prepare_call(options, args, kwargs)
        return await self._submit_one(new, connection)

    async def _submit_one(self, new: NewTask, connection: Any = None) -> TaskInfo:
        """`submit_many` of one prepared task: the path of every ``submit``.

        When this loop is the app's home, its store is open and no span is to be made (tracing
        off, or no tracer provider set up: the usual case), it goes straight to the store;
        anything else takes `submit_many`'s way.
        """
        store = self._ready_here()
        tracing = self._tracing
        if (
            store is not None
            and connection is None
            and (tracing is None or not tracing.active())
            and new.traceparent is None
        ):
            return task_info((await store.insert([new]))[0])
        return (await self.submit_many([new], connection=connection))[0]

    async def submit_many(
        self, items: Iterable[NewTask], *, connection: Any = None
    ) -> builtins.list[TaskInfo]:
        """Insert prepared tasks in one round trip, all or nothing; infos in the same order.

        ``connection``: the caller's own asyncpg connection, inside its transaction (PostgreSQL
        only): the tasks then exist, and wake workers, only if that transaction commits.
        A task's ``traceparent`` (None from ``prepare``) is the trace context it continues.
        """
        batch = builtins.list(items)
        if self._tracing is None:
            return await self._insert(batch, connection)
        # Here, before `_insert` may move to the home loop: the caller's context is current.
        return await self._tracing.send(batch, lambda b: self._insert(b, connection))

    @_on_home_loop
    async def _insert(
        self, batch: builtins.list[NewTask], connection: Any
    ) -> builtins.list[TaskInfo]:
        for item in batch:
            if not isinstance(item, NewTask):
                raise InvalidArgumentsError(
                    f"submit_many takes NewTask items (from prepare), got {item!r}"
                )
            if item.traceparent is not None:
                check_traceparents((item,))
        if not batch:
            return []
        store = await self._ready()
        if connection is None:
            rows = await store.insert(batch)
        elif isinstance(store, TransactionalStore):
            rows = await store.insert(batch, connection=connection)
        else:
            raise ConfigurationError(
                "submitting with connection= needs a PostgreSQL store; this app's store is"
                f" {type(store).__name__}"
            )
        times: dict[float, datetime] = {}
        return [task_info(row, times) for row in rows]

    @_on_home_loop
    async def get(self, task_id: UUID | str) -> TaskInfo | None:
        """The task with this id, or None."""
        uid = parse_task_id(task_id)
        row = await (await self._ready()).get(uid)
        return None if row is None else task_info(row)

    @_on_home_loop
    async def get_by_name(self, name: str) -> TaskInfo | None:
        """The active task with this name, else the latest one, else None."""
        check_text("name", name)
        row = await (await self._ready()).get_by_name(name)
        return None if row is None else task_info(row)

    @_on_home_loop
    async def list(
        self,
        *,
        status: Status | str | Iterable[Status | str] | None = None,
        task: str | None = None,
        queue: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[builtins.list[TaskInfo], str | None]:
        """A page of tasks, newest first, and the cursor of the next page (None: last)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidArgumentsError(
                f"limit must be an integer in [1, {MAX_PAGE}], got {limit!r}"
            )
        statuses = parse_statuses(status)
        for field, value in (("task", task), ("queue", queue), ("name", name)):
            if value is not None:
                check_text(field, value)
        store = await self._ready()
        try:
            page = await store.list(
                status=statuses, task=task, queue=queue, name=name, limit=limit, cursor=cursor
            )
        except InvalidArgumentsError:
            raise
        except ValueError as exc:  # a malformed cursor
            raise InvalidArgumentsError(str(exc), field="cursor") from None
        return [task_info(row) for row in page.items], page.cursor

    @_on_home_loop
    async def cancel(self, task_id: UUID | str) -> TaskInfo:
        """Cancel a Pending task at once, or ask its worker to stop a Running one."""
        uid = parse_task_id(task_id)
        row = await (await self._ready()).request_cancel(uid)
        if row is None:
            raise UnknownTaskError(f"no task with id {uid}")
        return task_info(row)

    @_on_home_loop
    async def retry(self, task_id: UUID | str) -> TaskInfo:
        """Run a Failed or Cancelled task again, from attempt one."""
        uid = parse_task_id(task_id)
        row = await (await self._ready()).retry(uid)
        if row is None:
            raise UnknownTaskError(f"no task with id {uid}")
        return task_info(row)

    @_on_home_loop
    async def counts(self) -> Counts:
        """Task counts by queue and status."""
        return await (await self._ready()).counts()

    @_on_home_loop
    async def oldest_pending(self) -> dict[str, float]:
        """Seconds the longest-waiting due Pending task of each queue has waited (queues
        without one are left out): the queue latency that metrics and autoscalers watch."""
        return await (await self._ready()).oldest_pending()

    @_on_home_loop
    async def wait(self, task_id: UUID | str, timeout: float | None = None) -> Any:
        """The task's result once Completed; raises if it Failed, was Cancelled, or timed out."""
        uid = parse_task_id(task_id)
        if timeout is not None and (_is_bad_timeout(timeout)):
            raise InvalidArgumentsError(f"timeout must be a number >= 0 or None, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        polls = 0
        while True:
            store = await self._ready()
            row = await store.get(uid)
            if row is None:
                raise UnknownTaskError(f"no task with id {uid}")
            if row.status is Status.COMPLETED:
                return task_info(row).result
            if row.status is Status.FAILED:
                raise TaskFailedError(row.error or f"task {uid} failed")
            if row.status is Status.CANCELLED:
                raise TaskCancelledError(f"task {uid} was cancelled")
            polls += 1
            pause = retry_delay(polls, first=_POLL_FIRST, cap=_POLL_MAX)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TaskTimeoutError(
                        f"task {uid} did not finish within {timeout} s (it is {row.status})"
                    )
                pause = min(pause, left)
            started = time.monotonic()
            await store.wait_for_change(pause)
            if time.monotonic() - started < _POLL_FIRST:
                # A closed or very busy store returns at once: do not spin on it.
                await asyncio.sleep(min(pause, _POLL_FIRST))


def _is_bad_timeout(timeout: object) -> bool:
    return isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
