"""A web handler that answers at once and sends the welcome email in the background.

    python examples/web_email.py --port 8000          # serves on 127.0.0.1 (needs uvicorn)
    curl -X POST 127.0.0.1:8000/signup -H 'content-type: application/json' \\
         -d '{"email": "ada@example.com"}'            # 202 {"task": "welcome-ada@example.com", ...}
    curl '127.0.0.1:8000/tasks/welcome-ada@example.com?wait=5'

The `TaskManager` lives in the app's lifespan: it starts with the app, and when the server
stops (Ctrl-C, SIGTERM) emails still being sent are cancelled within the grace and logged.
The "email" is simulated: it takes ``--email-seconds`` and lands in ``app.state.outbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

import taskward
from taskward import TaskInfo, TaskManager
from taskward.errors import DuplicateNameError, QueueFullError
from taskward.manager import Retention


class Signup(BaseModel):
    email: str


async def send_welcome_email(outbox: list[str], to: str, seconds: float) -> str:
    """Pretend to talk to an SMTP server for ``seconds``, reporting progress as it goes."""
    for done, step in enumerate(["connecting", "sending", "closing"], start=1):
        taskward.progress(done - 1, 3, step)
        await asyncio.sleep(seconds / 3)
    outbox.append(to)
    taskward.progress(3, 3, "sent")
    return f"sent to {to}"


def describe(info: TaskInfo) -> dict[str, Any]:
    progress = info.progress
    return {
        "task": info.name,
        "status": info.status.value,
        "error": info.error,
        "result": info.result,
        "progress": None
        if progress is None
        else {"done": progress.done, "total": progress.total, "message": progress.message},
        "created_at": info.created_at.isoformat(),
        "finished_at": None if info.finished_at is None else info.finished_at.isoformat(),
    }


def create_app(email_seconds: float = 1.0) -> FastAPI:
    """The web app; ``email_seconds`` is how long sending one (fake) email takes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Bounded, so a burst of signups cannot start thousands of SMTP sessions at once,
        # and with retention, so finished tasks do not pile up in a long-running server.
        retain = Retention(max_finished=10_000, max_age=3600)
        async with TaskManager(concurrency=10, max_pending=1000, grace=5.0, retain=retain) as tm:
            app.state.tasks = tm
            app.state.outbox = []
            yield
        # Leaving the block: emails still in flight were cancelled within the grace, and logged.

    app = FastAPI(title="signup with a background welcome email", lifespan=lifespan)

    def manager(request: Request) -> TaskManager:
        tasks: TaskManager = request.app.state.tasks
        return tasks

    @app.post("/signup", status_code=202)
    async def signup(body: Signup, request: Request) -> dict[str, Any]:
        """Register a user and answer at once; the welcome email goes out in the background."""
        tasks = manager(request)
        name = f"welcome-{body.email}"
        try:
            # submit_nowait: a web handler answers "busy" rather than keep the client waiting.
            tasks.submit_nowait(
                name, send_welcome_email, request.app.state.outbox, body.email, email_seconds
            )
        except DuplicateNameError:
            raise HTTPException(409, f"a welcome email to {body.email} is on its way") from None
        except QueueFullError:
            raise HTTPException(503, "too many emails waiting; try again shortly") from None
        info = tasks.status(name)
        assert info is not None
        return describe(info)

    @app.get("/tasks/{name}")
    async def task_status(name: str, request: Request, wait: float = 0.0) -> dict[str, Any]:
        """A task's status; with ``?wait=SECONDS``, first wait up to that long for its end."""
        tasks = manager(request)
        if not tasks.has(name):
            raise HTTPException(404, f"no task named {name!r}")
        if wait > 0:
            # Whatever the outcome (a result, its error, a timeout), the status below says it.
            with contextlib.suppress(Exception):
                await tasks.wait(name, timeout=min(wait, 30.0))
        info = tasks.status(name)
        if info is None:  # forgotten by retention meanwhile
            raise HTTPException(404, f"no task named {name!r}")
        return describe(info)

    @app.get("/tasks")
    async def list_tasks(request: Request) -> dict[str, Any]:
        """How many tasks are known, running and waiting."""
        tasks = manager(request)
        return {
            "count": tasks.count(),
            "running": tasks.running_count(),
            "pending": tasks.pending_count(),
        }

    return app


app = create_app()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--email-seconds", type=float, default=1.0)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(opts.email_seconds), host="127.0.0.1", port=opts.port)


if __name__ == "__main__":
    main()
