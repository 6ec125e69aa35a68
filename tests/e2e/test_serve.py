"""``taskward serve`` as a real subprocess on a free port, driven with real HTTP requests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import SERVE, Server, free_port, start_serve

from taskward.app import App
from taskward.models import Status
from waiting import eventually

pytestmark = [pytest.mark.slow]

NO_SUCH_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_serve(tmp_path, "--grace", "1", "--concurrency", "4")
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        yield c


async def wait_status(client: httpx.AsyncClient, task_id: str, status: str) -> dict[str, Any]:
    """Poll the API until the task has ``status``; return what it shows."""
    seen: list[str] = []

    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/tasks/{task_id}")).json()
        seen.append(body["status"])
        return body if body["status"] == status else None

    try:
        return await eventually(check, timeout=10.0, interval=0.05)
    except AssertionError:
        raise AssertionError(f"still {seen[-1]}, wanted {status}") from None


async def test_submit_poll_batch_cancel_and_errors(
    server: Server, client: httpx.AsyncClient
) -> None:
    quick = {"args": {"seconds": 0.3, "steps": 3}}
    response = await client.post("/api/tasks", json=quick)
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response.headers["location"] == f"/api/tasks/{task_id}"
    done = await wait_status(client, task_id, "Completed")
    assert done["task"] == "work"
    assert done["result"] == {"steps": 3, "seconds": 0.3}
    assert done["progress"]["done"] == 3

    # The original service's requests, unchanged.
    one = await client.post("/api/tasks", json={"name": "Important Task", "priority": 1})
    assert one.status_code == 202
    batch = await client.post(
        "/api/tasks/batch",
        json=[{"name": "Task 1", "priority": 1}, {"name": "Task 2", "priority": 2}],
    )
    assert batch.status_code == 202
    assert len(batch.json()) == 2

    # Cancel a running task.
    long = await client.post("/api/tasks", json={"args": {"seconds": 60}})
    long_id = long.json()["task_id"]
    await wait_status(client, long_id, "Running")
    cancelled = await client.post(f"/api/tasks/{long_id}/cancel")
    assert cancelled.status_code == 202
    await wait_status(client, long_id, "Cancelled")

    failed = await client.post("/api/tasks", json={"task": "fail"})
    assert (await wait_status(client, failed.json()["task_id"], "Failed"))["error"]
    echoed = await client.post("/api/tasks", json={"task": "echo", "args": {"data": [1, 2]}})
    echo = await wait_status(client, echoed.json()["task_id"], "Completed")
    assert echo["result"] == {"message": "hello", "data": [1, 2]}

    missing = await client.get(f"/api/tasks/{NO_SUCH_ID}")
    assert missing.status_code == 404
    assert missing.json()["detail"]
    assert (await client.get("/api/tasks/nonsense")).status_code == 404
    bad = await client.post("/api/tasks", json={"priority": "urgent"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "priority"]
    huge = await client.post("/api/tasks", content=b"[" + b" " * (1024 * 1024 + 10) + b"]")
    assert huge.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 32 * 1024

    chunked = await client.post("/api/tasks", content=chunks())
    assert chunked.status_code == 413
    # The server is still fine after refusing those.
    assert (await client.get("/health/ready")).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'taskward_tasks_submitted_total{task="work"}' in text
    assert "Traceback" not in server.output()


async def test_events_stream_over_http(client: httpx.AsyncClient) -> None:
    statuses: list[str] = []
    task_id: str | None = None
    async with client.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        response = await client.post("/api/tasks", json={"args": {"seconds": 1.6, "steps": 4}})
        task_id = response.json()["task_id"]
        kinds: set[str] = set()
        event = ""

        async def read() -> None:
            nonlocal event
            async for line in lines:
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    if data.get("id") == task_id:
                        kinds.add(event)
                        if event == "status":
                            statuses.append(data["status"])
                        if data.get("status") == "Completed":
                            return

        await asyncio.wait_for(read(), 10)
    assert statuses[0] == "Pending"
    assert statuses[-1] == "Completed"
    assert "progress" in kinds


async def test_events_filtered_by_a_task_id_in_any_spelling(client: httpx.AsyncClient) -> None:
    # Delayed, so that the stream is open before the task starts.
    body = {"args": {"seconds": 0.4, "steps": 2}, "delay": 1.5}
    task_id = (await client.post("/api/tasks", json=body)).json()["task_id"]
    statuses: list[str] = []
    # Ids compare as UUIDs, not as text: an upper-case spelling finds the task too.
    async with client.stream("GET", "/api/events", params={"id": task_id.upper()}) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")

        async def until_completed() -> None:
            async for line in lines:
                if line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    assert data["id"] == task_id  # the filter lets only this task through
                    statuses.append(data["status"])
                    if data["status"] == "Completed":
                        return

        await asyncio.wait_for(until_completed(), 10)
    assert statuses[-1] == "Completed"


async def test_sigterm_drains_and_releases_and_exits_zero(
    server: Server, client: httpx.AsyncClient
) -> None:
    long = await client.post("/api/tasks", json={"name": "long", "args": {"seconds": 60}})
    long_id = long.json()["task_id"]
    await wait_status(client, long_id, "Running")
    async with client.stream("GET", "/api/events") as events:
        lines = events.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # An open event stream ends at once; it does not hold up the shutdown.
        rest = [line async for line in lines]
        assert time.monotonic() - started < 1.0, rest
    assert server.proc.wait(15) == 0
    out = server.output()
    assert "received SIGTERM" in out
    assert "released for another worker" in out
    app = App(server.db)
    try:
        info = await app.get(long_id)
        assert info is not None
        assert info.status is Status.PENDING
        assert info.attempts == 0  # a release at stop gives the attempt back
    finally:
        await app.close()


async def test_an_app_given_by_module_is_served_and_run(tmp_path: Path) -> None:
    s = start_serve(tmp_path, "cliapp:app", "--grace", "1")
    try:
        async with httpx.AsyncClient(base_url=s.url, timeout=10) as c:
            body = {"task": "count", "args": {"n": 2, "pause": 0}}
            posted = await c.post("/api/tasks", json=body)
            assert posted.status_code == 202, posted.text
            done = await wait_status(c, posted.json()["task_id"], "Completed")
        assert done["result"] == {"counted": 2}
        assert s.stop(signal.SIGINT) == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


def test_token_is_required_when_set(tmp_path: Path) -> None:
    s = start_serve(tmp_path, "--no-worker", token="e2e-token")
    try:
        with httpx.Client(base_url=s.url) as c:
            assert c.post("/api/tasks", json={}).status_code == 401
            assert c.get("/api/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = c.post("/api/tasks", json={}, headers={"Authorization": "Bearer e2e-token"})
            assert ok.status_code == 202
            stats = c.get("/api/stats", headers={"Authorization": "Bearer e2e-token"}).json()
            assert stats["workers"] == []
        assert s.stop(signal.SIGINT) == 0
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_public_bind_without_token_refuses_to_start_serve(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TASKWARD_API_TOKEN"}
    done = subprocess.run(
        [*SERVE, "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert b"refusing to serve on 0.0.0.0 without a token" in done.stderr


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SERVE, "--port", str(port), "--no-worker"],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()
