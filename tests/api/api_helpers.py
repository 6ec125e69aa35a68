"""Helpers for the HTTP API tests: a test app, and an API with its lifespan running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

import taskward
from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.testing import memory_app
from taskward.worker import Worker

#: An id that is well-formed and names no task.
NO_SUCH_ID = "00000000-0000-0000-0000-000000000000"


def make_app() -> App:
    """A memory-store app with a default task and a few others."""
    app = memory_app(default_task="add")

    @app.task(name="add")
    async def add(a: int = 1, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    @app.task(name="hold", max_attempts=1)
    async def hold(seconds: float = 30.0) -> str:
        """Report progress, then sleep (a long task to cancel)."""
        taskward.progress(1, 2, "holding")
        await asyncio.sleep(seconds)
        return "held"

    @app.task(name="boom", max_attempts=1)
    async def boom(message: str = "boom") -> None:
        """Fail at once."""
        raise RuntimeError(message)

    return app


def fast_worker(app: App, concurrency: int = 4) -> Worker:
    """A worker that notices new tasks and cancel requests quickly."""
    return Worker(
        app, concurrency=concurrency, poll_interval=0.02, cancel_poll=0.02, grace=1.0, pruning=None
    )


@contextlib.asynccontextmanager
async def running(api: TaskwardAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``api``'s FastAPI app, inside its lifespan."""
    fastapi_app = api.fastapi()
    async with (
        fastapi_app.router.lifespan_context(fastapi_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fastapi_app), base_url="http://taskward.test"
        ) as client,
    ):
        yield client


async def status_of(client: httpx.AsyncClient, task_id: str) -> str:
    """The task's status, as the API shows it."""
    response = await client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status
