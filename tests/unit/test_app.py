"""App: submitting, reading, cancelling, retrying and waiting on durable tasks, on the memory
store and on a SQLite file; the registry; store selection; and the sync facade.

Tasks are finished without a worker, through the store's own claim and finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from taskward.app import DEFAULT_STORE_URL, App
from taskward.errors import (
    ClosedError,
    ConfigurationError,
    DuplicateNameError,
    InvalidArgumentsError,
    InvalidTransitionError,
    TaskCancelledError,
    TaskFailedError,
    TaskTimeoutError,
    UnknownTaskError,
)
from taskward.info import task_info
from taskward.models import Progress, Status
from taskward.stores import open_store
from taskward.stores.base import Store, TaskRecord
from taskward.stores.memory import MemoryStore
from taskward.tasks import TaskFunction
from taskward.testing import FakeClock, memory_app


def register(
    app: App,
) -> tuple[TaskFunction[[str, int], Coroutine[Any, Any, None]], TaskFunction[[int, int], int]]:
    """The two task functions most tests use."""

    @app.task(name="send", queue="emails", max_attempts=5)
    async def send(to: str, user_id: int) -> None:
        pass

    @app.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    return send, add


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = MemoryStore() if request.param == "memory" else open_store(f"sqlite:///{tmp_path}/t.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def app(store: Store) -> AsyncIterator[App]:
    app = App(store)
    register(app)
    yield app
    await app.close()


async def run(store: Store, task_id: UUID, status: Status, **outcome: Any) -> None:
    """Claim the one due task (it must be ``task_id``) and finish it with ``status``."""
    [row] = await store.claim("test-worker", None, 10, 30.0)
    assert row.id == task_id
    assert row.lease_token is not None
    assert await store.finish(row.id, row.lease_token, status, **outcome)


# -- submit and read ----------------------------------------------------------------------


async def test_submit_then_get_round_trips(app: App) -> None:
    send = app.get_task("send")
    before = datetime.now(UTC)
    info = await send.submit("a@b.c", user_id=42, name="welcome-42", priority=1)
    assert info.status is Status.PENDING
    assert (info.task, info.name, info.queue, info.priority) == ("send", "welcome-42", "emails", 1)
    assert info.args == {"to": "a@b.c", "user_id": 42}
    assert (info.attempts, info.max_attempts, info.error, info.result) == (0, 5, None, None)
    assert info.created_at.tzinfo is not None
    assert info.run_at is not None
    assert abs((info.created_at - before).total_seconds()) < 60
    assert info.id is not None
    assert await app.get(info.id) == info
    assert await app.get(str(info.id)) == info
    assert await app.get_by_name("welcome-42") == info


async def test_delay_sets_run_at_in_the_future(app: App) -> None:
    info = await app.submit("add", 1, delay=60)
    assert info.run_at is not None
    assert (info.run_at - info.created_at).total_seconds() == pytest.approx(60, abs=1)


async def test_get_of_an_unknown_id_is_none_and_a_malformed_id_an_error(app: App) -> None:
    assert await app.get(uuid4()) is None
    assert await app.get_by_name("nobody") is None
    with pytest.raises(InvalidArgumentsError, match="malformed task id 'nope'"):
        await app.get("nope")


async def test_invalid_arguments_store_nothing(app: App) -> None:
    send = app.get_task("send")
    with pytest.raises(InvalidArgumentsError, match="user_id: Input should be a valid integer"):
        await send.submit("a@b.c", user_id="many")
    with pytest.raises(InvalidArgumentsError, match="user_id: missing required argument"):
        await send.submit("a@b.c")
    with pytest.raises(InvalidArgumentsError, match="priority must be an integer"):
        await send.submit("a@b.c", 1, priority="high")  # type: ignore[arg-type]
    with pytest.raises(UnknownTaskError, match="unknown task 'nope'; known: add, send"):
        await app.submit("nope")
    assert (await app.counts()).by_status()[Status.PENDING] == 0
    assert await app.list() == ([], None)


async def test_an_active_name_is_unique_and_free_again_once_finished(
    app: App, store: Store
) -> None:
    add = app.get_task("add")
    first = await add.submit(1, name="sum")
    with pytest.raises(DuplicateNameError, match="'sum'"):
        await add.submit(2, name="sum")
    assert len((await app.list())[0]) == 1
    assert first.id is not None
    await run(store, first.id, Status.COMPLETED, result="1")
    second = await add.submit(2, name="sum")
    info = await app.get_by_name("sum")
    assert info is not None
    assert info.id == second.id


async def test_submit_many_is_one_batch_all_or_nothing(app: App) -> None:
    items = [app.prepare("add", {"a": n}, name=f"n{n}") for n in range(3)]
    infos = await app.submit_many(items)
    assert [i.id for i in infos] == [i.id for i in items]
    assert [i.args for i in infos] == [{"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 2, "b": 0}]
    assert infos == [await app.get(i.id) for i in items]  # what submit says is what is stored

    clash = [app.prepare("add", {"a": 9}, name="fresh"), app.prepare("add", {"a": 9}, name="n1")]
    with pytest.raises(DuplicateNameError):
        await app.submit_many(clash)
    twice = [app.prepare("add", {"a": 9}, name="same"), app.prepare("add", {"a": 8}, name="same")]
    with pytest.raises(DuplicateNameError):
        await app.submit_many(twice)
    assert len((await app.list())[0]) == 3
    assert await app.get_by_name("fresh") is None
    assert await app.submit_many([]) == []
    with pytest.raises(InvalidArgumentsError, match="NewTask"):
        await app.submit_many([{"task": "add"}])  # type: ignore[list-item]


async def test_prepare_uses_the_default_task_when_none_is_named(store: Store) -> None:
    app = App(store, default_task="add")
    register(app)
    assert app.prepare(None, {"a": 1}).task == "add"
    no_default = App(store)
    with pytest.raises(UnknownTaskError, match="no default task"):
        no_default.prepare(None, {})


async def test_list_pages_with_a_cursor_and_filters(app: App, store: Store) -> None:
    ids = [(await app.submit("add", n)).id for n in range(5)]
    mail = await app.submit("send", "a@b.c", 1, name="mail")
    page, cursor = await app.list(limit=2)
    assert [i.id for i in page] == [mail.id, ids[4]]
    seen = [i.id for i in page]
    while cursor is not None:
        page, cursor = await app.list(limit=2, cursor=cursor)
        seen += [i.id for i in page]
    assert seen == [mail.id, *reversed(ids)]

    assert [i.id for i in (await app.list(task="send"))[0]] == [mail.id]
    assert [i.id for i in (await app.list(queue="emails"))[0]] == [mail.id]
    assert [i.id for i in (await app.list(name="mail"))[0]] == [mail.id]
    await app.cancel(ids[0])  # type: ignore[arg-type]
    assert [i.id for i in (await app.list(status="Cancelled"))[0]] == [ids[0]]
    both = await app.list(status=[Status.CANCELLED, "Pending"], limit=1000)
    assert len(both[0]) == 6


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"limit": 0}, r"limit must be an integer in \[1, 1000\]"),
        ({"limit": 1001}, r"limit must be an integer in \[1, 1000\]"),
        ({"status": "Done"}, "unknown status 'Done'; known: Pending, Running"),
        ({"cursor": "not-a-cursor"}, "invalid cursor"),
    ],
)
async def test_list_refuses_bad_queries(app: App, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgumentsError, match=words):
        await app.list(**kwargs)


async def test_counts_by_queue_and_status(app: App) -> None:
    await app.submit("add", 1)
    await app.submit("send", "a@b.c", 2)
    counts = await app.counts()
    assert counts.by_queue == {
        "default": {Status.PENDING: 1},
        "emails": {Status.PENDING: 1},
    }


# -- cancel and retry ---------------------------------------------------------------------


async def test_cancel_a_pending_task_at_once(app: App) -> None:
    info = await app.submit("add", 1)
    assert info.id is not None
    cancelled = await app.cancel(info.id)
    assert cancelled.status is Status.CANCELLED
    assert cancelled.finished_at is not None
    assert (await app.cancel(str(info.id))).status is Status.CANCELLED
    with pytest.raises(UnknownTaskError, match="no task with id"):
        await app.cancel(uuid4())


async def test_cancel_a_running_task_leaves_it_to_its_worker(app: App, store: Store) -> None:
    info = await app.submit("add", 1)
    [claimed] = await store.claim("w", None, 1, 30.0)
    assert (await app.cancel(claimed.id)).status is Status.RUNNING
    assert await store.cancel_requested([claimed.id]) == {claimed.id}
    assert info.id == claimed.id


async def test_retry_runs_a_failed_task_again_only(app: App, store: Store) -> None:
    info = await app.submit("add", 1)
    assert info.id is not None
    with pytest.raises(InvalidTransitionError):
        await app.retry(info.id)
    await run(store, info.id, Status.FAILED, error="boom")
    retried = await app.retry(info.id)
    assert (retried.status, retried.attempts, retried.error) == (Status.PENDING, 0, None)
    await run(store, info.id, Status.COMPLETED, result="1")
    with pytest.raises(InvalidTransitionError):
        await app.retry(info.id)
    with pytest.raises(UnknownTaskError):
        await app.retry(uuid4())


async def test_retry_refuses_when_the_name_is_taken_again(app: App) -> None:
    first = await app.submit("add", 1, name="job")
    assert first.id is not None
    await app.cancel(first.id)
    await app.submit("add", 2, name="job")
    with pytest.raises(DuplicateNameError):
        await app.retry(first.id)


# -- wait ---------------------------------------------------------------------------------


async def test_wait_returns_the_result_once_completed(app: App, store: Store) -> None:
    info = await app.submit("add", 1, 2)
    assert info.id is not None
    waiter = asyncio.create_task(app.wait(info.id, timeout=10))
    await run(store, info.id, Status.COMPLETED, result='{"sum": 3}')
    assert await asyncio.wait_for(waiter, 5) == {"sum": 3}
    assert await app.wait(str(info.id)) == {"sum": 3}


async def test_wait_raises_the_stored_error_of_a_failed_task(app: App, store: Store) -> None:
    info = await app.submit("add", 1)
    assert info.id is not None
    waiter = asyncio.create_task(app.wait(info.id, timeout=10))
    await run(store, info.id, Status.FAILED, error="ValueError: bad input")
    with pytest.raises(TaskFailedError, match=r"^ValueError: bad input$"):
        await asyncio.wait_for(waiter, 5)


async def test_wait_raises_when_the_task_is_cancelled(app: App) -> None:
    info = await app.submit("add", 1)
    assert info.id is not None
    waiter = asyncio.create_task(app.wait(info.id))
    await app.cancel(info.id)
    with pytest.raises(TaskCancelledError, match="was cancelled"):
        await asyncio.wait_for(waiter, 5)


async def test_wait_times_out_and_knows_unknown_ids(app: App) -> None:
    info = await app.submit("add", 1)
    assert info.id is not None
    with pytest.raises(TaskTimeoutError, match=r"did not finish within 0\.05 s"):
        await asyncio.wait_for(app.wait(info.id, timeout=0.05), 5)
    with pytest.raises(TimeoutError):
        await app.wait(info.id, timeout=0)
    with pytest.raises(UnknownTaskError):
        await app.wait(uuid4(), timeout=1)
    with pytest.raises(InvalidArgumentsError, match="timeout must be"):
        await app.wait(info.id, timeout=-1)


# -- info ---------------------------------------------------------------------------------


def _record(**changes: Any) -> TaskRecord:
    base = TaskRecord(
        id=uuid4(),
        seq=1,
        task="add",
        args='{"a": 1}',
        name=None,
        priority=0,
        queue="default",
        status=Status.RUNNING,
        attempts=1,
        max_attempts=3,
        timeout=None,
        run_at=1_700_000_000.0,
        created_at=1_700_000_000.0,
        started_at=1_700_000_001.0,
    )
    return dataclasses.replace(base, **changes)


def test_info_decodes_json_and_timestamps() -> None:
    info = task_info(
        _record(progress='{"done": 3, "total": 10, "message": "copying"}', result="[1, 2]")
    )
    assert info.args == {"a": 1}
    assert info.result == [1, 2]
    assert info.progress == Progress(done=3, total=10, message="copying")
    assert info.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert info.started_at == datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)
    assert info.finished_at is None


@pytest.mark.parametrize(
    "changes",
    [
        {"args": "{not json", "result": "nope", "progress": "{"},
        {"args": "[1, 2]", "result": "\x00", "progress": "[1]"},
        {"args": "", "progress": '{"done": "lots"}'},
        {"args": "1" * 5000 + "x", "progress": '{"total": 3}'},
    ],
)
def test_info_survives_corrupt_rows(changes: dict[str, Any]) -> None:
    info = task_info(_record(**changes))
    assert (info.args, info.result, info.progress) == (None, None, None)
    assert info.status is Status.RUNNING


def test_info_keeps_what_is_readable_in_progress() -> None:
    info = task_info(_record(progress='{"done": 1, "total": "x", "message": 5}'))
    assert info.progress == Progress(done=1.0)


# -- registry -----------------------------------------------------------------------------


def test_task_names_are_unique_per_app() -> None:
    app = App(MemoryStore())
    register(app)
    with pytest.raises(ConfigurationError, match="'add' is already registered"):

        @app.task(name="add")
        def other() -> None:
            pass

    assert app.get_task("add").fn.__name__ == "add"
    with pytest.raises(TypeError):
        app.tasks["x"] = app.get_task("add")  # type: ignore[index]


def test_get_task_names_the_known_ones() -> None:
    app = App(MemoryStore())
    with pytest.raises(UnknownTaskError, match="unknown task 'x'; known: none registered"):
        app.get_task("x")
    send, _ = register(app)
    with pytest.raises(UnknownTaskError, match="unknown task 'x'; known: add, send"):
        app.get_task("x")
    assert app.get_task("send") is send
    assert app.get_task(send) is send  # a task function stands for itself


def test_one_default_task_from_the_decorator() -> None:
    app = App(MemoryStore())

    @app.task(name="main", default=True)
    def main() -> None:
        pass

    assert app.default_task == "main"
    assert app.get_task() is main
    with pytest.raises(ConfigurationError, match="default task is already 'main'"):

        @app.task(name="other", default=True)
        def other() -> None:
            pass

    assert "other" not in app.tasks


def test_task_types_describe_each_task_function() -> None:
    app = App(MemoryStore(), default_task="add")
    register(app)
    types = app.task_types()
    assert [t["name"] for t in types] == ["add", "send"]
    add = types[0]
    assert {k: v for k, v in add.items() if k != "args"} == {
        "name": "add",
        "description": None,
        "queue": "default",
        "priority": 0,
        "max_attempts": 3,
        "timeout": None,
        "default": True,
    }
    assert add["args"]["properties"]["b"]["default"] == 0
    assert add["args"]["required"] == ["a"]


# -- store selection and lifecycle --------------------------------------------------------


def test_the_store_url_comes_from_the_argument_env_or_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TASKWARD_DB", raising=False)
    assert App().url == DEFAULT_STORE_URL == "sqlite:///taskward.db"
    monkeypatch.setenv("TASKWARD_DB", f"sqlite:///{tmp_path}/env.db")
    assert App().url == f"sqlite:///{tmp_path}/env.db"
    assert App("memory://").url == "memory://"
    store = MemoryStore()
    assert App(store).url == "memory://"
    with pytest.raises(ConfigurationError, match="store must be a URL or a Store"):
        App(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="empty"):
        App(" ")


async def test_the_env_store_is_used_and_durable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKWARD_DB", f"sqlite:///{tmp_path}/env.db")
    async with App() as app:
        register(app)
        info = await app.submit("add", 1)
    assert (tmp_path / "env.db").exists()
    async with App() as again:
        assert info.id is not None
        found = await again.get(info.id)
    assert found is not None
    assert found.args == {"a": 1, "b": 0}


async def test_a_bad_url_fails_at_first_use_with_a_clear_error() -> None:
    app = App("mysql://x")
    with pytest.raises(ConfigurationError, match="unknown store URL scheme 'mysql'"):
        await app.get(uuid4())


async def test_a_closed_app_refuses_work_but_a_given_store_stays_open() -> None:
    store = MemoryStore()
    app = App(store)
    register(app)
    await app.submit("add", 1)
    await app.close()
    await app.close()
    with pytest.raises(ClosedError):
        await app.submit("add", 2)
    with pytest.raises(ClosedError):
        _ = app.sync
    assert len((await store.list()).items) == 1


async def test_an_app_outlives_the_event_loop_it_first_ran_in(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path}/loops.db")
    register(app)

    def in_a_new_loop() -> UUID | None:
        return asyncio.run(app.submit("add", 1)).id

    first = await asyncio.to_thread(in_a_new_loop)  # that loop is closed by now
    assert first is not None
    assert await app.get(first) is not None
    await app.close()


async def test_with_store_is_the_same_app_on_another_store(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path}/home.db", default_task="add")
    send, add = register(app)
    app.schedule("often", add, every=60, args={"a": 1})
    other = app.with_store(f"sqlite:///{tmp_path}/other.db")
    assert other.url == f"sqlite:///{tmp_path}/other.db"
    assert dict(other.tasks) == {"send": send, "add": add}  # the same task functions
    assert dict(other.schedules) == dict(app.schedules)
    assert other.default_task == "add"
    info = await other.submit_many([other.prepare(None, {"a": 2})])
    assert info[0].id is not None
    assert info[0].task == "add"
    assert await other.get(info[0].id) is not None
    assert await app.get(info[0].id) is None  # not on the first app's store

    @other.task(name="late")
    def late() -> None:
        pass

    assert "late" not in app.tasks  # later registrations stay each app's own
    await other.close()
    await app.close()


async def test_with_store_takes_a_store_instance() -> None:
    app = memory_app()
    register(app)
    store = MemoryStore()
    other = app.with_store(store)
    info = await other.submit("add", 1)
    assert info.id is not None
    assert await store.get(info.id) is not None
    await other.close()
    await app.close()


def test_a_portal_runs_coroutines_for_plain_code(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path}/portal.db")
    _, add = register(app)
    portal = app.portal()
    seen: list[App] = []

    async def submit(target: App) -> UUID | None:
        seen.append(target)
        return (await target.submit("add", 1)).id

    task_id = portal.call(submit)
    assert task_id is not None
    # A database URL: the portal drives a twin on a store instance of its own.
    assert seen[0] is not app
    assert seen[0].tasks["add"] is add
    assert portal.call(lambda target: target.get(task_id)) is not None
    portal.close()
    assert portal.closed
    with pytest.raises(ClosedError):
        portal.call(lambda target: target.get(task_id))

    async def read_then_close() -> bool:
        async with app:  # the app's own store, bound to this loop: it sees the task
            return await app.get(task_id) is not None

    assert asyncio.run(read_then_close())


async def test_a_portal_shares_a_memory_store_and_refuses_a_running_loop() -> None:
    app = memory_app()
    register(app)
    portal = app.portal()
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        portal.call(lambda target: target.get(uuid4()))
    seen: list[App] = []

    async def submit(target: App) -> UUID | None:
        seen.append(target)
        return (await target.submit("add", 1)).id

    task_id = await asyncio.to_thread(portal.call, submit)
    assert seen == [app]
    assert task_id is not None
    assert await app.get(task_id) is not None
    await asyncio.to_thread(portal.close)
    await app.close()


# -- the sync facade ----------------------------------------------------------------------


def test_sync_facade_from_plain_code_on_sqlite(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path}/sync.db")
    send, _ = register(app)
    try:
        info = send.submit_sync("a@b.c", user_id=7, name="w")
        assert info.status is Status.PENDING
        assert info.id is not None
        assert app.sync.get(info.id) == info
        assert app.sync.get_by_name("w") == info
        other = app.sync.submit("add", 1, 2, priority=4)
        assert (other.priority, other.args) == (4, {"a": 1, "b": 2})
        third = app.sync.submit_args("add", {"a": 5})
        assert [i.id for i in app.sync.list()[0]] == [third.id, other.id, info.id]
        assert app.sync.counts().by_status()[Status.PENDING] == 3
        assert app.sync.cancel(info.id).status is Status.CANCELLED
        with pytest.raises(TaskCancelledError):
            app.sync.wait(info.id, timeout=5)
        with pytest.raises(TaskTimeoutError):
            app.sync.wait(str(other.id), timeout=0.01)
        assert app.sync.retry(info.id).status is Status.PENDING
        with pytest.raises(InvalidArgumentsError, match="user_id"):
            send.submit_sync("a@b.c")
        with pytest.raises(UnknownTaskError):
            app.sync.cancel(uuid4())
    finally:
        app.sync.close()


def test_sync_facade_shares_a_memory_store_with_later_async_use() -> None:
    app = memory_app()
    _, add = register(app)
    info = add.submit_sync(1)
    app.sync.close()
    assert info.id is not None
    found = asyncio.run(app.get(info.id))
    assert found == info


async def test_sync_facade_from_a_thread_while_the_loop_runs(app: App) -> None:
    add = app.get_task("add")
    info = await asyncio.to_thread(add.submit_sync, 1, 2)
    assert info.id is not None
    assert await app.get(info.id) == info
    found = await asyncio.to_thread(app.sync.get, info.id)
    assert found == info
    facade = app.sync
    await app.close()
    assert facade.closed
    assert facade._portal._thread is not None
    assert not facade._portal._thread.is_alive()


class LoopRecordingStore(MemoryStore):
    """A memory store that notes which event loop each read ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def get(self, task_id: UUID) -> TaskRecord | None:
        self.loops.append(asyncio.get_running_loop())
        return await super().get(task_id)


