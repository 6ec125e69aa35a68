"""What every route module shares: `get_api`, error responses, the `Routes` tables.

A route is a plain function of its module, declared with a `Routes` table where it is
written; `Routes.add_to` puts the table's routes on one API's router (with the token guard
and the 401 response when a token is set). The function finds its `TaskwardAPI` with
``get_api(request)``, never in a closure.

`get_api` is a plain call rather than a FastAPI dependency (``Depends(get_api)``): FastAPI
solves a dependency on every request, and that cost about 10 µs a request (measured
in-process: ``GET /api/tasks/{id}`` 100 -> 110 µs, ``POST /api/tasks`` 132 -> 142 µs),
for the same answer every time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from fastapi import APIRouter, Request
from fastapi.params import Depends as DependsParam

from taskward.api.errors import ErrorRoute, InvalidRequestError
from taskward.api.schemas import ErrorBody, ValidationErrorBody
from taskward.errors import InvalidJSONError
from taskward.strictjson import parse_strict_json

if TYPE_CHECKING:
    from taskward.api.service import TaskwardAPI

__all__ = ["ApiRoute", "Routes", "check_strict", "error_responses", "get_api"]

_F = TypeVar("_F", bound=Callable[..., Any])

DESCRIPTIONS = {
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


class ApiRoute(ErrorRoute):
    """A route of one `TaskwardAPI`'s router: `get_api` finds that API on it.

    Each API has its own subclass (`for_api`), with the API as a class attribute: a class,
    not an attribute of each route, because ``include_router`` may copy the routes (older
    FastAPI releases do), and a copy keeps its class. Several APIs may share one host app.
    """

    api: ClassVar[TaskwardAPI]

    @classmethod
    def for_api(cls, api: TaskwardAPI) -> type[ApiRoute]:
        """The route class of ``api``'s router."""
        return type(cls.__name__, (cls,), {"api": api})


def get_api(request: Request) -> TaskwardAPI:
    """The `TaskwardAPI` whose route took this request.

    FastAPI puts the route a request matched in its scope (``scope["route"]``).
    """
    route: ApiRoute = request.scope["route"]
    return route.api


def error_responses(
    *codes: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of these error codes, each with its body model."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = ValidationErrorBody if code == 422 else ErrorBody
        description = (descriptions or {}).get(code) or DESCRIPTIONS[code]
        out[code] = {"model": model, "description": description}
    return out


def check_strict(body: bytes) -> None:
    """A 422 naming the problem and where it is, unless the body is strict JSON."""
    try:
        parse_strict_json(body)
    except InvalidJSONError as exc:
        raise InvalidRequestError([(["body", *exc.path], exc.problem, "json_invalid")]) from None


@dataclass(frozen=True, slots=True)
class _Declared:
    method: str
    path: str
    endpoint: Callable[..., Any]
    errors: tuple[int, ...]
    responses: Mapping[int | str, dict[str, Any]]
    options: Mapping[str, Any]


class Routes:
    """The routes of one resource: declared with `route`, added to a router with `add_to`.

    ``prefix`` starts every path; ``guarded`` routes need the API token when one is set
    (and so may answer 401); ``descriptions`` words an error code for this resource.
    """

    def __init__(
        self,
        *,
        tag: str,
        prefix: str = "/api",
        guarded: bool = True,
        descriptions: Mapping[int, str] | None = None,
    ) -> None:
        self.tag = tag
        self.prefix = prefix
        self.guarded = guarded
        self.descriptions = dict(descriptions or {})
        self._routes: list[_Declared] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        errors: Sequence[int] = (),
        responses: Mapping[int | str, dict[str, Any]] | None = None,
        **options: Any,
    ) -> Callable[[_F], _F]:
        """Declare the decorated function as ``method path``; ``errors``: the error codes it
        may answer (401 is added when guarded by a token); ``options`` go to FastAPI."""

        def declare(endpoint: _F) -> _F:
            self._routes.append(
                _Declared(method, path, endpoint, tuple(errors), responses or {}, options)
            )
            return endpoint

        return declare

    def add_to(self, router: APIRouter, guard: Sequence[DependsParam]) -> None:
        """Add the routes to ``router``; ``guard``: the token check (empty: no token)."""
        dependencies = list(guard) if self.guarded else []
        auth = (401,) if dependencies else ()
        for route in self._routes:
            responses = {
                **route.responses,
                **error_responses(*auth, *route.errors, descriptions=self.descriptions),
            }
            router.add_api_route(
                f"{self.prefix}{route.path}",
                route.endpoint,
                methods=[route.method],
                dependencies=dependencies,
                tags=[self.tag],
                responses=responses,
                **route.options,
            )
