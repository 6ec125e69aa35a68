"""``/api/tasks...`` and ``/api/task-types``: submit, list, get, cancel and retry tasks.

Submit bodies are read here from the raw bytes, not by FastAPI's body machinery: first as
strict JSON (`parse_strict_json`: NaN, Infinity, a repeated key or nesting deeper than 64
levels is a 422 naming the place), then by pydantic (strict types). ``POST /api/tasks``
takes one task or, like the batch route, a list of them, and every error names its field
as ``["body", <index>, "<field>"]``: the field an `InvalidArgumentsError` carries.
Responses are built from `TaskInfo.to_json` directly, secret arguments shown as ``"***"``
(`taskward.redact`); the OpenAPI schema declares each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pydantic
from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from taskward.api.errors import ApiError, InvalidRequestError, clean_validation_errors
from taskward.api.routes.base import Routes, check_strict, get_api
from taskward.api.schemas import (
    MAX_BATCH,
    SubmitRequest,
    SubmitResponse,
    TaskOut,
    TaskPage,
    TaskTypeOut,
)
from taskward.errors import InvalidArgumentsError, UnknownTaskError
from taskward.models import Status, TaskInfo
from taskward.stores.base import NewTask

if TYPE_CHECKING:
    from taskward.api.service import TaskwardAPI
    from taskward.app import App

__all__ = ["ROUTES"]

MAX_PAGE = 100

ROUTES = Routes(tag="tasks")

_ONE = pydantic.TypeAdapter(SubmitRequest)
_MANY = pydantic.TypeAdapter(list[SubmitRequest])
_IDS = {"type": "array", "items": {"type": "string", "format": "uuid"}}
# Read by the global OpenTelemetry propagator when tracing is on (docs/observability.md).
_TRACEPARENT = {
    "name": "traceparent",
    "in": "header",
    "required": False,
    "description": "W3C trace context the tasks' send spans continue (ignored when malformed)",
    "schema": {"type": "string"},
}


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


def _parse(body: bytes, batch: bool) -> list[SubmitRequest]:
    check_strict(body)
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


def _prepare(app: App, items: Sequence[SubmitRequest], batch: bool) -> list[NewTask]:
    news: list[NewTask] = []
    problems: list[tuple[list[str | int], str, str]] = []
    for index, item in enumerate(items):
        where: list[str | int] = ["body", index] if batch else ["body"]
        try:
            news.append(app.prepare(item.task, item.args, item.options()))
        except UnknownTaskError as exc:
            problems.append(([*where, "task"], str(exc), "unknown_task"))
        except InvalidArgumentsError as exc:
            loc = [*where, exc.field] if exc.field else where
            problems.append((loc, str(exc), "value_error"))
    if problems:
        raise InvalidRequestError(problems)
    return news


async def _submit(
    api: TaskwardAPI, request: Request, items: list[SubmitRequest], batch: bool
) -> list[TaskInfo]:
    news = _prepare(api.app, items, batch)
    tracing = api.app._tracing
    if tracing is not None:
        # The request's trace (its traceparent header, or the current span) is the parent
        # of each task's send span: the submitter may insert them beside other requests'.
        news = tracing.continue_headers(news, request.headers)
    infos = await api.submitter.submit(news)
    api.submitted(infos)
    return infos


def _task_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ApiError(404, f"no task with id {value[:100]!r}") from None


def _task_json(app: App, info: TaskInfo) -> dict[str, Any]:
    """A task as the API shows it: secret arguments as "***" (by type and by name)."""
    return info.to_json(app.secrets(info.task))


def _task_response(app: App, info: TaskInfo, status_code: int = 200) -> Response:
    return JSONResponse(_task_json(app, info), status_code=status_code)


@ROUTES.route(
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
                    "schema": {"oneOf": [SubmitResponse.model_json_schema(), _IDS]}
                }
            },
        },
    },
    errors=(409, 413, 422, 500, 503),
    openapi_extra={"requestBody": _submit_body_schema(), "parameters": [_TRACEPARENT]},
)
async def submit_task(request: Request) -> Response:
    api = get_api(request)
    body = await request.body()
    if body.lstrip()[:1] == b"[":
        infos = await _submit(api, request, _parse(body, batch=True), batch=True)
        return JSONResponse([str(i.id) for i in infos], status_code=202)
    (info,) = await _submit(api, request, _parse(body, batch=False), batch=False)
    return JSONResponse(
        {"task_id": str(info.id)},
        status_code=202,
        headers={"Location": f"{request.scope['path'].rstrip('/')}/{info.id}"},
    )


@ROUTES.route(
    "POST",
    "/tasks/batch",
    status_code=202,
    summary="Submit tasks, all or nothing",
    response_model=None,
    responses={
        202: {
            "description": "The new tasks' ids, in request order",
            "content": {"application/json": {"schema": _IDS}},
        },
    },
    errors=(409, 413, 422, 500, 503),
    openapi_extra={"requestBody": _batch_body_schema(), "parameters": [_TRACEPARENT]},
)
async def submit_batch(request: Request) -> Response:
    api = get_api(request)
    infos = await _submit(api, request, _parse(await request.body(), batch=True), batch=True)
    return JSONResponse([str(i.id) for i in infos], status_code=202)


@ROUTES.route(
    "GET",
    "/tasks",
    summary="List tasks, newest first",
    response_model=TaskPage,
    errors=(422, 500, 503),
)
async def list_tasks(
    request: Request,
    status: list[Status] | None = Query(None),  # noqa: B008
    task: str | None = Query(None, max_length=200),
    queue: str | None = Query(None, max_length=200),
    name: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=200),
) -> Response:
    api = get_api(request)
    try:
        items, next_cursor = await api.app.list(
            status=status, task=task, queue=queue, name=name, limit=limit, cursor=cursor
        )
    except InvalidArgumentsError as exc:
        loc: list[str | int] = ["query", exc.field] if exc.field else ["query"]
        raise InvalidRequestError([(loc, str(exc), "value_error")]) from None
    return JSONResponse({"items": [_task_json(api.app, i) for i in items], "cursor": next_cursor})


@ROUTES.route(
    "GET",
    "/tasks/{task_id}",
    summary="One task",
    response_model=TaskOut,
    errors=(404, 500, 503),
)
async def get_task(task_id: str, request: Request) -> Response:
    api = get_api(request)
    info = await api.app.get(_task_id(task_id))
    if info is None:
        raise ApiError(404, f"no task with id {task_id}")
    return _task_response(api.app, info)


@ROUTES.route(
    "POST",
    "/tasks/{task_id}/cancel",
    status_code=202,
    summary="Cancel: Pending at once, Running within about a second",
    response_model=TaskOut,
    errors=(404, 409, 500, 503),
)
async def cancel_task(task_id: str, request: Request) -> Response:
    api = get_api(request)
    info = await api.app.cancel(_task_id(task_id))
    if info.status in (Status.COMPLETED, Status.FAILED):
        raise ApiError(409, f"task {task_id} had already ended {info.status.value}")
    api.hub.observe(info)
    return _task_response(api.app, info, 202)


@ROUTES.route(
    "POST",
    "/tasks/{task_id}/retry",
    status_code=202,
    summary="Run a Failed or Cancelled task again",
    response_model=TaskOut,
    errors=(404, 409, 500, 503),
)
async def retry_task(task_id: str, request: Request) -> Response:
    api = get_api(request)
    info = await api.app.retry(_task_id(task_id))
    api.hub.observe(info)
    return _task_response(api.app, info, 202)


@ROUTES.route(
    "GET",
    "/task-types",
    summary="Task functions, with their arguments' JSON Schema",
    response_model=list[TaskTypeOut],
    errors=(500,),
)
async def task_types(request: Request) -> Response:
    api = get_api(request)
    return JSONResponse(api.app.task_types())