async def test_a_shared_store_is_only_used_on_the_apps_home_loop() -> None:
    store = LoopRecordingStore()
    app = App(store)
    await app.open()
    await asyncio.to_thread(app.sync.get, uuid4())
    await asyncio.to_thread(lambda: asyncio.run(app.get(uuid4())))
    assert store.loops == [asyncio.get_running_loop()] * 2
    await app.close()


async def test_wait_does_not_spin_on_a_store_that_returns_at_once() -> None:
    store = LoopRecordingStore()
    app = App(store)
    register(app)
    info = await app.submit("add", 1)
    assert info.id is not None
    await store.close()  # its wait_for_change now returns at once; get still answers
    with pytest.raises(TaskTimeoutError):
        await app.wait(info.id, timeout=0.2)
    assert 1 < len(store.loops) <= 41  # at most one read per 5 ms


async def test_sync_facade_refuses_to_block_a_running_loop(app: App) -> None:
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        app.sync.get(uuid4())
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        app.get_task("add").submit_sync(1)


def test_sync_facade_can_be_reopened_after_close() -> None:
    app = memory_app()
    _, add = register(app)
    first = app.sync
    add.submit_sync(1)
    first.close()
    second = app.sync
    assert second is not first
    assert len(second.list()[0]) == 1
    second.close()
    for facade in (first, second):
        assert facade._portal._thread is not None
        assert not facade._portal._thread.is_alive()


# -- testing helpers ----------------------------------------------------------------------


async def test_fake_clock_drives_when_tasks_are_due() -> None:
    clock = FakeClock(1000.0)
    store = MemoryStore(clock=clock)
    app = App(store)
    _, add = register(app)
    info = await add.submit(1, delay=60)
    assert info.run_at == datetime.fromtimestamp(1060.0, UTC)
    assert await store.claim("w", None, 1, 30.0) == []
    assert clock.advance(60) == 1060.0
    [row] = await store.claim("w", None, 1, 30.0)
    assert row.id == info.id
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    clock.set(5.0)
    assert clock() == 5.0
