"""A stalled or cut-off leader must not stall the cluster: real processes, real signals.

Two ``taskward worker`` processes share one store with a 3-second lease. The first leads
maintenance, runs a slow task and fires a schedule every second; then it is stopped with
SIGSTOP (as a long pause or a frozen VM would stop it), or, on PostgreSQL, cut off by a
proxy that stops forwarding while every connection stays open (a partition). The other
worker must rescue the task after its lease (completing it once, as attempt 2) and keep the
schedule firing once per tick. When the first worker comes back it must neither fire,
rescue nor overwrite anything, and go on as a follower.
"""

from __future__ import annotations

import collections
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import pytest
from e2e_helpers import Cluster, WorkerProc, all_registered, new_task
from tcp_proxy import PausableProxy

from taskward.app import App
from taskward.models import Status
from taskward.stores.base import TaskRecord
from waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEASE = 3.0
APP = "stallapp:app"


@pytest.fixture
async def app(db_cluster: Cluster) -> AsyncIterator[App]:
    a = App(db_cluster.db)
    await a.open()
    try:
        yield a
    finally:
        await a.close()


def start(cluster: Cluster, *args: str, db: str | None = None) -> WorkerProc:
    """A worker of the stall app with the short lease (on another URL when ``db`` is given)."""
    if db is None:
        return cluster.start_worker("--lease", str(LEASE), *args, app=APP)
    saved, cluster.db = cluster.db, db
    try:
        return cluster.start_worker("--lease", str(LEASE), *args, app=APP)
    finally:
        cluster.db = saved


async def record(app: App, task_id: UUID) -> TaskRecord:
    row = await (await app.connect()).get(task_id)
    assert row is not None
    return row


async def tick_times(app: App) -> list[float]:
    """The tick each ``beat`` task was fired for, in order (a tick fired twice shows twice)."""
    names: list[str] = []
    cursor = None
    while True:
        page, cursor = await app.list(task="tick", limit=500, cursor=cursor)
        names += [info.name for info in page if info.name]
        if cursor is None:
            break
    ticks = [datetime.fromisoformat(n.split("@", 1)[1].replace("Z", "+00:00")) for n in names]
    return sorted(t.timestamp() for t in ticks)


