"""The app that the CLI tests drive through real ``taskward`` subprocesses."""

from __future__ import annotations

import asyncio

import taskward
from taskward.app import App

app = App()  # TASKWARD_DB chooses the store


@app.task(name="count")
async def count(n: int, pause: float = 0.01) -> dict[str, int]:
    """Count to ``n``, reporting progress at each step."""
    for i in range(1, n + 1):
        await asyncio.sleep(pause)
        taskward.progress(i, n, f"step {i}")
    return {"counted": n}


@app.task(name="hold")
async def hold(seconds: float, label: str = "") -> str:
    """Report one step of progress, then sleep (a long task to cancel or time out)."""
    taskward.progress(1, 3, "holding")
    await asyncio.sleep(seconds)
    return label


@app.task(name="boom", max_attempts=1)
async def boom(message: str) -> None:
    """Fail at once, for good."""
    raise RuntimeError(message)
