"""The app of the stalled-leader tests: a slow task, and a schedule that fires every second.

``slow`` appends ``start``/``done <key> <pid>`` to the ledger ($LEDGER), so a test can tell
which process ran a body to the end; ``beat`` submits a ``tick`` task on every whole second.
"""

from __future__ import annotations

import asyncio
import os

from ledger import record

from taskward.app import App

app = App()  # TASKWARD_DB chooses the store


@app.task(name="slow", max_attempts=3)
async def slow(key: str, seconds: float) -> dict[str, object]:
    """Sleep, then record the completion in the ledger."""
    record(f"start {key} {os.getpid()}")
    await asyncio.sleep(seconds)
    record(f"done {key} {os.getpid()}")
    return {"key": key, "pid": os.getpid()}


@app.task(name="tick")
async def tick() -> int:
    """One tick of the schedule: nothing to do but exist."""
    return os.getpid()


app.schedule("beat", tick, every=1.0, max_instances=50)
