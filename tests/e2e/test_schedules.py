"""Durable schedules across real processes, on SQLite and on PostgreSQL (DESIGN.md §4:
"periodic tasks fire once per tick across any number of workers").

Three ``taskward worker scheduleapp:app`` processes share one store and one 1-second
schedule: every tick becomes one task, run once. Killing the process that leads maintenance
(SIGKILL) hands the role to another, which fires the next ticks, still once each. The CLI's
``taskward schedules`` commands are exercised on the same store.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from e2e_helpers import APPS, Cluster, WorkerProc

from taskward.app import App
from taskward.models import Status
from waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

APP = "scheduleapp:app"
LEASE = "5"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sched_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "postgres":
        db = request.getfixturevalue("pg_url")
    else:
        db = f"sqlite:///{tmp_path / 'tasks.db'}"
    c = Cluster(db=db, ledger=tmp_path / "ledger", tmp=tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


def tick_times(names: list[str]) -> list[float]:
    """The tick of each ``beat@<UTC ISO time>`` task name, in order."""
    return sorted(datetime.fromisoformat(n.removeprefix("beat@")).timestamp() for n in names)


async def beat_tasks(app: App) -> list[tuple[str, str, Status]]:
    """(id, name, status) of every tick task."""
    items, _ = await app.list(task="tick", limit=1000)
    return [(str(i.id), i.name or "", i.status) for i in items]


async def completed_ticks(app: App) -> int:
    return sum(1 for _, _, status in await beat_tasks(app) if status is Status.COMPLETED)


def stop(workers: list[WorkerProc]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.signal(signal.SIGTERM)
    for w in workers:
        assert w.wait(20) in (0, -signal.SIGKILL), w.output()


async def check_each_tick_ran_once(app: App, cluster: Cluster) -> list[float]:
    """Every tick task has a unique name, and each completed one's body ran exactly once."""
    tasks = await beat_tasks(app)
    names = [name for _, name, _ in tasks]
    assert len(names) == len(set(names)), collections.Counter(names).most_common(3)
    runs = collections.Counter(key for key, _ in cluster.ledger_lines())
    assert all(n == 1 for n in runs.values()), runs.most_common(3)
    for task_id, name, status in tasks:
        if status is Status.COMPLETED:
            assert runs[task_id] == 1, name
    return tick_times(names)


async def test_three_workers_fire_each_tick_of_a_one_second_schedule_once(
    sched_cluster: Cluster,
) -> None:
    workers = [sched_cluster.start_worker("--lease", LEASE, app=APP) for _ in range(3)]
    app = App(sched_cluster.db)
    try:
        await eventually(lambda: completed_ticks(app), timeout=20)
        start = time.monotonic()
        await eventually(lambda: _at_least(app, 5), timeout=20)
        assert time.monotonic() - start < 15
        stop(workers)
        ticks = await check_each_tick_ran_once(app, sched_cluster)
        # Consecutive seconds: no tick skipped, none doubled.
        assert ticks == [ticks[0] + i for i in range(len(ticks))], ticks
    finally:
        await app.close()


async def _at_least(app: App, n: int) -> bool:
    return await completed_ticks(app) >= n


def leader(workers: list[WorkerProc]) -> WorkerProc:
    """The worker that leads maintenance (PostgreSQL logs it; on SQLite every process does)."""
    for w in workers:
        if "now leads maintenance" in w.output():
            return w
    return workers[0]


async def test_killing_the_leader_hands_the_next_ticks_to_another_process(
    sched_cluster: Cluster,
) -> None:
    workers = [sched_cluster.start_worker("--lease", LEASE, app=APP) for _ in range(3)]
    app = App(sched_cluster.db)
    try:
        await eventually(lambda: _at_least(app, 2), timeout=20)
        if sched_cluster.db.startswith("postgresql"):
            await eventually(lambda: any("now leads" in w.output() for w in workers), timeout=10)
        victim = leader(workers)
        victim.proc.kill()
        victim.proc.wait(10)
        killed_at = time.time()
        # Another process fires a later tick within a lease.
        await eventually(
            lambda: _ticked_after(app, killed_at + 1), timeout=float(LEASE) + 3, interval=0.1
        )
        if sched_cluster.db.startswith("postgresql"):
            assert any("now leads maintenance" in w.output() for w in workers if w is not victim)
        await eventually(lambda: _ticked_after(app, killed_at + 3), timeout=10)
        stop([w for w in workers if w is not victim])
        ticks = await check_each_tick_ran_once(app, sched_cluster)
        assert max(ticks) > killed_at + 3
    finally:
        await app.close()


async def _ticked_after(app: App, when: float) -> bool:
    names = [name for _, name, _ in await beat_tasks(app)]
    return any(t > when for t in tick_times(names))


def taskward(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}
    env.update(TASKWARD_DB=cluster.db, TASKWARD_APP=APP, PYTHONPATH=str(APPS))
    return subprocess.run(
        [sys.executable, "-m", "taskward", *args],
        env=env,
        cwd=cluster.tmp,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("sched_cluster", ["sqlite"], indirect=True)
def test_the_schedules_commands(sched_cluster: Cluster) -> None:
    add = taskward(
        sched_cluster,
        "schedules",
        "add",
        "nightly",
        "tick",
        "--cron",
        "30 2 * * *",
        "--timezone",
        "Europe/Paris",
        "--args",
        '{"label": "n"}',
        "--json",
    )
    assert add.returncode == 0, add.stderr
    [made] = json.loads(add.stdout)
    assert (made["name"], made["cron"], made["timezone"], made["paused"]) == (
        "nightly",
        "30 2 * * *",
        "Europe/Paris",
        False,
    )
    assert made["next_tick"] is not None
    made_args = json.dumps(made["args"])

    again = taskward(
        sched_cluster, "schedules", "add", "nightly", "tick", "--every", "60", "--args", made_args
    )
    assert again.returncode == 1
    assert "a schedule named 'nightly' already exists" in again.stderr

    bad = [
        (["--cron", "0 25 * * *"], "invalid cron expression '0 25 * * *'"),
        (["--every", "0"], "every must be a positive number"),
        (["--every", "60", "--args", "{}"], "label: missing required argument"),
    ]
    for options, message in bad:
        done = taskward(sched_cluster, "schedules", "add", "x", "tick", *options)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
    unknown = taskward(sched_cluster, "schedules", "add", "x", "nope", "--every", "5")
    assert unknown.returncode == 2
    assert "unknown task 'nope'" in unknown.stderr

    paused = taskward(sched_cluster, "schedules", "pause", "nightly", "--json")
    assert json.loads(paused.stdout)[0]["paused"] is True
    table = taskward(sched_cluster, "schedules", "list")
    assert "nightly" in table.stdout
    assert "paused" in table.stdout
    resumed = taskward(sched_cluster, "schedules", "resume", "nightly", "--json")
    assert json.loads(resumed.stdout)[0]["paused"] is False

    assert taskward(sched_cluster, "schedules", "remove", "nightly").returncode == 0
    gone = taskward(sched_cluster, "schedules", "remove", "nightly")
    assert gone.returncode == 1
    assert "no schedule named 'nightly'" in gone.stderr
    assert json.loads(taskward(sched_cluster, "schedules", "list", "--json").stdout) == []
