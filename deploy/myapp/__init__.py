"""The example app that the files of deploy/ run: replace it with your own package.

``TASKWARD_APP=myapp:app`` names it; ``TASKWARD_DB`` chooses its store.
"""

from __future__ import annotations

import asyncio
import logging

from taskward import App

app = App()  # TASKWARD_DB chooses the store
log = logging.getLogger("myapp")


@app.task(name="resize", max_attempts=3)
async def resize(image: str, seconds: float = 1.0) -> str:
    """Pretend to resize an image: a task that takes a while."""
    log.info("resizing %s", image)
    await asyncio.sleep(seconds)
    return f"{image} resized"
