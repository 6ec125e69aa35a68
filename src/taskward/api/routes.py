"""The routes: ``/api/...`` (tasks, task types, stats, events), ``/health/...`` and ``/metrics``.

Submit and schedule bodies are read here from the raw bytes, not by FastAPI's body
machinery: first as strict JSON (`parse_strict_json`: NaN, Infinity, a repeated key or
nesting deeper than 64 levels is a 422 naming the place), then by pydantic (strict types).
``POST /api/tasks`` takes one task or, like the batch route, a list of them, and every error
names its field as ``["body", <index>, "<field>"]``.
Responses are built from `TaskInfo.to_json` directly, secret arguments shown as ``"***"``
(`taskward.redact`); the OpenAPI schema declares each one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import pydantic
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from taskward.api.auth import bearer_guard
from taskward.api.errors import ApiError, ErrorRoute, InvalidRequestError, clean_validation_errors
from taskward.api.metrics import CONTENT_TYPE
from taskward.api.schemas import (
    MAX_BATCH,
    ErrorBody,
    HealthOut,
    ScheduleOut,
    ScheduleRequest,
    StatsOut,
    SubmitRequest,
    SubmitResponse,
    TaskOut,
    TaskPage,
    TaskTypeOut,
    ValidationErrorBody,
)
from taskward.errors import (
    InvalidArgumentsError,
    InvalidJSONError,
    UnknownScheduleError,
    UnknownTaskError,
)
from taskward.models import Status, TaskInfo
from taskward.options import check_text
from taskward.scheduler import Schedule, ScheduleInfo
from taskward.stores.base import NewTask
from taskward.strictjson import parse_strict_json

if TYPE_CHECKING:
    from taskward.api.service import TaskwardAPI
    from taskward.app import App

__all__ = ["build_router"]

MAX_PAGE = 100

_F = TypeVar("_F", bound=Callable[..., Any])

_SCHEDULE = pydantic.TypeAdapter(ScheduleRequest)
_ONE = pydantic.TypeAdapter(SubmitRequest)
_MANY = pydantic.TypeAdapter(list[SubmitRequest])

_DESCRIPTIONS = {
    401: "Missing or wrong bearer token",
    404: "No task with this id",
    409: "Conflict with the task's state or an active task's name",
    413: "Request body too large",
    422: "Invalid request; each problem names its field. A body must be strict JSON: "
    "NaN, Infinity, a key repeated in an object or nesting deeper than 64 levels is refused "
    "(type json_invalid), as is text a store cannot hold (a NUL character, a lone surrogate)",
    500: "Internal error (never with details)",
    503: "The task store is unavailable",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = ValidationErrorBody if code == 422 else ErrorBody
        out[code] = {"model": model, "description": _DESCRIPTIONS[code]}
    return out


def _submit_body_schema() -> dict[str, Any]:
    one = SubmitRequest.model_json_schema()
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [one, {"type": "array", "items": one, "maxItems": MAX_BATCH}],
                }
            }
        },
    }


def _batch_body_schema() -> dict[str, Any]:
    one = SubmitRequest.model_json_schema()
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": one, "maxItems": MAX_BATCH}}
        },
    }


def _check_strict(body: bytes) -> None:
    """A 422 naming the problem and where it is, unless the body is strict JSON."""
    try:
        parse_strict_json(body)
    except InvalidJSONError as exc:
        raise InvalidRequestError([(["body", *exc.path], exc.problem, "json_invalid")]) from None


def _parse(body: bytes, batch: bool) -> list[SubmitRequest]:
    _check_strict(body)
    try:
        # pydantic reads the text again: strict types from JSON (a datetime from a string).
        items = _MANY.validate_json(body) if batch else [_ONE.validate_json(body)]
    except pydantic.ValidationError as exc:
        problems = clean_validation_errors(exc.errors(include_url=False, include_input=False))
        raise InvalidRequestError(
            [(["body", *loc], msg, kind) for loc, msg, kind in problems]
        ) from None
    if len(items) > MAX_BATCH:
        raise InvalidRequestError(
            [(["body"], f"at most {MAX_BATCH} tasks in one batch", "too_long")]
        )
    return items


def _prepare(api: TaskwardAPI, items: Sequence[SubmitRequest], batch: bool) -> list[NewTask]:
    news: list[NewTask] = []
    problems: list[tuple[list[str | int], str, str]] = []
    for index, item in enumerate(items):
        where: list[str | int] = ["body", index] if batch else ["body"]
        try:
            news.append(api.app.prepare(item.task, item.args, item.options()))
        except UnknownTaskError as exc:
            problems.append(([*where, "task"], str(exc), "unknown_task"))
        except InvalidArgumentsError as exc:
            loc = [*where, exc.field] if exc.field else where
            problems.append((loc, str(exc), "value_error"))
    if problems:
        raise InvalidRequestError(problems)
    return news


def _schedule_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    out = _responses(*codes)
    if 404 in out:
        out[404] = {"model": ErrorBody, "description": "No schedule with this name"}
    if 409 in out:
        out[409] = {"model": ErrorBody, "description": "A schedule with this name exists"}
    return out


def _new_schedule(api: TaskwardAPI, body: bytes) -> Schedule:
    _check_strict(body)
    try:
        request = _SCHEDULE.validate_json(body)
    except pydantic.ValidationError as exc:
        problems = clean_validation_errors(exc.errors(include_url=False, include_input=False))
        raise InvalidRequestError(
            [(["body", *loc], msg, kind) for loc, msg, kind in problems]
        ) from None
    try:
        schedule = Schedule(
            name=request.name,
            task=request.task,
            args=request.args or {},
            every=request.every,
            cron=request.cron,
            timezone=request.timezone,
            catch_up=request.catch_up,
            max_instances=request.max_instances,
        )
        api.app.check_schedule(schedule)
    except UnknownTaskError as exc:
        raise InvalidRequestError([(["body", "task"], str(exc), "unknown_task")]) from None
    except InvalidArgumentsError as exc:
        loc: list[str | int] = ["body", exc.field] if exc.field else ["body"]
        raise InvalidRequestError([(loc, str(exc), "value_error")]) from None
    return schedule


def _schedule_json(app: App, info: ScheduleInfo) -> dict[str, Any]:
    return info.to_json(app.secrets(info.schedule.task))


def _schedule_name(name: str) -> str:
    """A schedule name from the path, or a 422 if no store could hold it."""
    try:
        return check_text("schedule name", name)
    except InvalidArgumentsError as exc:
        raise InvalidRequestError([(["path", "name"], str(exc), "value_error")]) from None


def _schedule_response(app: App, info: ScheduleInfo, status_code: int = 200) -> Response:
    return JSONResponse(_schedule_json(app, info), status_code=status_code)


def _task_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ApiError(404, f"no task with id {value[:100]!r}") from None


def _event_id(index: int, value: str) -> str:
    """A task id of the events filter, in the form events carry; 422 if malformed (a stream
    filtered by a malformed id would never send anything)."""
    try:
        return str(UUID(value))
    except ValueError:
        raise InvalidRequestError(
            [(["query", "id", index], f"{value[:100]!r} is not a task id (a UUID)", "uuid_parsing")]
        ) from None


def _task_json(app: App, info: TaskInfo) -> dict[str, Any]:
    """A task as the API shows it: secret arguments as "***" (by type and by name)."""
    return info.to_json(app.secrets(info.task))


def _task_response(app: App, info: TaskInfo, status_code: int = 200) -> Response:
    return JSONResponse(_task_json(app, info), status_code=status_code)


def build_router(api: TaskwardAPI) -> APIRouter:
    """The API's routes, bound to one `TaskwardAPI`."""
    router = APIRouter(route_class=ErrorRoute)
    guard = [Depends(bearer_guard(api.token))] if api.token else []
    auth = (401,) if api.token else ()

    # One flat router (no nested ones): routing through nested routers costs every request.
    def route(method: str, path: str, **options: Any) -> Callable[[_F], _F]:
        return router.api_route(
            f"/api{path}", methods=[method], dependencies=guard, tags=["tasks"], **options
        )

    async def submit(items: list[SubmitRequest], batch: bool) -> list[TaskInfo]:
        infos = await api.submitter.submit(_prepare(api, items, batch))
        api.submitted(infos)
        return infos

    @route(
        "POST",
        "/tasks",
        status_code=202,
        summary="Submit a task (or a list of tasks, as the batch route)",
        response_model=None,
        responses={
            202: {
                "description": "Submitted; the task's URL is in Location. "
                "A list body gets the list of ids, in order.",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                SubmitResponse.model_json_schema(),
                                {"type": "array", "items": {"type": "string", "format": "uuid"}},
                            ]
                        }
                    }
                },
            },
            **_responses(*auth, 409, 413, 422, 500, 503),
        },
        openapi_extra={"requestBody": _submit_body_schema()},
    )
    async def submit_task(request: Request) -> Response:
        body = await request.body()
        if body.lstrip()[:1] == b"[":
            infos = await submit(_parse(body, batch=True), batch=True)
            return JSONResponse([str(i.id) for i in infos], status_code=202)
        (info,) = await submit(_parse(body, batch=False), batch=False)
        return JSONResponse(
            {"task_id": str(info.id)},
            status_code=202,
            headers={"Location": f"{request.scope['path'].rstrip('/')}/{info.id}"},
        )

    @route(
        "POST",
        "/tasks/batch",
        status_code=202,
        summary="Submit tasks, all or nothing",
        response_model=None,
        responses={
            202: {
                "description": "The new tasks' ids, in request order",
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": {"type": "string", "format": "uuid"}}
                    }
                },
            },
            **_responses(*auth, 409, 413, 422, 500, 503),
        },
        openapi_extra={"requestBody": _batch_body_schema()},
    )
    async def submit_batch(request: Request) -> Response:
        infos = await submit(_parse(await request.body(), batch=True), batch=True)
        return JSONResponse([str(i.id) for i in infos], status_code=202)

    @route(
        "GET",
        "/tasks",
        summary="List tasks, newest first",
        response_model=TaskPage,
        responses=_responses(*auth, 422, 500, 503),
    )
    async def list_tasks(
        status: list[Status] | None = Query(None),  # noqa: B008
        task: str | None = Query(None, max_length=200),
        queue: str | None = Query(None, max_length=200),
        name: str | None = Query(None, max_length=200),
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        cursor: str | None = Query(None, max_length=200),
    ) -> Response:
        try:
            items, next_cursor = await api.app.list(
                status=status, task=task, queue=queue, name=name, limit=limit, cursor=cursor
            )
        except InvalidArgumentsError as exc:
            loc: list[str | int] = ["query", exc.field] if exc.field else ["query"]
            raise InvalidRequestError([(loc, str(exc), "value_error")]) from None
        return JSONResponse(
            {"items": [_task_json(api.app, i) for i in items], "cursor": next_cursor}
        )

    @route(
        "GET",
        "/tasks/{task_id}",
        summary="One task",
        response_model=TaskOut,
        responses=_responses(*auth, 404, 500, 503),
    )
    async def get_task(task_id: str) -> Response:
        info = await api.app.get(_task_id(task_id))
        if info is None:
            raise ApiError(404, f"no task with id {task_id}")
        return _task_response(api.app, info)

    @route(
        "POST",
        "/tasks/{task_id}/cancel",
        status_code=202,
        summary="Cancel: Pending at once, Running within about a second",
        response_model=TaskOut,
        responses=_responses(*auth, 404, 409, 500, 503),
    )
    async def cancel_task(task_id: str) -> Response:
        info = await api.app.cancel(_task_id(task_id))
        if info.status in (Status.COMPLETED, Status.FAILED):
            raise ApiError(409, f"task {task_id} had already ended {info.status.value}")
        api.hub.observe(info)
        return _task_response(api.app, info, 202)

    @route(
        "POST",
        "/tasks/{task_id}/retry",
        status_code=202,
        summary="Run a Failed or Cancelled task again",
        response_model=TaskOut,
        responses=_responses(*auth, 404, 409, 500, 503),
    )
    async def retry_task(task_id: str) -> Response:
        info = await api.app.retry(_task_id(task_id))
        api.hub.observe(info)
        return _task_response(api.app, info, 202)

    @route(
        "GET",
        "/task-types",
        summary="Task functions, with their arguments' JSON Schema",
        response_model=list[TaskTypeOut],
        responses=_responses(*auth, 500),
    )
    async def task_types() -> Response:
        return JSONResponse(api.app.task_types())

    @route(
        "GET",
        "/stats",
        summary="Counts by status and queue, workers, recent throughput",
        response_model=StatsOut,
        responses=_responses(*auth, 500, 503),
    )
    async def stats() -> Response:
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

    @route(
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
            **_responses(*auth, 422, 500),
        },
    )
    async def events(
        id: list[str] | None = Query(None, description="Only these tasks"),  # noqa: B008
        task: str | None = Query(None, description="Only this task function"),
        queue: str | None = Query(None, description="Only this queue"),
    ) -> StreamingResponse:
        ids = None if id is None else [_event_id(index, value) for index, value in enumerate(id)]
        return StreamingResponse(
            api.hub.subscribe(ids=ids, task=task, queue=queue, keepalive=api.keepalive),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def schedule_route(method: str, path: str, **options: Any) -> Callable[[_F], _F]:
        return router.api_route(
            f"/api{path}", methods=[method], dependencies=guard, tags=["schedules"], **options
        )

    @schedule_route(
        "GET",
        "/schedules",
        summary="Durable schedules, by name",
        response_model=list[ScheduleOut],
        responses=_responses(*auth, 500, 503),
    )
    async def list_schedules() -> Response:
        return JSONResponse([_schedule_json(api.app, i) for i in await api.app.list_schedules()])

    @schedule_route(
        "POST",
        "/schedules",
        status_code=201,
        summary="Create a schedule: its task is submitted once per tick",
        response_model=ScheduleOut,
        responses=_schedule_responses(*auth, 409, 413, 422, 500, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ScheduleRequest.model_json_schema()}},
            }
        },
    )
    async def create_schedule(request: Request) -> Response:
        schedule = _new_schedule(api, await request.body())
        info = await api.app.add_schedule(schedule)
        return JSONResponse(
            _schedule_json(api.app, info),
            status_code=201,
            headers={"Location": f"{request.scope['path'].rstrip('/')}/{quote(schedule.name)}"},
        )

    @schedule_route(
        "GET",
        "/schedules/{name}",
        summary="One schedule",
        response_model=ScheduleOut,
        responses=_schedule_responses(*auth, 404, 422, 500, 503),
    )
    async def get_schedule(name: str) -> Response:
        info = await api.app.get_schedule(_schedule_name(name))
        if info is None:
            raise UnknownScheduleError(f"no schedule named {name[:100]!r}")
        return _schedule_response(api.app, info)

    @schedule_route(
        "DELETE",
        "/schedules/{name}",
        status_code=204,
        summary="Delete a schedule (the tasks it submitted stay)",
        response_class=Response,
        responses={
            204: {"description": "Deleted"},
            **_schedule_responses(*auth, 404, 422, 500, 503),
        },
    )
    async def delete_schedule(name: str) -> Response:
        await api.app.remove_schedule(_schedule_name(name))
        return Response(status_code=204)

    @schedule_route(
        "POST",
        "/schedules/{name}/pause",
        summary="Stop firing a schedule until it is resumed",
        response_model=ScheduleOut,
        responses=_schedule_responses(*auth, 404, 422, 500, 503),
    )
    async def pause_schedule(name: str) -> Response:
        return _schedule_response(api.app, await api.app.pause_schedule(_schedule_name(name)))

    @schedule_route(
        "POST",
        "/schedules/{name}/resume",
        summary="Fire a paused schedule again, from its next tick (missed ticks are skipped)",
        response_model=ScheduleOut,
        responses=_schedule_responses(*auth, 404, 422, 500, 503),
    )
    async def resume_schedule(name: str) -> Response:
        return _schedule_response(api.app, await api.app.resume_schedule(_schedule_name(name)))

    @router.get(
        "/health/live", summary="The process is up", response_model=HealthOut, tags=["health"]
    )
    async def live() -> Response:
        return JSONResponse({"status": "ok"})

    @router.get(
        "/health/ready",
        tags=["health"],
        summary="The store is reachable and the worker (if any) is running",
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "Not ready, with the reason"}},
    )
    async def ready() -> Response:
        reason = await api.not_ready()
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(await api.render_metrics(), media_type=CONTENT_TYPE)

    return router
