"""Fixtures for the HTTP API tests: an app on a memory store and a client on its API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_helpers import fast_worker, make_app, running

from taskward.api import TaskwardAPI
from taskward.api.auth import TOKEN_ENV
from taskward.app import App


@pytest.fixture(autouse=True)
def _no_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own TASKWARD_API_TOKEN must not leak into tests."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def app() -> App:
    return make_app()


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the API of ``app``, without a worker (tasks stay Pending)."""
    async with running(TaskwardAPI(app, poll_interval=0.02, keepalive=0.2)) as c:
        yield c


@pytest.fixture
async def worker_client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the API of ``app``, with a worker running in its lifespan."""
    api = TaskwardAPI(app, worker=fast_worker(app), poll_interval=0.02, keepalive=0.2)
    async with running(api) as c:
        yield c
