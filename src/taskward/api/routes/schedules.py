"""``/api/schedules...``: list, create, get, delete, pause and resume durable schedules.

A schedule body is read like a submit body (strict JSON, then pydantic's strict types); a
schedule the `Schedule` or the app refuses is a 422 at the field its `InvalidArgumentsError`
names. A name in the path that no store could hold is a 422 too, not a 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pydantic
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from taskward.api.errors import InvalidRequestError, clean_validation_errors
from taskward.api.routes.base import Routes, check_strict, get_api
from taskward.api.schemas import ScheduleOut, ScheduleRequest
from taskward.errors import InvalidArgumentsError, UnknownScheduleError, UnknownTaskError
from taskward.options import check_text
from taskward.scheduler import Schedule, ScheduleInfo

if TYPE_CHECKING:
    from taskward.app import App

__all__ = ["ROUTES"]

ROUTES = Routes(
    tag="schedules",
    descriptions={404: "No schedule with this name", 409: "A schedule with this name exists"},
)

_SCHEDULE = pydantic.TypeAdapter(ScheduleRequest)


def _new_schedule(app: App, body: bytes) -> Schedule:
    check_strict(body)
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
        app.check_schedule(schedule)
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


@ROUTES.route(
    "GET",
    "/schedules",
    summary="Durable schedules, by name",
    response_model=list[ScheduleOut],
    errors=(500, 503),
)
async def list_schedules(request: Request) -> Response:
    api = get_api(request)
    return JSONResponse([_schedule_json(api.app, i) for i in await api.app.list_schedules()])


@ROUTES.route(
    "POST",
    "/schedules",
    status_code=201,
    summary="Create a schedule: its task is submitted once per tick",
    response_model=ScheduleOut,
    errors=(409, 413, 422, 500, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ScheduleRequest.model_json_schema()}},
        }
    },
)
async def create_schedule(request: Request) -> Response:
    api = get_api(request)
    schedule = _new_schedule(api.app, await request.body())
    info = await api.app.add_schedule(schedule)
    return JSONResponse(
        _schedule_json(api.app, info),
        status_code=201,
        headers={"Location": f"{request.scope['path'].rstrip('/')}/{quote(schedule.name)}"},
    )


@ROUTES.route(
    "GET",
    "/schedules/{name}",
    summary="One schedule",
    response_model=ScheduleOut,
    errors=(404, 422, 500, 503),
)
async def get_schedule(name: str, request: Request) -> Response:
    api = get_api(request)
    info = await api.app.get_schedule(_schedule_name(name))
    if info is None:
        raise UnknownScheduleError(f"no schedule named {name[:100]!r}")
    return _schedule_response(api.app, info)


@ROUTES.route(
    "DELETE",
    "/schedules/{name}",
    status_code=204,
    summary="Delete a schedule (the tasks it submitted stay)",
    response_class=Response,
    responses={204: {"description": "Deleted"}},
    errors=(404, 422, 500, 503),
)
async def delete_schedule(name: str, request: Request) -> Response:
    api = get_api(request)
    await api.app.remove_schedule(_schedule_name(name))
    return Response(status_code=204)


@ROUTES.route(
    "POST",
    "/schedules/{name}/pause",
    summary="Stop firing a schedule until it is resumed",
    response_model=ScheduleOut,
    errors=(404, 422, 500, 503),
)
async def pause_schedule(name: str, request: Request) -> Response:
    api = get_api(request)
    return _schedule_response(api.app, await api.app.pause_schedule(_schedule_name(name)))


@ROUTES.route(
    "POST",
    "/schedules/{name}/resume",
    summary="Fire a paused schedule again, from its next tick (missed ticks are skipped)",
    response_model=ScheduleOut,
    errors=(404, 422, 500, 503),
)
async def resume_schedule(name: str, request: Request) -> Response:
    api = get_api(request)
    return _schedule_response(api.app, await api.app.resume_schedule(_schedule_name(name)))
