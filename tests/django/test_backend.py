"""The backend in the Django process: settings, enqueue checks, results, async methods.

No worker runs here: what a worker does is in test_worker.py.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_helpers import tasks_setting
from fastapi import FastAPI
from shop import tasks

from taskward.api import TaskwardAPI, create_api
from taskward.app import App
from taskward.contrib.django import TaskwardBackend
from taskward.contrib.django.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
)
from taskward.errors import InvalidArgumentsError, TaskCancelledError
from taskward.models import Status


def stored(url: str) -> list[Any]:
    """Every task in the store, as taskward sees it."""
    app = App(url)
    try:
        return app.sync.list(limit=1000)[0]
    finally:
        app.sync.close()


def test_capabilities(backend: TaskwardBackend) -> None:
    assert backend.supports_defer
    assert backend.supports_async_task
    assert backend.supports_get_result
    assert backend.supports_priority


def test_enqueue_stores_a_ready_task_with_its_arguments(
    backend: TaskwardBackend, store_url: str
) -> None:
    result = tasks.greet.using(priority=7).enqueue("ada", greeting="hi")
    assert result.status == TaskResultStatus.READY
    assert result.args == ["ada"]
    assert result.kwargs == {"greeting": "hi"}
    assert result.backend == "default"
    assert result.task.priority == 7
    assert result.task.queue_name == "emails"
    assert result.enqueued_at is not None
    assert not result.is_finished
    (row,) = stored(store_url)
    assert str(row.id) == result.id
    assert row.task == "shop.tasks.greet"
    assert row.args == {"args": ["ada"], "kwargs": {"greeting": "hi"}}
    assert row.priority == -7  # taskward runs lower first
    assert row.queue == "emails"
    assert row.max_attempts == 1
    again = backend.get_result(result.id)
    assert again.status == TaskResultStatus.READY
    assert again.task.func is tasks.greet.func
    assert again.task.priority == 7
    assert again.args == ["ada"]


def test_run_after_is_the_due_time(backend: TaskwardBackend, store_url: str) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    result = tasks.add.using(run_after=when).enqueue(1, 2)
    (row,) = stored(store_url)
    assert row.run_at == when
    assert backend.get_result(result.id).task.run_after == when


def test_a_task_cancelled_through_taskward_is_failed(backend: TaskwardBackend) -> None:
    result = tasks.add.enqueue(1, 2)
    backend.app.sync.cancel(result.id)  # Pending: cancelled at once
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == "taskward.errors.TaskCancelledError"
    assert error.exception_class is TaskCancelledError
    assert result.finished_at is not None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        ((1,), {}, InvalidArgumentsError, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, InvalidArgumentsError, "too many positional arguments"),
        ((1,), {"b": 2, "c": 3}, InvalidArgumentsError, "unexpected keyword argument 'c'"),
        ((1, datetime.now(UTC)), {}, TypeError, "args[1] is a datetime"),
        ((1, math.nan), {}, ValueError, "args[1] is nan"),
        ((1,), {"b": {3: "x"}}, TypeError, "JSON object keys are strings"),
    ],
)
def test_bad_arguments_are_refused_in_the_caller_and_store_nothing(
    backend: TaskwardBackend,
    store_url: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    words: str,
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        tasks.add.enqueue(*args, **kwargs)
    assert stored(store_url) == []


def test_a_task_its_module_path_does_not_find_is_refused(backend: TaskwardBackend) -> None:
    with pytest.raises(InvalidTask, match=r"shop\.tasks\._unreachable .*not a Django task"):
        tasks.hidden.enqueue(1)


def test_a_queue_the_backend_does_not_serve_is_refused(backend: TaskwardBackend) -> None:
    with pytest.raises(InvalidTask, match="Queue 'reports' is not valid"):
        tasks.add.using(queue_name="reports").enqueue(1, 2)


@pytest.mark.parametrize("result_id", ["not-a-uuid", "0190c1de-0000-7000-8000-000000000000"])
def test_an_unknown_result_id_does_not_exist(backend: TaskwardBackend, result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist, match="no task result"):
        backend.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(result_id)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"DB": 5}, r"\['DB'\] must be a store URL"),
        ({"DB": "  "}, r"\['DB'\] must be a store URL"),
        ({"DB": "mysql://x/y"}, "unknown store URL scheme 'mysql'"),
        ({"DB": "sqlite://tasks.db"}, "a SQLite URL is"),
        ({"MAX_ATTEMPTS": 0}, r"\['MAX_ATTEMPTS'\] must be >= 1"),
        ({"MAX_ATTEMPTS": "3"}, r"\['MAX_ATTEMPTS'\] must be an int"),
        ({"MAX_ATTEMPTS": True}, r"\['MAX_ATTEMPTS'\] must be an int"),
        ({"DATABASE": "sqlite:///x.db"}, "unknown keys DATABASE; known: DB, MAX_ATTEMPTS"),
    ],
)
def test_bad_options_are_improperly_configured(options: dict[str, Any], words: str) -> None:
    with override_settings(TASKS=tasks_setting("sqlite:///unused.db", **options)):
        with pytest.raises(ImproperlyConfigured, match=words):
            task_backends["default"]
        with pytest.raises(ImproperlyConfigured, match=words):
            tasks.add.enqueue(1, 2)


def test_options_must_be_a_dict() -> None:
    setting = {"default": {"BACKEND": "taskward.contrib.django.TaskwardBackend", "OPTIONS": []}}
    with override_settings(TASKS=setting), pytest.raises(ImproperlyConfigured, match="a dict"):
        task_backends["default"]


def test_max_attempts_is_stored(store_url: str) -> None:
    with override_settings(TASKS=tasks_setting(store_url, MAX_ATTEMPTS=4)):
        backend = task_backends["default"]
        assert isinstance(backend, TaskwardBackend)
        try:
            tasks.add.enqueue(1, 2)
        finally:
            backend.close()
    (row,) = stored(store_url)
    assert row.max_attempts == 4


async def test_blocking_calls_refuse_a_running_loop_and_the_async_ones_work(
    abackend: TaskwardBackend, store_url: str
) -> None:
    with pytest.raises(SynchronousOnlyOperation, match=r"await aenqueue\(\)"):
        tasks.add.enqueue(1, 2)
    with pytest.raises(SynchronousOnlyOperation, match=r"await aget_result\(\)"):
        abackend.get_result("0190c1de-0000-7000-8000-000000000000")
    result = await tasks.slow_double.aenqueue(21)
    assert result.status == TaskResultStatus.READY
    again = await tasks.slow_double.aget_result(result.id)
    assert again.args == [21]
    with pytest.raises(TaskResultDoesNotExist):
        await abackend.aget_result("0190c1de-0000-7000-8000-000000000000")
    rows = await asyncio.to_thread(stored, store_url)
    assert [(r.task, r.status) for r in rows] == [("shop.tasks.slow_double", Status.PENDING)]


def test_the_worker_command_needs_a_taskward_backend(backend: TaskwardBackend) -> None:
    with pytest.raises(CommandError, match="'immediate' is ImmediateBackend"):
        call_command("taskward_worker", backend="immediate")
    with pytest.raises(CommandError, match="'nope'"):
        call_command("taskward_worker", backend="nope")
    with pytest.raises(CommandError, match="--queues: queue 'a' is listed twice"):
        call_command("taskward_worker", queues="a,a")


def test_importing_the_package_loads_no_django() -> None:
    code = (
        "import sys, taskward, taskward.contrib, taskward.contrib.django\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'django_tasks'}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_the_http_api_submits_and_shows_the_backends_tasks(
    abackend: TaskwardBackend, store_url: str
) -> None:
    api = create_api(abackend.app, token="")
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        sent = await client.post(
            "/api/tasks",
            json={"task": "shop.tasks.add", "args": {"args": [1, 2], "kwargs": {}}},
        )
        assert sent.status_code == 202, sent.text
        task_id = sent.json()["task_id"]
        short = await client.post(
            "/api/tasks", json={"task": "shop.tasks.add", "args": {"args": [1], "kwargs": {}}}
        )
        assert short.status_code == 422
        assert "missing a required argument: 'b'" in short.text
        refused = await client.post("/api/tasks", json={"task": "os.getcwd", "args": {}})
        assert refused.status_code in (404, 422), refused.text
        assert "is not a Django task" in refused.text
    result = await abackend.aget_result(task_id)
    assert result.status == TaskResultStatus.READY
    assert result.task.func is tasks.add.func
    assert result.args == [1, 2]


async def test_the_api_mounted_beside_django_and_a_view_that_enqueues_on_commit(
    abackend: TaskwardBackend,
) -> None:
    host = FastAPI()
    TaskwardAPI(abackend.app, token="").install(host, prefix="/taskward")
    host.mount("/", get_asgi_application())
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        made = await client.get("/shop/add", params={"a": 2, "b": 5})  # Django's sync view
        assert made.status_code == 202, made.text
        task_id = made.json()["id"]
        shown = await client.get(f"/taskward/api/tasks/{task_id}")  # taskward's API
        assert shown.status_code == 200, shown.text
        assert shown.json()["task"] == "shop.tasks.add"
        assert shown.json()["args"] == {"args": [2, 5], "kwargs": {}}
        assert shown.json()["status"] == "Pending"
