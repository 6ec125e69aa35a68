"""The HTTP routes, one module per resource, each route a plain function of its module.

- `tasks`: ``/api/tasks...`` (submit, batch, list, get, cancel, retry), ``/api/task-types``
- `schedules`: ``/api/schedules...``
- `monitoring`: ``/api/stats``, ``/api/events``, ``/health/...``, ``/metrics``
- `base`: what they share (the `get_api` dependency, error responses, `Routes` tables)

`build_router` puts them all on one router for one `TaskwardAPI`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from taskward.api.auth import bearer_guard
from taskward.api.routes import monitoring, schedules, tasks
from taskward.api.routes.base import ApiRoute

if TYPE_CHECKING:
    from taskward.api.service import TaskwardAPI

__all__ = ["build_router"]


def build_router(api: TaskwardAPI) -> APIRouter:
    """The API's routes, for one `TaskwardAPI` (which `get_api` gives each route function)."""
    # One flat router (no nested ones): routing through nested routers costs every request.
    router = APIRouter(route_class=ApiRoute.for_api(api))
    guard = [Depends(bearer_guard(api.token))] if api.token else []
    # In this order: it is the order of the OpenAPI paths.
    for table in (tasks.ROUTES, monitoring.STATS, schedules.ROUTES, monitoring.HEALTH):
        table.add_to(router, guard)
    return router
