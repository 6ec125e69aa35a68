"""``serve``'s store-derived gauges: ``taskward_queue_depth{queue,status}`` and
``taskward_oldest_pending_age_seconds{queue}``, read from the store at each scrape."""

from __future__ import annotations

import re

from api_helpers import running

from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.stores.memory import MemoryStore

START = 1_700_000_000.0


class Clock:
    """The store's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def samples(text: str, name: str) -> dict[str, float]:
    """The samples of one metric, by their label text (``queue="a"``)."""
    out = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            out[match[1]] = float(match[2])
    return out


async def test_oldest_pending_age_per_queue() -> None:
    clock = Clock()
    app = App(MemoryStore(clock=clock))

    @app.task(name="job")
    async def job() -> None:
        """Never run here: there is no worker."""

    async with running(TaskwardAPI(app, poll_interval=0.02)) as client:
        text = (await client.get("/metrics")).text
        assert "# TYPE taskward_oldest_pending_age_seconds gauge" in text
        assert samples(text, "taskward_oldest_pending_age_seconds") == {}
        await job.submit()
        await job.submit(queue="mail")
        clock.now += 7.5
        await job.submit(queue="mail")
        await job.submit(queue="later", delay=60)
        clock.now += 2.0
        text = (await client.get("/metrics")).text
        assert samples(text, "taskward_oldest_pending_age_seconds") == {
            'queue="default"': 9.5,
            'queue="mail"': 9.5,
            'queue="later"': 0.0,  # its task is not due yet: nothing waits
        }
        depth = samples(text, "taskward_queue_depth")
        assert depth['queue="mail",status="Pending"'] == 2
        assert depth['queue="later",status="Pending"'] == 1
        assert depth['queue="later",status="Running"'] == 0
