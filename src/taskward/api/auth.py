"""Bearer-token protection of the ``/api`` routes.

With a token configured (``TASKWARD_API_TOKEN``), every ``/api`` request needs
``Authorization: Bearer <token>``; a missing, malformed or wrong one gets 401 with
``WWW-Authenticate: Bearer``. The comparison takes the same time whatever the guess, so the
token cannot be found a byte at a time. Health and metrics stay open for probes and scrapers;
they show no task data beyond counts.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskward.api.errors import ApiError

__all__ = ["TOKEN_ENV", "bearer_guard", "token_from_env"]

TOKEN_ENV = "TASKWARD_API_TOKEN"

_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description=f"The token in {TOKEN_ENV}, as `Authorization: Bearer <token>`.",
)


def token_from_env() -> str | None:
    """The configured token, or None when ``TASKWARD_API_TOKEN`` is unset or empty."""
    return os.environ.get(TOKEN_ENV) or None


def bearer_guard(token: str) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that lets through only requests bearing ``token``."""
    expected = token.encode()

    async def guard(
        credentials: HTTPAuthorizationCredentials | None = Security(_scheme),  # noqa: B008
    ) -> None:
        given = b"" if credentials is None else credentials.credentials.encode()
        # compare_digest on the whole value: its time does not depend on where they differ.
        if not hmac.compare_digest(given, expected):
            raise ApiError(
                401,
                "missing or wrong API token: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard
