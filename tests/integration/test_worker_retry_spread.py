"""Tasks that fail together do not retry together, and a retry starts when it falls due.

With the default jitter, the retries of 200 tasks that failed at once spread over their
backoff instead of landing in one burst; an idle worker wakes for each retry it wrote rather
than finding it at its next poll.
"""

from __future__ import annotations

import bisect

from integration_helpers import running

from taskward.app import App
from taskward.models import Status
from taskward.retry import Backoff
from taskward.worker import Worker
from waiting import eventually

N = 200


async def test_retries_of_tasks_that_failed_together_spread_out_and_start_on_time(
    app: App,
) -> None:
    failed_once: set[int] = set()

    @app.task(max_attempts=2, retry=Backoff(base=1, cap=10))  # the default jitter
    async def flaky(key: int) -> int:
        if key not in failed_once:
            failed_once.add(key)
            raise RuntimeError("the first attempt fails")
        return key

    # The worker's default poll (0.5 s): retries must not wait for it.
    worker = Worker(app, concurrency=N, pruning=None)
    infos = await app.submit_many([flaky.prepare(key=i) for i in range(N)])
    async with running(worker):

        async def all_done() -> bool:
            counts = (await app.counts()).by_status()
            return counts[Status.COMPLETED] == N

        await eventually(all_done, timeout=15, interval=0.1)
    starts: list[float] = []
    late: list[float] = []
    for info in infos:
        assert info.id is not None
        done = await app.get(info.id)
        assert done is not None
        assert done.attempts == 2
        assert done.started_at is not None
        assert done.run_at is not None
        started, due = done.started_at.timestamp(), done.run_at.timestamp()
        starts.append(started)
        late.append(started - due)
    starts.sort()
    assert min(late) >= 0, "a retry started before it was due"
    assert max(late) <= 0.05, f"a retry started {max(late) * 1000:.0f} ms late"
    busiest = max(bisect.bisect_right(starts, s + 0.1) - i for i, s in enumerate(starts))
    assert busiest <= N * 0.2, f"{busiest} of {N} retries started within one 100 ms window"
