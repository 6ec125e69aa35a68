"""The app that the schedule end-to-end tests run in real worker processes.

One schedule, ``beat``: every second (``$SCHEDULE_EVERY``) a ``tick`` task that appends
``done <task id> <pid>`` to the ledger ($LEDGER) once its body has run, so a test can tell
how many times each tick's body ran, whatever the store says.
"""

from __future__ import annotations

import os

from ledger import record

import taskward
from taskward.app import App

app = App()  # TASKWARD_DB chooses the store


@app.task(name="tick")
async def tick(label: str) -> str:
    """Record this run in the ledger."""
    record(f"done {taskward.current_task()} {os.getpid()}")
    return label


app.schedule(
    "beat",
    tick,
    every=float(os.environ.get("SCHEDULE_EVERY", "1")),
    args={"label": "beat"},
    max_instances=10,
)
