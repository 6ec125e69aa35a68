"""Submitting tasks over HTTP: one, a batch, and every way a body can be wrong."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest
from api_helpers import make_app, running, status_of

from taskward import demo
from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.options import MAX_PRIORITY, MIN_PRIORITY


async def count_tasks(app: App) -> int:
    counts = await app.counts()
    return sum(counts.by_status().values())


async def test_submit_returns_202_with_id_and_location(client: httpx.AsyncClient, app: App) -> None:
    response = await client.post("/api/tasks", json={"task": "add", "args": {"a": 2, "b": 3}})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    UUID(task_id)
    assert response.headers["location"] == f"/api/tasks/{task_id}"
    info = await app.get(task_id)
    assert info is not None
    assert info.task == "add"
    assert info.args == {"a": 2, "b": 3}
    follow = await client.get(response.headers["location"])
    assert follow.json()["id"] == task_id


async def test_original_service_requests_work_against_the_demo_app() -> None:
    app = demo.build("memory://")
    async with running(TaskwardAPI(app)) as client:
        one = await client.post("/api/tasks", json={"name": "Important Task", "priority": 1})
        assert one.status_code == 202
        batch_body = [{"name": "Task 1", "priority": 1}, {"name": "Task 2", "priority": 2}]
        batch = await client.post("/api/tasks/batch", json=batch_body)
        assert batch.status_code == 202
        ids = batch.json()
        infos = [await app.get(i) for i in ids]
        assert [(i.name, i.priority, i.task) for i in infos if i] == [
            ("Task 1", 1, "work"),
            ("Task 2", 2, "work"),
        ]
        # The same list posted to /api/tasks is a batch too.
        again = [{"name": "Task 3", "priority": 1}, {"name": "Task 4", "priority": 2}]
        listed = await client.post("/api/tasks", json=again)
        assert listed.status_code == 202
        assert len(listed.json()) == 2
        assert await status_of(client, one.json()["task_id"]) == "Pending"


async def test_submit_options_are_stored(client: httpx.AsyncClient, app: App) -> None:
    body = {
        "task": "add",
        "name": "n1",
        "args": {"a": 1},
        "priority": -5,
        "queue": "fast",
        "delay": 60,
        "max_attempts": 7,
        "timeout": 2.5,
    }
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 202, response.text
    info = await app.get(response.json()["task_id"])
    assert info is not None
    assert (info.name, info.priority, info.queue, info.max_attempts) == ("n1", -5, "fast", 7)
    assert info.run_at is not None
    assert info.run_at > info.created_at


async def test_run_at_with_timezone_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tasks", json={"run_at": "2030-01-01T00:00:00+00:00"})
    assert response.status_code == 202, response.text
    shown = (await client.get(f"/api/tasks/{response.json()['task_id']}")).json()
    assert shown["run_at"].startswith("2030-01-01T00:00:00")


async def test_batch_keeps_request_order(client: httpx.AsyncClient, app: App) -> None:
    body = [{"args": {"a": i}} for i in range(20)]
    response = await client.post("/api/tasks/batch", json=body)
    assert response.status_code == 202
    infos = [await app.get(i) for i in response.json()]
    assert [i.args["a"] for i in infos if i and i.args] == list(range(20))


async def test_batch_is_all_or_nothing(client: httpx.AsyncClient, app: App) -> None:
    body: list[dict[str, Any]] = [{"args": {"a": 1}}, {"args": {"a": "x"}}, {"args": {"a": 3}}]
    response = await client.post("/api/tasks/batch", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 1, "args"]
    assert await count_tasks(app) == 0


async def test_batch_with_a_taken_name_inserts_nothing(client: httpx.AsyncClient, app: App) -> None:
    assert (await client.post("/api/tasks", json={"name": "taken"})).status_code == 202
    response = await client.post("/api/tasks/batch", json=[{"name": "free"}, {"name": "taken"}])
    assert response.status_code == 409
    assert "taken" in response.json()["detail"]
    assert await count_tasks(app) == 1


async def test_empty_batch_submits_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tasks/batch", json=[])
    assert response.status_code == 202
    assert response.json() == []


async def test_an_active_name_is_a_409(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/tasks", json={"name": "once"})).status_code == 202
    again = await client.post("/api/tasks", json={"name": "once"})
    assert again.status_code == 409
    assert again.json() == {"detail": "a task named 'once' is already Pending or Running"}


async def test_concurrent_submits_with_one_clash_fail_only_that_one(
    client: httpx.AsyncClient, app: App
) -> None:
    import asyncio

    bodies = [{"name": f"t{i}"} for i in range(10)] + [{"name": "t3"}]
    responses = await asyncio.gather(*(client.post("/api/tasks", json=b) for b in bodies))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 10 + [409]
    assert await count_tasks(app) == 10


def field_of(response: httpx.Response) -> list[list[str | int]]:
    assert response.status_code == 422, response.text
    return [item["loc"] for item in response.json()["detail"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"task": "nope"}, ["body", "task"]),
        ({"task": "add", "args": {"a": "one"}}, ["body", "args"]),
        ({"task": "add", "args": {"c": 1}}, ["body", "args"]),
        ({"priority": "1"}, ["body", "priority"]),
        ({"priority": 1.5}, ["body", "priority"]),
        ({"priority": True}, ["body", "priority"]),
        ({"priority": MAX_PRIORITY + 1}, ["body", "priority"]),
        ({"priority": MIN_PRIORITY - 1}, ["body", "priority"]),
        ({"delay": -1}, ["body", "delay"]),
        ({"delay": "soon"}, ["body", "delay"]),
        ({"timeout": 0}, ["body", "timeout"]),
        ({"max_attempts": 0}, ["body", "max_attempts"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"queue": 5}, ["body", "queue"]),
        ({"args": [1, 2]}, ["body", "args"]),
        ({"surprise": 1}, ["body", "surprise"]),
        ({"run_at": "2030-01-01T00:00:00"}, ["body", "run_at"]),
        ({"delay": 5, "run_at": "2030-01-01T00:00:00Z"}, ["body", "run_at"]),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, app: App, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = await client.post("/api/tasks", json=body)
    assert loc in field_of(response)
    for item in response.json()["detail"]:
        assert set(item) == {"loc", "msg", "type"}
    assert await count_tasks(app) == 0


async def test_priority_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    for priority in (MIN_PRIORITY, MAX_PRIORITY):
        response = await client.post("/api/tasks", json={"priority": priority})
        assert response.status_code == 202, response.text


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"42", b'"task"', b"[1]", b"\xff\xfe"])
async def test_malformed_json_is_422(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/api/tasks", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_422_does_not_echo_the_input(client: httpx.AsyncClient) -> None:
    secret = "hunter2-secret-value"
    response = await client.post("/api/tasks", json={"task": "add", "args": {"a": secret}})
    assert response.status_code == 422
    assert secret not in response.text
    response = await client.post("/api/tasks", json={"priority": secret})
    assert secret not in response.text


async def test_no_default_task_means_task_is_required() -> None:
    app = make_app()
    app.default_task = None
    async with running(TaskwardAPI(app)) as client:
        response = await client.post("/api/tasks", json={"args": {}})
        assert field_of(response) == [["body", "task"]]


async def test_batch_over_the_limit_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tasks/batch", json=[{}] * 1001)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"delay": 1e300},
        {"run_at": "9999-12-31T23:59:59-05:00"},
        {"run_at": "9500-01-01T00:00Z"},
        {"run_at": "0001-01-01T00:00:00+05:00"},
    ],
)
async def test_due_times_beyond_a_datetime_are_422(
    client: httpx.AsyncClient, app: App, body: dict[str, Any]
) -> None:
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 422
    assert await count_tasks(app) == 0
    assert (await client.get("/api/tasks")).status_code == 200
