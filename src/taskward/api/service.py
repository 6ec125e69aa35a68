"""`TaskwardAPI`: one App's HTTP API, its live events and metrics, and optionally its worker.

It is used two ways:

- ``create_api(app)`` gives a complete FastAPI app (``uvicorn module:api`` serves it).
- ``TaskwardAPI(app).install(host)`` adds the routes to an existing FastAPI app, whose own
  lifespan enters ``api.lifespan()`` (see the README).

The lifespan opens the store, starts the event poll, and, when a worker is given (and
``run_worker`` is left on), runs it as a background task: leaving the lifespan stops it
gracefully within its grace. ``taskward serve`` runs the worker itself, next to the server,
with ``run_worker=False`` (see `taskward.serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline

from taskward.api.auth import token_from_env
from taskward.api.errors import INTERNAL, error_response
from taskward.api.events import EventHub
from taskward.api.limits import MAX_BODY, BodyLimit
from taskward.api.metrics import Metrics
from taskward.api.routes import build_router
from taskward.api.submitter import GroupSubmitter
from taskward.app import App
from taskward.errors import StoreError
from taskward.models import TaskInfo
from taskward.worker import Worker

__all__ = ["DOCS_ASSETS", "TaskwardAPI", "create_api"]

logger = logging.getLogger("taskward.api")

_READY_TIMEOUT = 2.0
#: Where the complete app serves the files of its API docs pages (Swagger UI, ReDoc).
DOCS_ASSETS = "/docs/assets"


class TaskwardAPI:
    """The HTTP API of one `App` (and of the `Worker` running in this process, if any)."""

    def __init__(
        self,
        app: App,
        *,
        worker: Worker | None = None,
        token: str | None = None,
        max_body: int = MAX_BODY,
        run_worker: bool = True,
        poll_interval: float = 0.5,
        keepalive: float = 15.0,
    ) -> None:
        if worker is not None and worker.app is not app:
            raise ValueError("the worker must belong to the same App as the API")
        self.app = app
        self.worker = worker
        #: None reads TASKWARD_API_TOKEN; without either, the API is open (bind to loopback).
        self.token = token if token is not None else token_from_env()
        self.max_body = max_body
        self.run_worker_in_lifespan = run_worker
        self.keepalive = keepalive
        self.hub = EventHub(app, interval=poll_interval)
        self.metrics = Metrics()
        self.hub.add_listener(self.metrics.observe)
        self.submitter = GroupSubmitter(app)
        self.router = build_router(self)
        self._worker_running = False
        self._worker_failure: str | None = None
        self._stopping = False
        self._stopping_now = False

    # -- mounting -----------------------------------------------------------------------

    def install(self, host: FastAPI, *, prefix: str = "") -> None:
        """Add the routes (under ``prefix``) and the body limit to an existing FastAPI app.

        The host's lifespan must enter `lifespan` (nothing runs without it).
        """
        host.include_router(self.router, prefix=prefix)
        host.add_middleware(BodyLimit, max_body=self.max_body, prefixes=(f"{prefix}/api",))

    def fastapi(self) -> FastAPI:
        """A complete FastAPI app: the routes, ``/docs``, JSON errors everywhere.

        ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from this server
        (``/docs/assets/``, files of the fastapi-offline package), never from a CDN: they
        work without internet access.
        """
        from taskward import __version__

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with self.lifespan():
                yield

        api = FastAPIOffline(
            title="taskward",
            version=__version__,
            description="Background tasks: submit, follow, cancel and retry them.",
            lifespan=lifespan,
            static_url=DOCS_ASSETS,
        )
        api.state.taskward = self
        self.install(api)

        async def internal_error(request: Request, exc: Exception) -> Response:
            logger.error("unexpected error outside a route", exc_info=exc)
            return error_response(500, INTERNAL)

        api.add_exception_handler(Exception, internal_error)
        return api

    # -- lifecycle ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Open the store and start the event poll (and the worker); stop them at exit."""
        self._stopping = self._stopping_now = False
        self.hub.reopen()
        try:
            await self.app.open()
        except StoreError as exc:  # readiness says so; the poll and requests retry
            logger.warning("the task store is not reachable yet: %s", exc)
        poll = asyncio.create_task(self.hub.run(), name="taskward-events")
        worker_task = None
        if self.worker is not None and self.run_worker_in_lifespan:
            self._worker_running = True  # from now on: readiness must not flap at startup
            worker_task = asyncio.create_task(self.run_worker(), name="taskward-worker")
        try:
            yield
        finally:
            self.stop()
            if worker_task is not None:
                with contextlib.suppress(Exception):  # a crash was logged where it happened
                    await worker_task
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll

    async def run_worker(self) -> None:
        """Run the worker until it stops; a crash is logged and makes readiness fail."""
        worker = self.worker
        if worker is None:
            raise RuntimeError("this API has no worker")
        self._worker_running = True
        self._worker_failure = None
        try:
            await worker.run()
        except Exception as exc:
            self._worker_failure = f"the worker stopped after an error ({type(exc).__name__})"
            logger.exception("the worker failed")
            raise
        finally:
            self._worker_running = False

    def stop(self, *, now: bool = False) -> None:
        """Begin shutting down: end event streams and ask the worker to stop gracefully.

        Idempotent; with ``now`` the worker stops at once (its running tasks are released).
        """
        if not self._stopping:
            self._stopping = True
            self.hub.close()
            if self.worker is not None:
                self.worker.stop()
        if now and not self._stopping_now:
            self._stopping_now = True
            if self.worker is not None:
                self.worker.stop()  # a second request: the worker's "stop now"

    # -- what routes ask ----------------------------------------------------------------

    def submitted(self, infos: Sequence[TaskInfo]) -> None:
        """Count and announce tasks just submitted through this API."""
        for info in infos:
            self.metrics.count_submitted(info.task or "")
            self.hub.observe(info)

    @property
    def worker_alive(self) -> bool:
        """True while this process's worker runs."""
        return self._worker_running

    async def workers(self) -> list[dict[str, Any]]:
        """The worker processes alive now, from the store's registry (any host).

        Each row is as of that worker's last beat (every third of its lease); this
        process's own worker shows its slots as they are now.
        """
        own = self.worker
        out = []
        for w in await self.app.workers():
            if own is not None and w["id"] == own.id:
                w = {**w, "running": own.running}
            out.append(
                {
                    **w,
                    "alive": True,
                    "started_at": w["started_at"].isoformat() if w["started_at"] else None,
                    "last_seen": w["last_seen"].isoformat() if w["last_seen"] else None,
                }
            )
        return out

    async def not_ready(self) -> str | None:
        """Why this process should get no traffic now, or None when it is ready."""
        try:
            store = await asyncio.wait_for(self.app.connect(), _READY_TIMEOUT)
            await asyncio.wait_for(store.now(), _READY_TIMEOUT)
        except Exception as exc:
            logger.warning("readiness: the store is not reachable: %s", exc)
            return "the task store is not reachable"
        if self._stopping:
            return "shutting down"
        if self.worker is not None and not self._worker_running:
            return self._worker_failure or "the worker is not running"
        return None

    async def render_metrics(self) -> bytes:
        """The Prometheus text, with the gauges read now."""
        try:
            counts = await asyncio.wait_for(self.app.counts(), _READY_TIMEOUT)
            waiting = await asyncio.wait_for(self.app.oldest_pending(), _READY_TIMEOUT)
        except Exception as exc:
            logger.warning("metrics: cannot read counts from the store: %s", exc)
            counts, waiting = None, None
        w = self.worker
        return self.metrics.render(
            counts,
            busy=None if w is None else w.running,
            total=None if w is None else w.concurrency,
            alive=1 if self._worker_running else 0,
            waiting=waiting,
        )


def create_api(
    app: App,
    *,
    worker: Worker | None = None,
    token: str | None = None,
    max_body: int = MAX_BODY,
) -> FastAPI:
    """A FastAPI app serving ``app``'s tasks (and running ``worker`` in its lifespan).

    ``token`` None reads ``TASKWARD_API_TOKEN``. The `TaskwardAPI` is at ``.state.taskward``.
    """
    return TaskwardAPI(app, worker=worker, token=token, max_body=max_body).fastapi()
