"""Tasks with ``executor="process"`` in a real worker: child processes, real signals.

What the pool promises: a timeout, a cancel or a graceful stop really stops a CPU-bound run
(its child is gone); a child that crashes fails only its own attempt; children are recycled
by task count and by memory; progress, cancellation checks and logs work from a child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from uuid import UUID

import pytest
from e2e_helpers import APPS, Cluster, WorkerProc, all_registered, new_task

from taskward.app import App
from taskward.models import Status, TaskInfo
from waiting import eventually, get, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

APP = "procapp:app"


def gone(pid: int) -> bool:
    """Whether no process ``pid`` exists (the worker reaps its children)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def submit(app: App, task: str, args: dict[str, object], **options: object) -> UUID:
    [info] = await app.submit_many([new_task(task, args, **options)])
    assert info.id is not None
    return info.id


async def started(cluster: Cluster, key: str) -> int:
    """The pid of the child that started ``key``'s body, once it has."""

    def child() -> int | None:
        return next((pid for k, pid in cluster.ledger_lines("start") if k == key), None)

    return await eventually(child, timeout=30, interval=0.02)


async def finished(app: App, task_id: UUID, timeout: float = 30) -> TaskInfo:
    """The task once it has ended, whichever way."""

    async def ended() -> TaskInfo | None:
        info = await get(app, task_id)
        return info if info.status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED) else None

    return await eventually(ended, timeout=timeout, interval=0.02)


async def start(cluster: Cluster, app: App, *args: str, spec: str = APP) -> WorkerProc:
    worker = cluster.start_worker(*args, app=spec)
    await all_registered(app, [worker])
    return worker


async def test_a_timeout_stops_a_busy_loop_and_its_child(cluster: Cluster, store_app: App) -> None:
    worker = await start(cluster, store_app, "--processes", "1")
    task_id = await submit(
        store_app, "spin", {"key": "t", "seconds": 60}, timeout=1.0, max_attempts=1
    )
    child = await started(cluster, "t")
    assert child != worker.pid
    info = await finished(store_app, task_id, timeout=10)
    assert info.status is Status.FAILED
    assert info.error == "timed out after 1s"
    assert info.started_at is not None
    assert info.finished_at is not None
    assert (info.finished_at - info.started_at).total_seconds() < 2.0
    await eventually(lambda: gone(child), timeout=2, interval=0.02)
    assert cluster.ledger_lines("done") == []


async def test_cancel_stops_a_running_cpu_bound_task_within_a_second(
    cluster: Cluster, store_app: App
) -> None:
    await start(cluster, store_app, "--processes", "2")
    task_id = await submit(store_app, "spin", {"key": "c", "seconds": 60})
    child = await started(cluster, "c")
    asked = time.monotonic()
    await store_app.cancel(task_id)
    info = await finished(store_app, task_id, timeout=5)
    assert time.monotonic() - asked < 1.0
    assert info.status is Status.CANCELLED
    await eventually(lambda: gone(child), timeout=2, interval=0.02)


async def test_a_task_that_checks_cancelled_returns_and_keeps_its_child(
    cluster: Cluster, store_app: App
) -> None:
    await start(cluster, store_app, "--processes", "1")
    task_id = await submit(store_app, "steps", {"key": "s", "count": 600, "pause": 0.05})
    child = await started(cluster, "s")
    await store_app.cancel(task_id)
    assert (await finished(store_app, task_id)).status is Status.CANCELLED
    assert cluster.ledger_lines("cooperated") == [("s", child)]
    # It returned when told: no signal, and the same child runs the next task.
    after = await finished(store_app, await submit(store_app, "pid", {}))
    assert after.result == child


async def test_sigterm_past_the_grace_releases_the_task_and_ends_its_child(
    cluster: Cluster, store_app: App
) -> None:
    worker = await start(cluster, store_app, "--processes", "1", "--grace", "0.5")
    task_id = await submit(store_app, "spin", {"key": "g", "seconds": 60}, max_attempts=3)
    child = await started(cluster, "g")
    await wait_status(store_app, task_id, Status.RUNNING, timeout=5)
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.output()
    info = await get(store_app, task_id)
    assert info.status is Status.PENDING
    assert info.attempts == 0  # a release gives the attempt back
    assert gone(child)


async def test_a_child_that_dies_fails_only_its_own_attempt(
    cluster: Cluster, store_app: App
) -> None:
    worker = await start(cluster, store_app, "--processes", "3")
    beside = await submit(store_app, "spin", {"key": "beside", "seconds": 2.0})
    await started(cluster, "beside")
    exited = await submit(store_app, "crash", {"key": "exit", "how": "exit"}, max_attempts=2)
    segv = await submit(store_app, "crash", {"key": "segv", "how": "segv"}, max_attempts=1)
    exit_info = await finished(store_app, exited)
    segv_info = await finished(store_app, segv)
    assert exit_info.status is Status.FAILED
    assert exit_info.error == "the task's process died: exited with code 1"
    assert exit_info.attempts == 2  # retried by the task's policy, then failed
    assert segv_info.status is Status.FAILED
    assert segv_info.error == "the task's process died: killed by signal 11 (SIGSEGV)"
    beside_info = await finished(store_app, beside)
    assert beside_info.status is Status.COMPLETED
    assert worker.proc.poll() is None  # the worker goes on
    ok = await finished(store_app, await submit(store_app, "pid", {}))
    assert ok.status is Status.COMPLETED


