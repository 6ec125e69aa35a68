"""Worker fault tests: real worker processes, real signals, one SQLite file.

What DESIGN.md §4 promises: a killed worker loses no task, a stalled worker cannot overwrite
a rescued task, SIGTERM drains within the grace and releases the rest without spending an
attempt, several processes share one file without "database is locked", and bad rows fail
their task without hurting the worker.
"""

from __future__ import annotations

import collections
import signal
import time

import pytest
from e2e_helpers import Cluster, all_registered, infos, new_task

from taskward.app import App
from taskward.models import Status
from waiting import eventually, get

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def test_sigkill_loses_no_task(cluster: Cluster, store_app: App) -> None:
    rows = [new_task("sleepy", {"key": f"k{i}", "seconds": 1.5}) for i in range(20)]
    ids = [info.id for info in await store_app.submit_many(rows)]
    assert all(i is not None for i in ids)
    first = cluster.start_worker("--concurrency", "20", "--lease", "1.5")

    async def all_running() -> bool:
        return all(i.status is Status.RUNNING for i in await infos(store_app, ids))

    await eventually(all_running, timeout=15)
    first.signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert cluster.ledger_lines("done") == []  # killed mid-sleep: no body finished

    cluster.start_worker("--concurrency", "20", "--lease", "1.5")

    async def all_completed() -> bool:
        return all(i.status is Status.COMPLETED for i in await infos(store_app, ids))

    await eventually(all_completed, timeout=30)
    final = await infos(store_app, ids)
    assert [i.attempts for i in final] == [2] * 20  # the rescue counted as an attempt
    done = collections.Counter(key for key, _ in cluster.ledger_lines("done"))
    assert done == {f"k{i}": 1 for i in range(20)}  # none lost, none completed twice


async def test_stalled_worker_cannot_complete_a_rescued_task(
    cluster: Cluster, store_app: App
) -> None:
    [info] = await store_app.submit_many([new_task("sleepy", {"key": "only", "seconds": 1.0})])
    assert info.id is not None
    stalled = cluster.start_worker("--lease", "1.0")

    async def running() -> bool:
        got = await get(store_app, info.id)
        return got is not None and got.status is Status.RUNNING

    await eventually(running, timeout=15)
    stalled.signal(signal.SIGSTOP)
    try:
        second = cluster.start_worker("--lease", "1.0")

        async def completed() -> bool:
            got = await get(store_app, info.id)
            return got is not None and got.status is Status.COMPLETED

        await eventually(completed, timeout=30)
    finally:
        stalled.signal(signal.SIGCONT)
    # The stalled worker wakes with its sleep long over: it must not overwrite the outcome.
    await eventually(lambda: "lease lost" in stalled.output(), timeout=15)
    got = await get(store_app, info.id)
    assert got is not None
    assert got.status is Status.COMPLETED
    assert got.attempts == 2
    assert got.result == {"key": "only", "pid": second.pid}  # the second worker's success
    stalled.signal(signal.SIGTERM)
    assert stalled.wait(20) == 0


async def test_sigterm_drains_within_grace_and_releases_the_rest(
    cluster: Cluster, store_app: App
) -> None:
    short, long = await store_app.submit_many(
        [
            new_task("sleepy", {"key": "short", "seconds": 0.5}),
            new_task("sleepy", {"key": "long", "seconds": 4.0}),
        ]
    )
    first = cluster.start_worker("--grace", "1.5", "--concurrency", "4")

    async def both_running() -> bool:
        return all(i.status is Status.RUNNING for i in await infos(store_app, [short.id, long.id]))

    await eventually(both_running, timeout=15)
    started = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0  # a clean stop exits 0
    assert time.monotonic() - started < 1.5 + 3.0  # within the grace, plus start-up slack

    s, lg = await infos(store_app, [short.id, long.id])
    assert s.status is Status.COMPLETED  # finished inside the grace
    assert lg.status is Status.PENDING  # released past the grace...
    assert lg.attempts == 0  # ...with its attempt given back
    assert "released" in first.output()

    cluster.start_worker()

    async def long_done() -> bool:
        got = await get(store_app, long.id)
        return got is not None and got.status is Status.COMPLETED

    await eventually(long_done, timeout=20)
    got = await get(store_app, long.id)
    assert got is not None
    assert got.attempts == 1


