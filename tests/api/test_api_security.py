"""Token, bind and body-limit rules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_helpers import running
from click.testing import CliRunner

from taskward.api import MAX_BODY, TaskwardAPI
from taskward.api.auth import TOKEN_ENV
from taskward.app import App
from taskward.serve import is_loopback, serve

TOKEN = "s3cret-token"


@pytest.fixture
async def guarded(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with running(TaskwardAPI(app, token=TOKEN)) as client:
        yield client


API_ROUTES = [
    ("POST", "/api/tasks"),
    ("POST", "/api/tasks/batch"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/00000000-0000-0000-0000-000000000000"),
    ("POST", "/api/tasks/00000000-0000-0000-0000-000000000000/cancel"),
    ("POST", "/api/tasks/00000000-0000-0000-0000-000000000000/retry"),
    ("GET", "/api/task-types"),
    ("GET", "/api/stats"),
    ("GET", "/api/events"),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer s3cret"],
)
async def test_every_api_route_needs_the_token(
    guarded: httpx.AsyncClient, app: App, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in API_ROUTES:
        response = await guarded.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"].startswith("missing or wrong API token")
    assert sum((await app.counts()).by_status().values()) == 0


async def test_the_right_token_is_let_through(guarded: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    submitted = await guarded.post("/api/tasks", json={}, headers=headers)
    assert submitted.status_code == 202
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert (await guarded.get("/api/stats", headers=lower)).status_code == 200


async def test_health_metrics_and_docs_stay_open(guarded: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"):
        assert (await guarded.get(path)).status_code == 200, path


async def test_token_comes_from_the_environment(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    async with running(TaskwardAPI(app)) as client:
        assert (await client.get("/api/stats")).status_code == 401
        ok = await client.get("/api/stats", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200


async def test_openapi_declares_the_bearer_scheme(guarded: httpx.AsyncClient) -> None:
    schema = (await guarded.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "401" in schema["paths"]["/api/tasks"]["post"]["responses"]


# -- body limit --------------------------------------------------------------------------


async def test_body_over_the_limit_is_413_before_parsing(
    client: httpx.AsyncClient, app: App
) -> None:
    big = b'{"args": {"a": "' + b"x" * MAX_BODY + b'"}}'
    response = await client.post(
        "/api/tasks", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    assert sum((await app.counts()).by_status().values()) == 0


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"[" + b" " * (64 * 1024)

    response = await client.post(
        "/api/tasks/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_a_content_length_that_lies_is_still_counted(app: App) -> None:
    async with running(TaskwardAPI(app, max_body=100)) as client:
        body = b'{"name": "' + b"x" * 200 + b'"}'
        request = client.build_request(
            "POST", "/api/tasks", content=body, headers={"content-type": "application/json"}
        )
        request.headers["content-length"] = "20"
        response = await client.send(request)
        assert response.status_code == 413


async def test_body_at_the_limit_is_accepted(app: App) -> None:
    body = b'{"name": "ok"}'
    async with running(TaskwardAPI(app, max_body=len(body))) as client:
        ok = await client.post("/api/tasks", content=body)
        assert ok.status_code == 202
        over = await client.post("/api/tasks", content=body + b" ")
        assert over.status_code == 413


# -- bind rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_serve_refuses_a_public_address_without_a_token(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = CliRunner().invoke(serve, ["--host", host, "--port", "1"])
    assert result.exit_code == 2
    assert f"refusing to serve on {host} without a token" in result.output
    assert TOKEN_ENV in result.output
    assert "--insecure" in result.output
