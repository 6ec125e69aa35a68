"""Watching the service: ``/api/stats`` (counts, workers, throughput), ``/api/events`` (a
live stream of status changes and progress, from `taskward.api.events`), the
``/health/...`` probes and ``/metrics``.

The probes and the metrics are open even with an API token (`HEALTH` is not guarded): load
balancers, Kubernetes and Prometheus call them without one, and they show no task data
beyond counts.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from taskward.api.errors import InvalidRequestError
from taskward.api.metrics import CONTENT_TYPE
from taskward.api.routes.base import Routes, get_api
from taskward.api.schemas import HealthOut, StatsOut
from taskward.models import Status

__all__ = ["HEALTH", "STATS"]

STATS = Routes(tag="tasks")
HEALTH = Routes(tag="health", prefix="", guarded=False)


@STATS.route(
    "GET",
    "/stats",
    summary="Counts by status and queue, workers, recent throughput",
    response_model=StatsOut,
    errors=(500, 503),
)
async def stats(request: Request) -> Response:
    api = get_api(request)
    counts = await api.app.counts()
    return JSONResponse(
        {
            "by_status": {s.value: n for s, n in counts.by_status().items()},
            "by_queue": {
                queue: {s.value: per.get(s, 0) for s in Status}
                for queue, per in sorted(counts.by_queue.items())
            },
            "workers": await api.workers(),
            "throughput": api.hub.throughput(),
        }
    )


def _event_id(index: int, value: str) -> str:
    """A task id of the events filter, in the form events carry; 422 if malformed (a stream
    filtered by a malformed id would never send anything)."""
    try:
        return str(UUID(value))
    except ValueError:
        raise InvalidRequestError(
            [(["query", "id", index], f"{value[:100]!r} is not a task id (a UUID)", "uuid_parsing")]
        ) from None


@STATS.route(
    "GET",
    "/events",
    summary="Server-Sent Events: task status changes and progress",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`: `status` and `progress` "
            "events whose data is the task (without args and traceback), and a "
            "comment line as keep-alive.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
    errors=(422, 500),
)
async def events(
    request: Request,
    id: list[str] | None = Query(None, description="Only these tasks"),  # noqa: B008
    task: str | None = Query(None, description="Only this task function"),
    queue: str | None = Query(None, description="Only this queue"),
) -> StreamingResponse:
    api = get_api(request)
    ids = None if id is None else [_event_id(index, value) for index, value in enumerate(id)]
    return StreamingResponse(
        api.hub.subscribe(ids=ids, task=task, queue=queue, keepalive=api.keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@HEALTH.route("GET", "/health/live", summary="The process is up", response_model=HealthOut)
async def live() -> Response:
    return JSONResponse({"status": "ok"})


@HEALTH.route(
    "GET",
    "/health/ready",
    summary="The store is reachable and the worker (if any) is running",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Not ready, with the reason"}},
)
async def ready(request: Request) -> Response:
    api = get_api(request)
    reason = await api.not_ready()
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok"})


@HEALTH.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    api = get_api(request)
    return Response(await api.render_metrics(), media_type=CONTENT_TYPE)
