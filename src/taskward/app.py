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
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import inspect
import json
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, overload
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
from taskward.homeloop import on_home_loop as _on_home_loop
from taskward.homeloop import replace_store as _replace_store
from taskward.info import parse_task_id, task_info
from taskward.models import (
    Status,
    TaskInfo,
    from_timestamp,
)
from taskward.options import SubmitKeywords, SubmitOptions, check_text, submit_options
from taskward.redact import Secrets, redact_args
from taskward.retry import Backoff, retry_delay
from taskward.scheduler import Schedule
from taskward.stores import open_store, redact_url
from taskward.stores.base import Counts, NewTask, Store, TaskRecord, TransactionalStore
from taskward.tasks import TaskFunction

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


def _hide_secret_defaults(schema: dict[str, Any], secrets: Secrets) -> dict[str, Any]:
    """The arguments' JSON Schema without the defaults of secret arguments (a default in
    code is a value too; pydantic shows a SecretStr's as stars, a ``password: str``'s not)."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        defaults = {k: p["default"] for k, p in properties.items() if "default" in p}
        shown = redact_args(defaults, secrets)
        for key, value in shown.items():
            if value != defaults[key]:
                del properties[key]["default"]
    return schema


def _statuses(status: Status | str | Iterable[Status | str] | None) -> builtins.list[Status] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, str) else builtins.list(status)
    out = []
    for item in items:
        try:
            out.append(Status(item))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise InvalidArgumentsError(f"unknown status {item!r}; known: {known}") from None
    return out


class App(AppSchedules):
    """Task functions, and the store their tasks live in."""

    def __init__(
        self, store: str | Store | None = None, *, default_task: str | None = None
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
        self._tasks: dict[str, TaskFunction[Any, Any]] = {}
        self._schedules: dict[str, Schedule] = {}
        self._home: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[None] | None = None
        self._closed = False
        self._sync: SyncApp | None = None  # made on first use of `sync`
        self._sync_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<App {redact_url(self.url)!r} tasks={len(self._tasks)}>"

    # -- registry -----------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        retry: Backoff | None = None,
        default: bool = False,
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        retry: Backoff | None = None,
        default: bool = False,
    ) -> TaskFunction[P, R] | Callable[[Callable[P, R]], TaskFunction[P, R]]:
        """Register a task function: ``@app.task`` or ``@app.task(queue=..., ...)``."""

        def register(fn: Callable[P, R]) -> TaskFunction[P, R]:
            task_fn = TaskFunction(
                fn,
                app=self,
                name=name,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
                retry=retry,
            )
            if task_fn.name in self._tasks:
                raise ConfigurationError(
                    f"a task function named {task_fn.name!r} is already registered; "
                    "give one of them another name="
                )
            if default and self.default_task not in (None, task_fn.name):
                raise ConfigurationError(
                    f"the default task is already {self.default_task!r}, "
                    f"so {task_fn.name!r} cannot be the default too"
                )
            self._tasks[task_fn.name] = task_fn
            if default:
                self.default_task = task_fn.name
            return task_fn

        return register if fn is None else register(fn)

    @property
    def tasks(self) -> Mapping[str, TaskFunction[Any, Any]]:
        """The registered task functions by name (read-only)."""
        return MappingProxyType(self._tasks)

    def get_task(self, name: TaskFunction[Any, Any] | str | None = None) -> TaskFunction[Any, Any]:
        """The task function with this name (None: the default task; a task function: itself)."""
        if isinstance(name, TaskFunction):
            return name
        if name is None:
            if self.default_task is None:
                raise UnknownTaskError("no task given, and the app has no default task")
            name = self.default_task
        task_fn = self._tasks.get(name)
        if task_fn is None:
            known = ", ".join(sorted(self._tasks)) or "none registered"
            raise UnknownTaskError(f"unknown task {name!r}; known: {known}")
        return task_fn

    def secrets(self, task: str | None) -> Secrets | None:
        """Where the task function of this name has arguments typed as secrets (None: it is
        not registered here, so only the redaction names hide arguments).

        For `TaskInfo.to_json` and `ScheduleInfo.to_json`: ``info.to_json(app.secrets(info.task))``.
        """
        task_fn = None if task is None else self._tasks.get(task)
        return None if task_fn is None else task_fn.secrets

    def task_types(self) -> builtins.list[dict[str, Any]]:
        """Each task function with its options and its arguments' JSON Schema, by name."""
        return [
            {
                "name": t.name,
                "description": inspect.getdoc(t.fn),
                "queue": t.queue,
                "priority": t.priority,
                "max_attempts": t.max_attempts,
                "timeout": t.timeout,
                "default": t.name == self.default_task,
                "args": _hide_secret_defaults(t.args_schema(), t.secrets),
            }
            for t in sorted(self._tasks.values(), key=lambda t: t.name)
        ]

    def prepare(
        self,
        task: str | None,
        args: Mapping[str, Any] | None = None,
        options: SubmitOptions | None = None,
        **keywords: Unpack[SubmitKeywords],
    ) -> NewTask:
        """A validated `NewTask` for the task function named ``task`` (None: the default);
        options as one `SubmitOptions` or as keywords."""
        return self.get_task(task).prepare_args(args, options, **keywords)

    # -- lifecycle ----------------------------------------------------------------------

    def with_store(self, store: str | Store) -> App:
        """A new App on another store (a URL or a `Store`), with this app's task functions,
        schedules and default task: one app's tasks, read or run elsewhere.

        The task functions are the same objects, so their own ``submit`` still goes to the
        app that declared them. Later registrations on either app stay its own.
        """
        twin = App(store, default_task=self.default_task)
        twin._tasks.update(self._tasks)
        twin._schedules.update(self._schedules)
        return twin

    def _new_store(self) -> Store:
        return open_store(self.url)

    @property
    def _is_memory(self) -> bool:
        return self.url.lower().startswith("memory:")

    def _ready_here(self) -> Store | None:
        """The store when it is open on the running loop already (nothing to wait for)."""
        store = self._store
        if (
            store is None
            or self._closed
            or self._opening is not None
            or self._home is not asyncio.get_running_loop()
        ):
            return None
        return store

    async def _ready(self) -> Store:
        """The store, opened on the running loop (which becomes the home loop)."""
        if self._closed:
            raise ClosedError("this App is closed")
        loop = asyncio.get_running_loop()
        if self._home is not loop or self._store is None:
            stale = None
            if self._store is None:
                self._store = self._new_store()
            elif self._home is not None and self._owns_store and not self._is_memory:
                # The old store's connections belong to a loop that is gone: start afresh.
                stale, self._store = self._store, self._new_store()
            self._home = loop
            self._opening = loop.create_task(_replace_store(stale, self._store))
        store = self._store
        opening = self._opening
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except BaseException:
                if opening.done() and self._opening is opening:
                    # Let the next call try again rather than re-raise this failure forever.
                    self._opening = None
                    self._home = None
                raise
            if self._opening is opening:
                self._opening = None
        return store

    async def workers(self) -> builtins.list[dict[str, Any]]:
        """The worker processes alive now: id, host, pid, queues, queue_limits (the queues
        with a limit of their own), concurrency, running, started_at, last_seen (their
        beats, every third of a lease)."""
        store = await self._ready()
        out = []
        for w in await store.workers():
            try:
                info = json.loads(w.info)
            except ValueError:
                info = {}
            if not isinstance(info, dict):
                info = {}
            out.append(
                {
                    "id": w.id,
                    "host": info.get("host"),
                    "pid": info.get("pid"),
                    "queues": info.get("queues"),
                    "queue_limits": info.get("queue_limits"),
                    "concurrency": info.get("concurrency"),
                    "running": info.get("running"),
                    "started_at": from_timestamp(w.started_at),
                    "last_seen": from_timestamp(w.last_seen),
                }
            )
        return out

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
        return Portal(self)

    def _unbind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget ``loop`` as home (it is shutting down); the next call binds anew."""
        if self._home is loop:
            self._home = None
            self._opening = None

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

        When this loop is the app's home and its store is open (the usual case), it goes
        straight to the store; anything else takes `submit_many`'s way.
        """
        store = self._ready_here()
        if store is not None and connection is None:
            return task_info((await store.insert([new]))[0])
        return (await self.submit_many([new], connection=connection))[0]

    @_on_home_loop
    async def submit_many(
        self, items: Iterable[NewTask], *, connection: Any = None
    ) -> builtins.list[TaskInfo]:
        """Insert prepared tasks in one round trip, all or nothing; infos in the same order.

        ``connection``: the caller's own asyncpg connection, inside its transaction (PostgreSQL
        only): the tasks then exist, and wake workers, only if that transaction commits.
        """
        batch = builtins.list(items)
        for item in batch:
            if not isinstance(item, NewTask):
                raise InvalidArgumentsError(
                    f"submit_many takes NewTask items (from prepare), got {item!r}"
                )
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
        statuses = _statuses(status)
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


