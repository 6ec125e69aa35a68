"""The app that worker fault tests run in real subprocesses.

Each task appends a line to the ledger file ($LEDGER) when its body completes, so a test
can tell how many times a body ran to the end, whatever the store says.
"""

from __future__ import annotations

import asyncio
import os
import time

from ledger import record

from taskward.app import App

app = App()  # TASKWARD_DB chooses the store


@app.task(name="sleepy", max_attempts=5)
async def sleepy(key: str, seconds: float = 1.0) -> dict[str, object]:
    """Sleep, then record the completion in the ledger."""
    record(f"start {key} {os.getpid()}")
    await asyncio.sleep(seconds)
    record(f"done {key} {os.getpid()}")
    return {"key": key, "pid": os.getpid()}


@app.task(name="blocking", max_attempts=5)
def blocking(key: str, seconds: float = 1.0) -> dict[str, object]:
    """A sync task: a thread that cannot be interrupted."""
    time.sleep(seconds)
    record(f"done {key} {os.getpid()}")
    return {"key": key, "pid": os.getpid()}


@app.task(name="quick", max_attempts=3)
async def quick(key: str) -> str:
    """A tiny task for load tests."""
    record(f"done {key} {os.getpid()}")
    return key


@app.task(name="typed")
async def typed(count: int) -> int:
    """Strict arguments, to test rows whose args no longer validate."""
    return count * 2
