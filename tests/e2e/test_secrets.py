"""Secrets end to end: a real ``taskward serve`` (API and worker) and the ``taskward`` CLI.

Tasks that fail with their secret in the error run in the server's worker; then the API
(detail, list), the event stream, every CLI output and the server's log are searched for
the secret, and the function's own record shows that it received the real value.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import APPS, Server, start_serve

from waiting import eventually

pytestmark = [pytest.mark.slow]

KEY = "sk-live-e2e-9d8c7b6a5f4e"
PASSWORD = "tr0ub4dor-and-3"
URL = "https://pay.example/charge"


def taskward(server: Server, *args: str, app: bool = True, **env: str) -> str:
    """Run the CLI on the server's store; its stdout (it must succeed)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}
    clean.update(TASKWARD_DB=server.db, PYTHONPATH=str(APPS), **env)
    if app:
        clean["TASKWARD_APP"] = "secretapp:app"
    proc = subprocess.run(
        [sys.executable, "-m", "taskward", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


async def read_until_failed(lines: AsyncIterator[str], ids: set[str]) -> str:
    """The raw event stream, up to the Failed event of every one of ``ids``."""
    seen: list[str] = []
    left = set(ids)
    async for line in lines:
        seen.append(line)
        if line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
            if data.get("status") == "Failed":
                left.discard(data.get("id"))
                if not left:
                    return "\n".join(seen)
    raise AssertionError("the event stream ended early")


async def failed(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """Poll the API until the task has failed; return what it shows."""

    async def body_if_failed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/tasks/{task_id}")).json()
        return body if body["status"] == "Failed" else None

    return await eventually(body_if_failed, timeout=10.0, interval=0.05)


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} shown in:\n{text}"


async def test_secrets_reach_the_task_and_are_shown_nowhere(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    server = start_serve(tmp_path, "secretapp:app", "--grace", "1", env={"SEEN": str(seen)})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            async with client.stream("GET", "/api/events") as stream:
                lines = stream.aiter_lines()
                assert (await anext(lines)).startswith("retry:")
                args = json.dumps({"url": URL, "api_key": KEY})
                echo = taskward(server, "submit", "call", "--args", args, "--json")
                call_id = json.loads(echo)["id"]
                response = await client.post(
                    "/api/tasks",
                    json={"task": "login", "args": {"user": "ann", "password": PASSWORD}},
                )
                login_id = response.json()["task_id"]
                events = await asyncio.wait_for(read_until_failed(lines, {call_id, login_id}), 20)
            call = await failed(client, call_id)
            login = await failed(client, login_id)
            listed = (await client.get("/api/tasks")).text
        cli = {
            "status": taskward(server, "status", call_id),
            "status --json": taskward(server, "status", call_id, "--json"),
            "status login": taskward(server, "status", login_id),
            "list": taskward(server, "list"),
            "list --json": taskward(server, "list", "--json"),
            "status, no app": taskward(server, "status", call_id, "--json", app=False),
            "login, no app": taskward(server, "status", login_id, "--json", app=False),
        }
    finally:
        server.stop()
    log = server.output()

    # The functions received the real values (call: two attempts).
    assert sorted(seen.read_text().splitlines()) == [
        f"call {KEY}",
        f"call {KEY}",
        f"login {PASSWORD}",
    ]
    assert json.loads(echo)["args"] == {"url": URL, "api_key": "***"}
    assert call["args"] == {"url": URL, "api_key": "***"}
    assert call["error"] == f"RuntimeError: 401 for {URL} with key ***"
    assert f"RuntimeError: 401 for {URL} with key ***" in call["traceback"]
    assert call["attempts"] == 2
    assert login["args"] == {"user": "ann", "password": "***"}
    assert login["error"] == "PermissionError: login failed for ann:***"
    assert f"401 for {URL} with key ***" in events
    assert f"failed: RuntimeError: 401 for {URL} with key ***; retrying" in log
    assert "failed for good after 1 attempts: PermissionError: login failed for ann:***" in log
    assert json.loads(cli["status, no app"])["args"]["api_key"] == "***"  # by name
    assert json.loads(cli["login, no app"])["args"]["password"] == "***"
    everything = [echo, json.dumps(call), json.dumps(login), listed, events, log, *cli.values()]
    assert_hidden("\n".join(everything), KEY, PASSWORD)


async def test_taskward_redact_replaces_the_names_and_types_still_hide(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    env = {"SEEN": str(seen), "TASKWARD_REDACT": "pin"}
    server = start_serve(tmp_path, "secretapp:app", "--grace", "1", env=env)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            ids = []
            for task, args in [
                ("call", {"url": URL, "api_key": KEY}),
                ("login", {"user": "ann", "password": PASSWORD}),
            ]:
                response = await client.post("/api/tasks", json={"task": task, "args": args})
                ids.append(response.json()["task_id"])
            call = await failed(client, ids[0])
            login = await failed(client, ids[1])
        with_app = json.loads(taskward(server, "status", ids[0], "--json", TASKWARD_REDACT="pin"))
        without_app = taskward(server, "status", ids[0], "--json", app=False, TASKWARD_REDACT="pin")
    finally:
        server.stop()
    log = server.output()

    # api_key is no redaction name any more: its type (SecretStr) hides it, where the app is.
    assert call["args"] == {"url": URL, "api_key": "***"}
    assert call["error"] == f"RuntimeError: 401 for {URL} with key ***"
    assert with_app["args"] == {"url": URL, "api_key": "***"}
    assert_hidden(json.dumps(call) + log, KEY)
    # The CLI without the app knows no types: only the names apply (documented).
    assert json.loads(without_app)["args"]["api_key"] == KEY
    # "password" is not in the replaced list: shown, and not masked.
    assert login["args"] == {"user": "ann", "password": PASSWORD}
    assert login["error"] == f"PermissionError: login failed for ann:{PASSWORD}"
