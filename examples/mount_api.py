"""taskward's HTTP API inside an existing FastAPI app, sharing that app's lifespan.

    python examples/mount_api.py --port 8000           # serves on 127.0.0.1 (needs uvicorn)
    curl -X POST 127.0.0.1:8000/signup -H 'content-type: application/json' \\
         -d '{"email": "ada@example.com"}'             # the app's own route submits a task
    curl 127.0.0.1:8000/taskward/api/tasks              # taskward's routes, under /taskward
    curl -N 127.0.0.1:8000/taskward/api/events          # live events (Ctrl-C to stop)

The host app keeps its own routes, error handlers and lifespan; taskward adds its routes
under a prefix, a body limit on them, and (here) a worker that runs in the host's lifespan.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from pydantic import BaseModel

from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.worker import Worker

tasks = App("sqlite:///mount_example.db")


@tasks.task(name="send_welcome_email", queue="emails")
async def send_welcome_email(to: str) -> str:
    """Pretend to send an email."""
    await asyncio.sleep(0.5)
    return f"sent to {to}"


tasks_api = TaskwardAPI(tasks, worker=Worker(tasks, concurrency=4))


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Opens the store, starts the event feed and the worker; stops them when the app stops.
    async with tasks_api.lifespan():
        yield


app = FastAPI(title="my app", lifespan=lifespan)
tasks_api.install(app, prefix="/taskward")


class Signup(BaseModel):
    email: str


@app.post("/signup", status_code=202)
async def signup(body: Signup) -> dict[str, str]:
    info = await send_welcome_email.submit(to=body.email)
    return {"task": f"/taskward/api/tasks/{info.id}"}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    # The timeout lets shutdown go on while clients still hold event streams open.
    uvicorn.run(app, host="127.0.0.1", port=port, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