class Portal:
    """A blocking way into an App's coroutines, for threads without a running event loop.

    Made by `App.portal`; ``app.sync`` is built on one. The coroutines run on one private
    daemon thread with its own event loop, started on first use and stopped by `close` (also
    at interpreter exit). With a database URL the portal drives a twin of the app on a store
    instance of its own (`App.with_store`, same URL: the database is shared anyway), so that
    no connection is used from two loops; with ``memory://`` or a `Store` instance it drives
    the app itself, whose methods then run on the app's home loop when that loop is running
    in another thread.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._target: App | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` has begun; a closed portal refuses work."""
        return self._closed

    def _start(self) -> tuple[asyncio.AbstractEventLoop, App]:
        with self._lock:
            if self._closed:
                raise ClosedError("app.sync is closed")
            if self._loop is None or self._target is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="taskward-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                app = self.app
                shares = not app._owns_store or app._is_memory
                self._target = app if shares else app.with_store(app.url)
                atexit.register(self.close)
            return self._loop, self._target

    def call(self, make: Callable[[App], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(app)`` to its end, blocking this thread, and return its result.

        ``app`` is the App to drive (this portal's app, or its twin): write
        ``portal.call(lambda app: app.get(task_id))``. Refused (`RuntimeError`) inside a
        running event loop, which blocking would freeze.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "app.sync blocks, so it cannot be used inside a running event loop: "
                "await the App's coroutine methods instead"
            )
        loop, target = self._start()
        future = asyncio.run_coroutine_threadsafe(make(target), loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt while blocked: do not leave the coroutine running behind.
            future.cancel()
            raise

    def close(self) -> None:
        """Close the twin's store (if there is one) and stop the thread. Final."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, target = self._loop, self._thread, self._target
        atexit.unregister(self.close)
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("app.sync cannot be closed from its own thread")
        app = self.app

        async def shutdown() -> None:
            if target is not None and target is not app:
                await target.close()
            else:
                app._unbind(loop)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for other in others:
                other.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()
