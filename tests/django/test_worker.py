"""Django tasks run by real ``manage.py taskward_worker`` processes, stopped by SIGTERM
(exit 0), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django_helpers import PROJECT, DjangoWorker, wait_for
from shop import tasks

from taskward.app import App
from taskward.contrib.django import TaskwardBackend
from taskward.contrib.django.compat import TaskResult, TaskResultDoesNotExist, TaskResultStatus
from taskward.models import Status, TaskInfo, new_task_id
from taskward.stores.base import NewTask

pytestmark = pytest.mark.slow

StartWorker = Callable[..., DjangoWorker]


def finished(result: TaskResult[Any], timeout: float = 20.0) -> TaskResult[Any]:
    """``result`` refreshed until its task has finished."""

    def check() -> bool:
        result.refresh()
        return result.is_finished

    wait_for(check, timeout=timeout, what=f"task {result.task.module_path} to finish")
    return result


def stop(worker: DjangoWorker) -> None:
    """SIGTERM: the worker stops gracefully, with exit code 0."""
    code = worker.stop()
    assert code == 0, worker.output()


def test_a_task_runs_and_its_return_value_comes_back(
    backend: TaskwardBackend, worker: StartWorker
) -> None:
    summed = tasks.add.enqueue(2, 3)
    greeted = tasks.greet.enqueue("ada", greeting="hi")
    w = worker()
    assert finished(summed).status == TaskResultStatus.SUCCESSFUL, w.output()
    assert summed.return_value == 5
    assert summed.errors == []
    assert summed.attempts == 1
    assert summed.started_at is not None
    assert summed.finished_at is not None
    assert summed.enqueued_at is not None
    assert summed.enqueued_at <= summed.started_at
    assert finished(greeted).return_value == "hi ada"
    fresh = tasks.greet.get_result(greeted.id)
    assert fresh.status == TaskResultStatus.SUCCESSFUL
    assert fresh.return_value == "hi ada"
    stop(w)


def test_a_failing_task_fails_with_its_error(backend: TaskwardBackend, worker: StartWorker) -> None:
    result = tasks.fail.enqueue("the sky fell")
    w = worker()
    assert finished(result).status == TaskResultStatus.FAILED, w.output()
    (error,) = result.errors
    assert error.exception_class_path == "shop.tasks.BoomError"
    assert error.exception_class is tasks.BoomError
    assert "the sky fell" in error.traceback
    assert "Traceback (most recent call last)" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    stop(w)


def test_a_return_value_that_is_not_json_fails_the_task(
    backend: TaskwardBackend, worker: StartWorker
) -> None:
    result = tasks.today.enqueue()
    w = worker()
    assert finished(result).status == TaskResultStatus.FAILED, w.output()
    (error,) = result.errors
    assert error.exception_class_path == "builtins.TypeError"
    assert "the return value of shop.tasks.today is a date" in error.traceback
    stop(w)


def test_run_after_is_respected(backend: TaskwardBackend, worker: StartWorker) -> None:
    run_after = datetime.now(UTC) + timedelta(seconds=3)
    later = tasks.label.using(run_after=run_after).enqueue("later")
    now = tasks.label.enqueue("now")
    w = worker()
    assert finished(now).status == TaskResultStatus.SUCCESSFUL, w.output()
    if datetime.now(UTC) < run_after - timedelta(seconds=0.5):
        later.refresh()
        assert later.status == TaskResultStatus.READY
    assert finished(later).status == TaskResultStatus.SUCCESSFUL, w.output()
    assert later.started_at is not None
    assert later.started_at >= run_after
    stop(w)


def test_higher_priority_runs_first(backend: TaskwardBackend, worker: StartWorker) -> None:
    low = tasks.label.using(priority=-50).enqueue("low")
    middle = tasks.label.enqueue("middle")
    high = tasks.label.using(priority=100).enqueue("high")
    w = worker("--concurrency", "1")
    results = [finished(r) for r in (high, middle, low)]
    assert all(r.status == TaskResultStatus.SUCCESSFUL for r in results), w.output()
    # One slot: each starts after the one before (its end may be written a moment later).
    starts = [r.started_at for r in results if r.started_at is not None]
    assert len(starts) == 3
    assert starts == sorted(starts), [r.return_value for r in results]
    stop(w)


def test_an_async_task_and_a_task_with_context_run(
    backend: TaskwardBackend, worker: StartWorker
) -> None:
    doubled = tasks.slow_double.enqueue(21)
    context = tasks.whoami.enqueue("t1")
    w = worker()
    assert finished(doubled).return_value == 42, w.output()
    assert finished(context).return_value == {"id": context.id, "attempt": 1, "tag": "t1"}
    stop(w)


def test_paths_that_are_not_django_tasks_are_refused_and_never_called(
    backend: TaskwardBackend, worker: StartWorker, store_url: str, marker_dir: Path
) -> None:
    paths = [
        "shop.tasks.plain_helper",  # a plain function in a tasks module
        "os.getcwd",  # any importable callable
        "shop.tasks.BoomError",  # a class
        "shop.nowhere.task",  # no such module
        "not a path",
    ]
    app = App(store_url)
    try:
        rows = app.sync.submit_many(
            NewTask(id=new_task_id(), task=path, args='{"args": [], "kwargs": {}}')
            for path in paths
        )
        # A real task's row whose arguments no longer bind (its signature changed, say).
        (stale,) = app.sync.submit_many(
            [NewTask(id=new_task_id(), task="shop.tasks.add", args='{"args": [1], "kwargs": {}}')]
        )
        proof = tasks.write_marker.enqueue("real")
        w = worker()
        assert finished(proof).return_value == "real", w.output()

        def done() -> list[TaskInfo] | None:
            infos = [app.sync.get(str(row.id)) for row in rows]
            ended = [i for i in infos if i is not None and i.status is Status.FAILED]
            return ended if len(ended) == len(rows) else None

        ended = wait_for(done, what="the refused rows to fail")
        errors = {info.task: info.error or "" for info in ended}
        assert "is not a Django task (a function" in errors["shop.tasks.plain_helper"]
        assert "is not a Django task (a builtin_function_or_method" in errors["os.getcwd"]
        assert "is not a Django task (a type" in errors["shop.tasks.BoomError"]
        assert "cannot be imported" in errors["shop.nowhere.task"]
        assert "is not a dotted path" in errors["not a path"]
        assert all(e.startswith("RefusedTaskError: ") for e in errors.values()), errors
        assert [p.name for p in marker_dir.iterdir()] == ["real"]
        failed = finished(backend.get_result(str(stale.id)))
        assert failed.status == TaskResultStatus.FAILED
        (error,) = failed.errors
        assert error.exception_class_path == "taskward.errors.TaskFailedError"
        assert "missing a required argument: 'b'" in error.traceback
        with pytest.raises(TaskResultDoesNotExist, match="not a Django task of backend"):
            backend.get_result(str(rows[0].id))
        stop(w)
    finally:
        app.sync.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--concurrency", "0"], "invalid concurrency value: '0'"),
        (["--queues", ","], "--queues: ',' names no queue"),
        (["--grace", "-1"], "--grace must be >= 0 seconds"),
        (["--backend", "immediate"], "'immediate' is ImmediateBackend, not a TaskwardBackend"),
    ],
)
def test_bad_worker_options_exit_with_a_clear_error(
    tmp_path: Path, args: list[str], words: str
) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    env = {**os.environ, "TASKWARD_DB": url, "DJANGO_SETTINGS_MODULE": "testsite.settings"}
    done = subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), "taskward_worker", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert words in done.stderr, done.stderr