async def stall_and_recover(
    cluster: Cluster,
    app: App,
    leader: WorkerProc,
    cut_off: Callable[[], None],
    restore: Callable[[], None],
    what: str,
) -> None:
    """The scenario: ``leader`` leads and runs a slow task; it is cut off; another worker
    takes over; it comes back."""
    await eventually(lambda: "now leads maintenance" in leader.output(), timeout=20)
    [info] = await app.submit_many([new_task("slow", {"key": "k", "seconds": 4.0})])
    assert info.id is not None
    task_id = info.id

    async def running_on_leader() -> bool:
        row = await record(app, task_id)
        return row.status is Status.RUNNING and f":{leader.pid}:" in (row.worker_id or "")

    await eventually(running_on_leader, timeout=15)
    await eventually(lambda: "schedule 'beat' fired" in leader.output(), timeout=15)
    # The follower serves with 2 slots, so the leader must take some of the last tasks.
    follower = start(cluster, "--concurrency", "2")
    await all_registered(app, [leader, follower])

    seen = len(leader.output())
    cut_off()
    stopped_at = time.time()
    await eventually(lambda: (time.time() - stopped_at) > 0.5, timeout=2)  # in-flight writes land
    first = await record(app, task_id)
    assert first.status is Status.RUNNING
    assert first.attempts == 1
    assert first.lease_expires_at is not None

    async def completed() -> bool:
        return (await record(app, task_id)).status is Status.COMPLETED

    await eventually(completed, timeout=30, interval=0.1)
    done = await record(app, task_id)
    assert done.attempts == 2
    assert f":{follower.pid}:" in (done.worker_id or "")
    assert json.loads(done.result or "null") == {"key": "k", "pid": follower.pid}
    assert done.started_at is not None
    rescued_after = done.started_at - first.lease_expires_at
    # The rescue waits for the lease, then for the leader's role to pass on and one round.
    assert 0 <= rescued_after <= LEASE + 2.0, rescued_after
    # The measured figure, for whoever runs this with -s (the promised bound is asserted above).
    figure = {"scenario": what, "rescued_s_after_lease_expiry": round(rescued_after, 2)}
    print(json.dumps(figure))  # noqa: T201
    assert "now leads maintenance" in follower.output()

    # The schedule kept firing, once per tick, while the leader was away.
    await eventually(lambda: "schedule 'beat' fired" in follower.output(), timeout=10)
    ticks = await tick_times(app)
    assert len(ticks) == len(set(ticks)), "a tick fired twice"
    late = [t for t in ticks if t > stopped_at + 2 * LEASE]
    assert late
    assert late == [late[0] + i for i in range(len(late))], late
    assert max(b - a for a, b in itertools.pairwise(ticks)) <= 2 * LEASE + 2

    # Back again: the old leader fires, rescues and overwrites nothing. (Cut off but
    # running, it may already have noticed its lease ran out: its log is read from the cut.)
    restore()
    came_back = time.time()

    async def noticed() -> bool:
        log = leader.output()[seen:]
        return "no longer leads maintenance" in log and (
            "lease not renewed" in log or "lease ran out before the run ended" in log
        )

    await eventually(noticed, timeout=15)
    ticks_before = len(await tick_times(app))
    await app.submit_many(
        [new_task("slow", {"key": f"after{i}", "seconds": 0.5}) for i in range(8)]
    )
    await eventually(
        lambda: len([k for k, _ in cluster.ledger_lines("done") if k.startswith("after")]) == 8,
        timeout=20,
    )
    after = leader.output()[seen:]
    # Not one tick: not even one whose firing was sent before the cut and landed after it
    # (the store checks the role in the firing's own transaction).
    assert "schedule 'beat' fired" not in after, after
    assert "its worker was lost" not in after, after
    assert "now leads maintenance" not in after, after
    assert await record(app, task_id) == done  # not overwritten

    async def fires_on() -> bool:  # the follower, now the leader, fires on
        return len(await tick_times(app)) > ticks_before + 1

    await eventually(fires_on, timeout=10)
    # It goes on as a follower: still alive, beating, running tasks.
    pids = collections.Counter(pid for key, pid in cluster.ledger_lines("done") if key != "k")
    assert pids[leader.pid] >= 1, pids
    assert leader.proc.poll() is None
    beats = {w["pid"]: w["last_seen"].timestamp() for w in await app.workers()}
    assert beats.get(leader.pid, 0) > came_back, beats
    for worker in (leader, follower):
        worker.signal(signal.SIGTERM)
    for worker in (leader, follower):
        assert worker.wait(20) == 0


async def test_a_stopped_leader_is_replaced_and_comes_back_as_a_follower(
    db_cluster: Cluster, app: App
) -> None:
    leader = start(db_cluster)
    await stall_and_recover(
        db_cluster,
        app,
        leader,
        cut_off=lambda: leader.signal(signal.SIGSTOP),
        restore=lambda: leader.signal(signal.SIGCONT),
        what=f"SIGSTOP, {db_cluster.db.split(':', 1)[0]}",
    )


@pytest.mark.postgres
async def test_a_leader_cut_off_by_a_partition_is_replaced(tmp_path: Path, pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = PausableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = proxy.start()
    behind_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    cluster = Cluster(db=pg_url, ledger=tmp_path / "ledger", tmp=tmp_path)
    app = App(pg_url)
    await app.open()
    try:
        leader = start(cluster, db=behind_proxy)
        await stall_and_recover(
            cluster,
            app,
            leader,
            cut_off=proxy.pause,
            restore=proxy.resume,
            what="partition, postgres",
        )
    finally:
        await app.close()
        proxy.resume()
        cluster.stop_all()
        proxy.close()