async def test_second_sigterm_stops_at_once(cluster: Cluster, store_app: App) -> None:
    [info] = await store_app.submit_many([new_task("sleepy", {"key": "k", "seconds": 30})])
    worker = cluster.start_worker("--grace", "60")

    async def running() -> bool:
        got = await get(store_app, info.id)
        return got is not None and got.status is Status.RUNNING

    await eventually(running, timeout=15)
    worker.signal(signal.SIGTERM)
    await eventually(lambda: "stopping, waiting up to" in worker.output(), timeout=10)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - started < 5
    got = await get(store_app, info.id)
    assert got is not None
    assert (got.status, got.attempts) == (Status.PENDING, 0)


async def test_four_workers_share_one_sqlite_file(cluster: Cluster, store_app: App) -> None:
    n = 1200
    workers = [cluster.start_worker("--concurrency", "8") for _ in range(4)]
    # Every worker is up before the tasks come: on a loaded machine the first one to finish
    # importing would otherwise run them all before the others start.
    await all_registered(store_app, workers)
    rows = [new_task("quick", {"key": f"q{i}"}) for i in range(n)]
    ids = [info.id for info in await store_app.submit_many(rows)]

    async def all_done() -> bool:
        counts = (await store_app.counts()).by_status()
        return counts[Status.COMPLETED] == n

    await eventually(all_done, timeout=60, interval=0.2)
    for w in workers:
        w.signal(signal.SIGTERM)
    for w in workers:
        assert w.wait(20) == 0
    done = collections.Counter(key for key, _ in cluster.ledger_lines("done"))
    assert len(done) == n
    assert set(done.values()) == {1}  # none lost, none doubled
    assert len({pid for _, pid in cluster.ledger_lines("done")}) >= 2  # the load was shared
    for w in workers:
        assert "locked" not in w.output().lower()
    final = await infos(store_app, ids[:50])
    assert {i.attempts for i in final} == {1}


async def test_bad_rows_fail_their_task_and_the_worker_goes_on(
    cluster: Cluster, store_app: App
) -> None:
    # Nested far deeper than any decoder recurses (RecursionError), and strict-JSON breaches
    # a row written by hand may hold: each fails its first attempt, never by a lease expiry.
    deep = '{"count": ' + "[" * 100_000 + "]" * 100_000 + "}"
    unknown, corrupt, invalid, not_object, too_deep, nan, good = await store_app.submit_many(
        [
            new_task("no_such_task", {}),
            new_task("typed", "{not json"),
            new_task("typed", {"count": "many"}),
            new_task("typed", "[1, 2]"),
            new_task("typed", deep),
            new_task("typed", '{"count": NaN}'),
            new_task("typed", {"count": 21}),
        ]
    )
    worker = cluster.start_worker()
    ids = [t.id for t in (unknown, corrupt, invalid, not_object, too_deep, nan, good)]

    async def all_finished() -> bool:
        return all(i.is_finished for i in await infos(store_app, ids))

    await eventually(all_finished, timeout=20)
    u, c, i, n, d, f, g = await infos(store_app, ids)
    assert (g.status, g.result) == (Status.COMPLETED, 42)
    for bad in (u, c, i, n, d, f):
        assert bad.status is Status.FAILED
        assert bad.attempts == 1  # no retry can mend a bad row
    assert u.error is not None
    assert "unknown task 'no_such_task'" in u.error
    assert c.error is not None
    assert "stored arguments cannot be used" in c.error
    assert i.error is not None
    assert "count" in i.error
    assert n.error is not None
    assert "JSON object" in n.error
    assert d.error is not None
    assert "stored arguments cannot be used" in d.error
    assert f.error is not None
    assert "stored arguments cannot be used" in f.error
    assert worker.proc.poll() is None  # still serving
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
