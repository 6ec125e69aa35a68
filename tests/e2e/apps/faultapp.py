"""The app that worker fault tests run in real subprocesses.

Each task appends a line to the ledger file ($LEDGER) when its body completes, so a test
can tell how many times a body ran to the end, whatever the store says.
"""

from __future__ import annotations

import asyncio
import os
import time

from taskward.app import App

app = App()  # TASKWARD_DB chooses the store


def _ledger(line: str) -> None:
    path = os.environ.get("LEDGER")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one small O_APPEND write: atomic
        finally:
            os.close(fd)


@app.task(name="sleepy", max_attempts=5)
async def sleepy(key: str, seconds: float = 1.0) -> dict[str, object]:
    """Sleep, then record the completion in the ledger."""
    _ledger(f"start {key} {os.getpid()}")
    await asyncio.sleep(seconds)
    _ledger(f"done {key} {os.getpid()}")
    return {"key": key, "pid": os.getpid()}


@app.task(name="blocking", max_attempts=5)
def blocking(key: str, seconds: float = 1.0) -> dict[str, object]:
    """A sync task: a thread that cannot be interrupted."""
    time.sleep(seconds)
    _ledger(f"done {key} {os.getpid()}")
    return {"key": key, "pid": os.getpid()}


@app.task(name="quick", max_attempts=3)
async def quick(key: str) -> str:
    """A tiny task for load tests."""
    _ledger(f"done {key} {os.getpid()}")
    return key


@app.task(name="typed")
async def typed(count: int) -> int:
    """Strict arguments, to test rows whose args no longer validate."""
    return count * 2
