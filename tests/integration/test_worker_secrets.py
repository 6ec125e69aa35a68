"""Secrets through a real worker, on memory and on a SQLite file: the function gets the real
value; the stored error and traceback, the worker's logs, the API (detail, list, events)
and the schedules show none of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from integration_helpers import fast_worker, running, tid
from pydantic import SecretStr

from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.models import Status, TaskInfo
from taskward.retry import Backoff
from waiting import wait_status

KEY = "sk-live-7f3a9c2e41d8b6"
PASSWORD = "correct-horse-battery"
PIN = "48151623"
BEARER = "Bearer eyJhbGciOi.secret-part"


@pytest.fixture(autouse=True)
def _default_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKWARD_REDACT", raising=False)
    monkeypatch.delenv("TASKWARD_API_TOKEN", raising=False)


def register(app: App, received: list[Any]) -> None:
    """The task functions of these tests; each records what it was called with."""

    @app.task(name="call", max_attempts=2, retry=Backoff(base=0.01, cap=0.01))
    async def call(url: str, api_key: SecretStr) -> None:
        received.append(api_key)
        key = api_key.get_secret_value()
        raise RuntimeError(f"401 for {url} with key {key} (repr {key!r}, json {json.dumps(key)})")

    @app.task(name="login", max_attempts=1)
    def login(user: str, password: str) -> None:  # sync: runs in a thread
        received.append(password)
        raise PermissionError(f"login failed for {user}:{password}")

    @app.task(name="fetch", max_attempts=1)
    async def fetch(url: str, headers: dict[str, str]) -> None:
        received.append(headers)
        raise ValueError(f"GET {url} with {headers} refused")

    @app.task(name="unlock", max_attempts=1)
    async def unlock(door: str, pin: str, password: str) -> None:
        received.append((pin, password))
        raise RuntimeError(f"door {door}: pin {pin} / password {password} wrong")


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} shown in:\n{text}"


@contextlib.asynccontextmanager
async def api_with_worker(app: App) -> AsyncIterator[tuple[httpx.AsyncClient, TaskwardAPI]]:
    api = TaskwardAPI(app, worker=fast_worker(app), poll_interval=0.02, keepalive=0.2)
    fastapi_app = api.fastapi()
    async with (
        fastapi_app.router.lifespan_context(fastapi_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fastapi_app), base_url="http://taskward.test"
        ) as client,
    ):
        yield client, api


async def test_a_secret_str_argument_reaches_the_function_and_is_shown_nowhere(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="taskward")
    received: list[Any] = []
    register(app, received)
    async with api_with_worker(app) as (client, api):
        stream = api.hub.subscribe(keepalive=0.05)
        assert (await anext(stream)).startswith(b"retry:")
        response = await client.post(
            "/api/tasks",
            json={"task": "call", "args": {"url": "https://pay.example", "api_key": KEY}},
        )
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        events = b""

        async def read_until_failed() -> None:
            nonlocal events
            async for chunk in stream:
                events += chunk
                if b'"status":"Failed"' in chunk and task_id.encode() in chunk:
                    return

        await asyncio.wait_for(read_until_failed(), 10)
        await stream.aclose()
        detail = (await client.get(f"/api/tasks/{task_id}")).json()
        listed = (await client.get("/api/tasks")).text

    # The function ran twice (a retry), each time with the real value, as a SecretStr.
    assert [s.get_secret_value() for s in received] == [KEY, KEY]
    assert all(isinstance(s, SecretStr) for s in received)
    assert detail["status"] == "Failed"
    assert detail["attempts"] == 2
    assert detail["args"] == {"url": "https://pay.example", "api_key": "***"}
    assert detail["error"] == (
        "RuntimeError: 401 for https://pay.example with key *** (repr '***', json \"***\")"
    )
    assert "RuntimeError: 401 for https://pay.example with key ***" in detail["traceback"]
    assert '"api_key":"***"' in listed.replace(" ", "")
    assert b"401 for https://pay.example with key ***" in events
    logs = caplog.text
    assert "attempt 1/2 failed: RuntimeError: 401 for https://pay.example with key ***" in logs
    assert "failed for good after 2 attempts" in logs
    assert_hidden(json.dumps(detail) + listed + events.decode() + logs, KEY)
    # The store keeps the argument in clear (the worker needs it), and only the argument.
    row = await (await app.connect()).get(UUID(task_id))
    assert row is not None
    assert json.loads(row.args)["api_key"] == KEY
    assert_hidden(f"{row.error} {row.traceback}", KEY)


async def test_arguments_named_like_secrets_are_hidden_and_masked(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskward")
    received: list[Any] = []
    register(app, received)
    login_fn, fetch_fn = app.get_task("login"), app.get_task("fetch")
    async with running(fast_worker(app)):
        login = await login_fn.submit(user="ann", password=PASSWORD)
        fetch = await fetch_fn.submit(
            url="https://api.example", headers={"Authorization": BEARER, "Accept": "text/plain"}
        )
        failed_login = await wait_status(app, tid(login), Status.FAILED)
        failed_fetch = await wait_status(app, tid(fetch), Status.FAILED)
    assert received == [PASSWORD, {"Authorization": BEARER, "Accept": "text/plain"}]
    assert failed_login.error == "PermissionError: login failed for ann:***"
    assert failed_fetch.error is not None
    assert "'Accept': 'text/plain'" in failed_fetch.error
    shown = [app_json(app, failed_login), app_json(app, failed_fetch)]
    assert shown[0]["args"] == {"user": "ann", "password": "***"}
    assert shown[1]["args"]["headers"] == {"Authorization": "***", "Accept": "text/plain"}
    assert_hidden(json.dumps(shown) + caplog.text, PASSWORD, BEARER, "eyJhbGciOi.secret-part")


def app_json(app: App, info: TaskInfo) -> dict[str, Any]:
    return info.to_json(app.secrets(info.task))


async def test_taskward_redact_replaces_the_name_list(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TASKWARD_REDACT", "pin, door_code")
    caplog.set_level(logging.INFO, logger="taskward")
    received: list[Any] = []
    register(app, received)
    async with api_with_worker(app) as (client, _):
        t = await app.get_task("unlock").submit(door="front", pin=PIN, password=PASSWORD)
        c = await app.get_task("call").submit(url="u", api_key=SecretStr(KEY))
        failed = await wait_status(app, tid(t), Status.FAILED)
        failed_call = await wait_status(app, tid(c), Status.FAILED, timeout=5)
        shown = (await client.get(f"/api/tasks/{tid(c)}")).json()
        listed = (await client.get("/api/tasks")).text
    assert received[0] == (PIN, PASSWORD)
    # "pin" is now a redaction name; "password" no longer is (the list was replaced).
    assert failed.error == f"RuntimeError: door front: pin *** / password {PASSWORD} wrong"
    assert app_json(app, failed)["args"] == {"door": "front", "pin": "***", "password": PASSWORD}
    # No name hides api_key now: its type (SecretStr) does, in what is shown and in errors.
    assert failed_call.to_json()["args"] == {"url": "u", "api_key": KEY}
    assert app_json(app, failed_call)["args"] == {"url": "u", "api_key": "***"}
    assert shown["args"] == {"url": "u", "api_key": "***"}
    assert_hidden(json.dumps(shown) + listed, KEY)
    assert failed_call.error is not None
    assert failed_call.error.startswith("RuntimeError: 401 for u with key ***")
    assert_hidden(caplog.text + (failed.traceback or ""), PIN)
    assert_hidden(caplog.text + (failed_call.traceback or ""), KEY)


async def test_schedules_show_secret_arguments_as_stars(app: App) -> None:
    register(app, [])
    async with api_with_worker(app) as (client, _):
        response = await client.post(
            "/api/schedules",
            json={
                "name": "nightly",
                "task": "call",
                "every": 3600,
                "args": {"url": "u", "api_key": KEY},
            },
        )
        assert response.status_code == 201, response.text
        one = await client.get("/api/schedules/nightly")
        every = await client.get("/api/schedules")
    assert response.json()["args"] == {"url": "u", "api_key": "***"}
    assert one.json()["args"] == {"url": "u", "api_key": "***"}
    assert_hidden(response.text + one.text + every.text, KEY)
    stored = await app.get_schedule("nightly")
    assert stored is not None
    assert stored.schedule.args["api_key"] == KEY, "the schedule fires with the real value"