async def test_children_are_recycled_after_max_tasks(cluster: Cluster, store_app: App) -> None:
    await start(cluster, store_app, "--processes", "1", "--max-tasks-per-child", "2")
    pids = []
    for _ in range(5):
        info = await finished(store_app, await submit(store_app, "pid", {}))
        assert info.status is Status.COMPLETED
        pids.append(info.result)
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3


async def test_a_child_past_the_memory_limit_is_replaced(cluster: Cluster, store_app: App) -> None:
    worker = await start(cluster, store_app, "--processes", "1", "--max-memory-per-child", "100")
    small = await finished(store_app, await submit(store_app, "grow", {"megabytes": 1}))
    again = await finished(store_app, await submit(store_app, "pid", {}))
    assert small.result == again.result  # under the limit: kept
    big = await finished(store_app, await submit(store_app, "grow", {"megabytes": 200}))
    assert big.result == again.result
    after = await finished(store_app, await submit(store_app, "pid", {}))
    assert after.status is Status.COMPLETED
    assert after.result != big.result
    assert "--max-memory-per-child" in worker.output()
    assert isinstance(big.result, int)
    await eventually(lambda: gone(big.result), timeout=5, interval=0.05)


async def test_progress_reported_in_a_child_reaches_the_store(
    cluster: Cluster, store_app: App
) -> None:
    await start(cluster, store_app, "--processes", "1")
    task_id = await submit(store_app, "steps", {"key": "p", "count": 40, "pause": 0.1})

    async def moved() -> float | None:
        info = await get(store_app, task_id)
        done = None if info.progress is None else info.progress.done
        return done if done is not None and done >= 3 else None

    assert await eventually(moved, timeout=20) >= 3
    info = await finished(store_app, task_id)
    assert info.status is Status.COMPLETED
    assert info.result == 40


async def test_logs_async_functions_and_errors_in_children(
    cluster: Cluster, store_app: App
) -> None:
    worker = await start(cluster, store_app, "--processes", "2")
    chatty = await submit(store_app, "chatty", {"word": "hello-from-child"})
    assert (await finished(store_app, chatty)).result == "hello-from-child"
    log = worker.output()
    line = next(line for line in log.splitlines() if "hello-from-child" in line)
    assert str(chatty) in line
    assert "printed by the child" in log

    async_info = await finished(store_app, await submit(store_app, "async_pid", {"delay": 0.01}))
    assert async_info.status is Status.COMPLETED
    assert async_info.result not in (None, worker.pid)

    secret = "hunter2-very-secret"
    failed = await finished(
        store_app, await submit(store_app, "failing", {"password": secret}, max_attempts=2)
    )
    assert failed.status is Status.FAILED
    assert failed.attempts == 2
    assert failed.error == "ValueError: login refused for ***"
    assert failed.traceback is not None
    assert "ValueError" in failed.traceback
    assert secret not in failed.traceback


async def test_a_module_the_child_cannot_import_fails_clearly(
    cluster: Cluster, store_app: App
) -> None:
    await start(cluster, store_app, "--processes", "1", spec="parentonly:app")
    info = await finished(store_app, await submit(store_app, "parentonly", {}))
    assert info.status is Status.FAILED
    assert info.attempts == 1  # importing again will not help: no retry
    assert info.error is not None
    assert info.error.startswith("cannot import parentonly.only_in_the_worker in the child")
    assert "parentonly cannot be imported in a child process" in info.error


@pytest.mark.parametrize(
    ("command", "option", "message"),
    [
        ("worker", ["--processes", "0"], "Invalid value for '--processes'"),
        ("worker", ["--max-tasks-per-child", "0"], "Invalid value for '--max-tasks-per-child'"),
        ("worker", ["--max-memory-per-child", "0"], "Invalid value for '--max-memory-per-child'"),
        ("serve", ["--processes", "0"], "Invalid value for '--processes'"),
    ],
)
def test_bad_process_options_are_usage_errors(
    cluster: Cluster, command: str, option: list[str], message: str
) -> None:
    env = {**os.environ, "TASKWARD_DB": cluster.db, "PYTHONPATH": str(APPS)}
    proc = subprocess.run(
        [sys.executable, "-m", "taskward", command, APP, *option],
        env=env,
        cwd=cluster.tmp,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
