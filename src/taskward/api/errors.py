"""How the API turns failures into JSON error bodies, and never into a traceback.

The mapping lives in `ErrorRoute`, the route class of taskward's router, so that the routes
keep their error bodies when the router is included in someone else's FastAPI app (whose
own exception handlers are left alone). ``create_api`` adds the same for the whole app:
unknown paths, wrong methods and any error raised outside a route.

- `ApiError`: its status, ``{"detail": "..."}``.
- a request that does not validate (`InvalidRequestError`, FastAPI's own): 422,
  ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` (never the input itself).
- `UnknownTaskError`: 404. `DuplicateNameError`, `InvalidTransitionError`: 409.
  `InvalidArgumentsError`: 422.
- `StoreError`, `ClosedError`: 503, with no detail from the store (it may hold SQL or paths).
- anything else: 500 ``{"detail": "internal server error"}``, logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from taskward.errors import (
    ClosedError,
    DuplicateNameError,
    InvalidArgumentsError,
    InvalidTransitionError,
    StoreError,
    UnknownTaskError,
)

__all__ = [
    "ApiError",
    "ErrorRoute",
    "InvalidRequestError",
    "error_response",
    "to_response",
    "validation_response",
]

logger = logging.getLogger("taskward.api")

INTERNAL = "internal server error"
STORE_DOWN = "the task store is unavailable; try again shortly"


class ApiError(Exception):
    """An error with an HTTP status and a message fit for the client."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class InvalidRequestError(Exception):
    """422 for one or more fields: ``[(loc, msg, type), ...]``."""

    def __init__(self, problems: Sequence[tuple[Sequence[str | int], str, str]]) -> None:
        super().__init__("; ".join(msg for _, msg, _ in problems))
        self.problems = problems


def error_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON error body: ``{"detail": "..."}``."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def validation_response(problems: Sequence[tuple[Sequence[str | int], str, str]]) -> Response:
    """A 422 body naming each field."""
    detail = [{"loc": list(loc), "msg": msg, "type": kind} for loc, msg, kind in problems]
    return JSONResponse({"detail": detail}, status_code=422)


def clean_validation_errors(errors: Sequence[Any]) -> list[tuple[list[str | int], str, str]]:
    """Pydantic/FastAPI error items without their ``input`` and ``ctx`` (which may hold secrets)."""
    out: list[tuple[list[str | int], str, str]] = []
    for item in errors:
        loc = [part if isinstance(part, int) else str(part) for part in item.get("loc", ())]
        out.append((loc, str(item.get("msg", "invalid")), str(item.get("type", "value_error"))))
    return out


def to_response(exc: Exception) -> Response:
    """The response for an exception raised while handling a request."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.detail, exc.headers)
    if isinstance(exc, InvalidRequestError):
        return validation_response(exc.problems)
    if isinstance(exc, RequestValidationError):
        return validation_response(clean_validation_errors(exc.errors()))
    if isinstance(exc, UnknownTaskError):
        return error_response(404, str(exc))
    if isinstance(exc, DuplicateNameError | InvalidTransitionError):
        return error_response(409, str(exc))
    if isinstance(exc, InvalidArgumentsError):
        return validation_response([(["body"], str(exc), "value_error")])
    if isinstance(exc, StoreError | ClosedError):
        logger.warning("store error while handling a request: %s", exc)
        return error_response(503, STORE_DOWN)
    logger.error("unexpected error while handling a request", exc_info=exc)
    return error_response(500, INTERNAL)


class ErrorRoute(APIRoute):
    """A route that answers every failure with one of the JSON bodies above."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException:
                raise  # Starlette's own (405 and the like): the app's handler answers
            except Exception as exc:
                return to_response(exc)

        return handle
