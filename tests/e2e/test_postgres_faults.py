"""Many worker processes on one PostgreSQL database: real processes, signals and outages.

What DESIGN.md §4 promises, on PostgreSQL: workers sharing a database under load lose no
task and complete none twice; a SIGKILLed worker's tasks run again after its lease; killing
every database session mid-run only makes workers reconnect; a task submitted in a rolled
back transaction never runs; a cancel reaches a Running task in another process within about
a second; when the maintenance leader dies another process takes over.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
from e2e_helpers import APPS, Cluster, all_registered, infos, new_task

from taskward.app import App
from taskward.models import Status
from waiting import eventually, get

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(90)]


@pytest.fixture
def pg_cluster(tmp_path: Path, pg_url: str) -> Iterator[Cluster]:
    c = Cluster(db=pg_url, ledger=tmp_path / "ledger", tmp=tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


@pytest.fixture
async def pg_app(pg_url: str) -> AsyncIterator[App]:
    app = App(pg_url)
    await app.open()
    try:
        yield app
    finally:
        await app.close()


async def statuses(app: App, ids: list[UUID | None]) -> collections.Counter[Status]:
    return collections.Counter(i.status for i in await infos(app, ids))


async def terminate_sessions(url: str) -> int:
    """End every taskward session on this database, as an admin or a failover would."""
    conn = await asyncpg.connect(url)
    try:
        ended: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'taskward'"
        )
    finally:
        await conn.close()
    return ended


async def test_workers_sharing_a_database_run_each_task_once(
    pg_cluster: Cluster, pg_app: App
) -> None:
    n = 1500
    workers = [pg_cluster.start_worker("--concurrency", "8") for _ in range(3)]
    await all_registered(pg_app, workers)  # all up first: the load must be shareable
    ids = [
        i.id
        for i in await pg_app.submit_many([new_task("quick", {"key": f"q{i}"}) for i in range(n)])
    ]

    async def all_done() -> bool:
        return (await pg_app.counts()).by_status()[Status.COMPLETED] == n

    await eventually(all_done, timeout=45, interval=0.2)
    for w in workers:
        w.signal(signal.SIGTERM)
    for w in workers:
        assert w.wait(20) == 0
    done = collections.Counter(key for key, _ in pg_cluster.ledger_lines("done"))
    assert len(done) == n
    assert set(done.values()) == {1}  # none lost, none doubled
    assert len({pid for _, pid in pg_cluster.ledger_lines("done")}) >= 2  # the load was shared
    assert {i.attempts for i in await infos(pg_app, ids[:100])} == {1}


async def test_sigkill_mid_run_loses_no_task(pg_cluster: Cluster, pg_app: App) -> None:
    rows = [new_task("sleepy", {"key": f"k{i}", "seconds": 1.5}) for i in range(12)]
    ids = [info.id for info in await pg_app.submit_many(rows)]
    first = pg_cluster.start_worker("--concurrency", "20", "--lease", "1.5")

    async def all_running() -> bool:
        return (await statuses(pg_app, ids))[Status.RUNNING] == len(ids)

    await eventually(all_running, timeout=15)
    first.signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert pg_cluster.ledger_lines("done") == []
    pg_cluster.start_worker("--concurrency", "20", "--lease", "1.5")

    async def all_completed() -> bool:
        return (await statuses(pg_app, ids))[Status.COMPLETED] == len(ids)

    await eventually(all_completed, timeout=30)
    assert [i.attempts for i in await infos(pg_app, ids)] == [2] * len(ids)
    done = collections.Counter(key for key, _ in pg_cluster.ledger_lines("done"))
    assert done == {f"k{i}": 1 for i in range(len(ids))}


async def test_workers_reconnect_after_every_session_is_terminated(
    pg_cluster: Cluster, pg_app: App, pg_url: str
) -> None:
    rows = [new_task("sleepy", {"key": f"t{i}", "seconds": 0.2}) for i in range(150)]
    ids = [info.id for info in await pg_app.submit_many(rows)]
    workers = [pg_cluster.start_worker("--concurrency", "10", "--lease", "3") for _ in range(2)]

    async def some_done() -> bool:
        return len(pg_cluster.ledger_lines("done")) >= 20

    await eventually(some_done, timeout=20)
    assert await terminate_sessions(pg_url) >= 4  # pools, listeners and the leader's lock

    async def all_completed() -> bool:
        return (await statuses(pg_app, ids))[Status.COMPLETED] == len(ids)

    await eventually(all_completed, timeout=40, interval=0.2)
    done = collections.Counter(key for key, _ in pg_cluster.ledger_lines("done"))
    assert set(done) == {f"t{i}" for i in range(150)}  # none lost (at least once)
    for w in workers:
        assert w.proc.poll() is None  # an outage is not a crash
        w.signal(signal.SIGTERM)
    for w in workers:
        assert w.wait(20) == 0


async def test_a_rolled_back_submit_never_runs_and_a_committed_one_runs_once(
    pg_cluster: Cluster, pg_app: App, pg_url: str
) -> None:
    @pg_app.task(name="sleepy")
    async def sleepy(key: str, seconds: float = 1.0) -> None: ...

    pg_cluster.start_worker()
    conn = await asyncpg.connect(pg_url)
    try:
        tr = conn.transaction()
        await tr.start()
        dropped = await sleepy.submit(key="dropped", seconds=0.0, connection=conn)
        await tr.rollback()
        async with conn.transaction():
            kept = await sleepy.submit(key="kept", seconds=0.0, connection=conn)
            await conn.execute("SELECT pg_sleep(0.5)")  # a worker would have claimed it by now
            assert pg_cluster.ledger_lines("start") == []
    finally:
        await conn.close()
    assert kept.id is not None
    assert await pg_app.wait(kept.id, timeout=15) == {
        "key": "kept",
        "pid": pg_cluster.workers[0].pid,
    }
    assert dropped.id is not None
    assert await pg_app.get(dropped.id) is None
    assert pg_cluster.ledger_lines("done") == [("kept", pg_cluster.workers[0].pid)]


async def test_a_cancel_reaches_a_running_task_in_another_process(
    pg_cluster: Cluster, pg_app: App
) -> None:
    [info] = await pg_app.submit_many([new_task("sleepy", {"key": "long", "seconds": 30})])
    assert info.id is not None
    pg_cluster.start_worker()

    async def running() -> bool:
        return (await get(pg_app, info.id)).status is Status.RUNNING

    await eventually(running, timeout=15)
    started = time.monotonic()
    await pg_app.cancel(info.id)

    async def cancelled() -> bool:
        return (await get(pg_app, info.id)).status is Status.CANCELLED

    await eventually(cancelled, timeout=5, interval=0.02)
    assert time.monotonic() - started < 1.5  # "within about a second"


async def test_another_worker_takes_over_maintenance_when_the_leader_dies(
    pg_cluster: Cluster, pg_app: App
) -> None:
    leader = pg_cluster.start_worker("--lease", "1.5")
    await eventually(lambda: "leads maintenance" in leader.output(), timeout=15)
    # The second worker serves another queue: it can only rescue the leader's tasks, not run them.
    follower = pg_cluster.start_worker("--lease", "1.5", "--queues", "elsewhere")
    rows = [new_task("sleepy", {"key": f"m{i}", "seconds": 30}) for i in range(3)]
    ids = [info.id for info in await pg_app.submit_many(rows)]

    async def all_running() -> bool:
        return (await statuses(pg_app, ids))[Status.RUNNING] == len(ids)

    await eventually(all_running, timeout=15)
    await eventually(lambda: "serving" in follower.output(), timeout=15)
    assert "leads maintenance" not in follower.output()
    leader.signal(signal.SIGKILL)
    assert leader.wait(10) == -signal.SIGKILL
    await eventually(lambda: "leads maintenance" in follower.output(), timeout=5)

    async def rescued() -> bool:
        return (await statuses(pg_app, ids))[Status.PENDING] == len(ids)

    await eventually(rescued, timeout=10)
    assert "worker was lost" in follower.output()
    assert [i.attempts for i in await infos(pg_app, ids)] == [1] * len(ids)


def test_workers_refuse_an_older_schema_until_migrated(tmp_path: Path, pg_bare_url: str) -> None:
    # The test server trusts local connections, so any password works: it must never show.
    url = pg_bare_url.replace("://postgres@", "://postgres:hunter2@")
    assert "hunter2" in url
    env = {**os.environ, "TASKWARD_DB": url, "PYTHONPATH": str(APPS)}
    worker = [sys.executable, "-m", "taskward", "worker", "faultapp:app"]
    refused = subprocess.run(
        worker, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2
    assert "run `taskward migrate`" in refused.stderr
    assert "hunter2" not in refused.stderr + refused.stdout
    migrate = [sys.executable, "-m", "taskward", "migrate"]
    done = subprocess.run(
        migrate, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "from version 0 to" in done.stdout
    again = subprocess.run(
        migrate, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert "already at version" in again.stdout
    with subprocess.Popen(worker, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 15
            seen = ""
            while "serving" not in seen and time.monotonic() < deadline:
                seen += proc.stderr.readline()
            assert "serving" in seen
            assert "postgres:***@" in seen
            assert "hunter2" not in seen
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
