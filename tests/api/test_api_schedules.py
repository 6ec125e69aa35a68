"""The schedules routes: create, list, get, pause, resume, delete; bad schedules are 422 with
the field named, a taken name 409, an unknown one 404; a worker fires the ticks."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from taskward.app import App
from waiting import eventually

HOURLY = {"name": "hourly", "task": "add", "args": {"a": 2}, "cron": "0 * * * *"}


async def test_create_list_get_pause_resume_delete(client: httpx.AsyncClient) -> None:
    made = await client.post("/api/schedules", json=HOURLY)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/api/schedules/hourly"
    body = made.json()
    assert {k: body[k] for k in ("name", "task", "args", "every", "cron", "timezone")} == {
        "name": "hourly",
        "task": "add",
        "args": {"a": 2},
        "every": None,
        "cron": "0 * * * *",
        "timezone": "UTC",
    }
    assert (body["catch_up"], body["max_instances"], body["paused"]) == (False, 1, False)
    assert body["last_tick"] is None
    assert body["next_tick"].endswith(":00:00+00:00")

    listed = await client.get("/api/schedules")
    assert [s["name"] for s in listed.json()] == ["hourly"]
    assert (await client.get("/api/schedules/hourly")).json() == body

    paused = await client.post("/api/schedules/hourly/pause")
    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["next_tick"]) == (True, None)
    resumed = await client.post("/api/schedules/hourly/resume")
    assert resumed.json()["paused"] is False

    assert (await client.delete("/api/schedules/hourly")).status_code == 204
    assert (await client.get("/api/schedules")).json() == []


async def test_a_taken_name_is_409_and_unknown_names_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/schedules", json=HOURLY)).status_code == 201
    again = await client.post("/api/schedules", json=HOURLY)
    assert again.status_code == 409
    assert again.json() == {"detail": "a schedule named 'hourly' already exists"}
    for method, path in [
        ("GET", "/api/schedules/nope"),
        ("DELETE", "/api/schedules/nope"),
        ("POST", "/api/schedules/nope/pause"),
        ("POST", "/api/schedules/nope/resume"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "no schedule named 'nope'"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"cron": "0 25 * * *"}, "cron", "invalid cron expression '0 25 * * *'"),
        ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"cron": "0 0 3 * * *"}, "cron", "but it has 6 (seconds and years are not supported)"),
        ({"cron": "*/0 * * * *"}, "cron", "minute field '*/0': a step must be at least 1"),
        ({"cron": "61 * * * *"}, "cron", "minute field '61' is out of range 0-59"),
        ({"cron": "0 0 L * *"}, "cron", "day-of-month field 'L'"),
        ({"cron": "@reboot"}, "cron", "'@reboot' has no meaning for a schedule"),
        ({"task": "nope"}, "task", "unknown task 'nope'"),
        ({"cron": None, "every": 0}, "every", "greater than or equal to 0.001"),
        ({"cron": None, "every": -1}, "every", "greater than or equal to 0.001"),
        ({"cron": None}, "every", "either every= or cron="),
        ({"every": 60}, "every", "either every= or cron="),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown timezone 'Mars/Olympus'"),
        ({"args": {"a": "two"}}, "args", "a: Input should be a valid integer"),
        ({"args": {"c": 1}}, "args", "c: unexpected argument"),
        ({"name": "a@b"}, "name", "schedule name must not contain '@'"),
        ({"name": "reports/daily"}, "name", "schedule name must not contain '/'"),
        ({"name": "why?"}, "name", "schedule name must not contain '?'"),
        ({"name": "50%"}, "name", "schedule name must not contain '%'"),
        ({"max_instances": 0}, "max_instances", "greater than or equal to 1"),
    ],
)
async def test_bad_schedules_are_422_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str, message: str
) -> None:
    body = {**HOURLY, **change}
    response = await client.post("/api/schedules", json=body)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert message in problem["msg"]
    assert (await client.get("/api/schedules")).json() == []


async def test_a_worker_fires_a_schedule_created_over_http(
    app: App, worker_client: httpx.AsyncClient
) -> None:
    made = await worker_client.post(
        "/api/schedules",
        json={"name": "fast", "task": "add", "args": {"a": 5}, "every": 0.2, "max_instances": 5},
    )
    assert made.status_code == 201

    async def two_done() -> bool:
        items, _ = await app.list(status="Completed", task="add")
        return sum(1 for i in items if (i.name or "").startswith("fast@")) >= 2

    await eventually(two_done, timeout=10.0)
    [stored] = (await worker_client.get("/api/schedules")).json()
    assert stored["last_tick"] is not None


def test_the_schema_documents_which_names_are_refused(app: App) -> None:
    from taskward.api import create_api

    operation = create_api(app).openapi()["paths"]["/api/schedules"]["post"]
    documented = operation["requestBody"]["content"]["application/json"]["schema"]
    pattern = re.compile(documented["properties"]["name"]["pattern"])
    assert pattern.fullmatch("nightly report")
    for refused in ("a@b", "a/b", "a\\b", "a?b", "a#b", "50%", "a\nb"):
        assert not pattern.fullmatch(refused), refused
