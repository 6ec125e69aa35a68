"""Reading and acting on tasks over HTTP: get, list, cancel, retry, task types, stats."""

from __future__ import annotations

import functools

import httpx
import pytest
from api_helpers import NO_SUCH_ID, status_of

from taskward.api.schemas import TaskOut
from taskward.app import App
from waiting import eventually

GET_FIELDS = {
    "id",
    "name",
    "task",
    "priority",
    "queue",
    "status",
    "error",
    "result",
    "progress",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
}


async def submit(client: httpx.AsyncClient, **body: object) -> str:
    response = await client.post("/api/tasks", json=body)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def test_get_shows_the_task(client: httpx.AsyncClient) -> None:
    task_id = await submit(client, name="shown", priority=3, args={"a": 5})
    response = await client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= GET_FIELDS
    assert set(body) == set(TaskOut.model_fields)
    assert body["id"] == task_id
    assert (body["name"], body["task"], body["priority"], body["queue"]) == (
        "shown",
        "add",
        3,
        "default",
    )
    assert (body["status"], body["attempts"], body["started_at"]) == ("Pending", 0, None)
    TaskOut.model_validate(body)


async def test_completed_task_has_result_and_times(worker_client: httpx.AsyncClient) -> None:
    task_id = await submit(worker_client, args={"a": 40, "b": 2})
    await eventually(lambda: _is(worker_client, task_id, "Completed"), timeout=5.0)
    body = (await worker_client.get(f"/api/tasks/{task_id}")).json()
    assert body["result"] == 42
    assert body["attempts"] == 1
    assert body["started_at"] is not None
    assert body["finished_at"] is not None


async def test_failed_task_shows_its_error(worker_client: httpx.AsyncClient) -> None:
    task_id = await submit(worker_client, task="boom", args={"message": "it broke"})
    await eventually(lambda: _is(worker_client, task_id, "Failed"), timeout=5.0)
    body = (await worker_client.get(f"/api/tasks/{task_id}")).json()
    assert "it broke" in body["error"]


async def _is(client: httpx.AsyncClient, task_id: str, status: str) -> bool:
    return await status_of(client, task_id) == status


@pytest.mark.parametrize("bad", [NO_SUCH_ID, "not-a-uuid", "123", "%00", "x" * 500])
async def test_unknown_or_malformed_id_is_404_json(client: httpx.AsyncClient, bad: str) -> None:
    for method, path in [
        ("GET", f"/api/tasks/{bad}"),
        ("POST", f"/api/tasks/{bad}/cancel"),
        ("POST", f"/api/tasks/{bad}/retry"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "no task with id" in response.json()["detail"]


async def test_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    ids = [await submit(client, args={"a": i}) for i in range(5)]
    await submit(client, task="boom", queue="other", name="special")
    page = (await client.get("/api/tasks", params={"limit": 2})).json()
    assert len(page["items"]) == 2
    seen = [item["id"] for item in page["items"]]
    while page["cursor"]:
        page = (
            await client.get("/api/tasks", params={"limit": 2, "cursor": page["cursor"]})
        ).json()
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == 6
    assert seen[1:] == ids[::-1]  # newest first
    by_task = (await client.get("/api/tasks", params={"task": "add"})).json()["items"]
    assert {i["id"] for i in by_task} == set(ids)
    by_queue = (await client.get("/api/tasks", params={"queue": "other"})).json()["items"]
    assert [i["name"] for i in by_queue] == ["special"]
    by_name = (await client.get("/api/tasks", params={"name": "special"})).json()["items"]
    assert len(by_name) == 1
    by_status = await client.get("/api/tasks", params=[("status", "Pending"), ("status", "Failed")])
    assert len(by_status.json()["items"]) == 6
    none = await client.get("/api/tasks", params={"status": "Completed"})
    assert none.json() == {"items": [], "cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "Done"}, "status"),
        ({"cursor": "bogus"}, "cursor"),
    ],
)
async def test_bad_list_query_is_422(
    client: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    response = await client.get("/api/tasks", params=params)  # type: ignore[arg-type]
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["query", field]


async def test_cancel_pending_is_immediate(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    response = await client.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "Cancelled"
    again = await client.post(f"/api/tasks/{task_id}/cancel")
    assert again.status_code == 202  # cancelling twice is harmless


async def test_cancel_running_task(worker_client: httpx.AsyncClient) -> None:
    task_id = await submit(worker_client, task="hold", args={"seconds": 30})
    await eventually(lambda: _is(worker_client, task_id, "Running"), timeout=5.0)
    response = await worker_client.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 202
    await eventually(lambda: _is(worker_client, task_id, "Cancelled"), timeout=3)


async def test_cancel_of_a_finished_task_is_409(worker_client: httpx.AsyncClient) -> None:
    task_id = await submit(worker_client)
    await eventually(lambda: _is(worker_client, task_id, "Completed"), timeout=5.0)
    response = await worker_client.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert "Completed" in response.json()["detail"]


async def test_retry(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    active = await client.post(f"/api/tasks/{task_id}/retry")
    assert active.status_code == 409
    await client.post(f"/api/tasks/{task_id}/cancel")
    response = await client.post(f"/api/tasks/{task_id}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "Pending"


async def test_task_types_publish_arg_schemas(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/task-types")
    assert response.status_code == 200
    types = {t["name"]: t for t in response.json()}
    assert set(types) == {"add", "boom", "hold"}
    add = types["add"]
    assert add["default"] is True
    assert add["description"] == "Add two numbers."
    assert add["args"]["properties"]["a"] == {"default": 1, "title": "A", "type": "integer"}
    assert add["args"]["additionalProperties"] is False


async def test_stats_counts_by_status_and_queue(client: httpx.AsyncClient, app: App) -> None:
    await submit(client)
    await submit(client, queue="q2")
    cancelled = await submit(client, queue="q2")
    await client.post(f"/api/tasks/{cancelled}/cancel")
    stats = (await client.get("/api/stats")).json()
    assert stats["by_status"] == {
        "Pending": 2,
        "Running": 0,
        "Completed": 0,
        "Failed": 0,
        "Cancelled": 1,
    }
    assert stats["by_queue"]["q2"]["Cancelled"] == 1
    assert stats["by_queue"]["default"]["Pending"] == 1
    assert stats["workers"] == []
    assert stats["throughput"]["window_seconds"] == 60


async def test_stats_show_the_in_process_worker_and_throughput(
    worker_client: httpx.AsyncClient,
) -> None:
    ids = [await submit(worker_client, args={"a": i}) for i in range(3)]
    for task_id in ids:
        await eventually(functools.partial(_is, worker_client, task_id, "Completed"), timeout=5.0)

    async def counted() -> bool:
        stats = (await worker_client.get("/api/stats")).json()
        return bool(stats["throughput"]["completed_per_second"] * 60 >= 3)

    await eventually(counted, timeout=5.0)
    (worker,) = (await worker_client.get("/api/stats")).json()["workers"]
    assert worker["alive"] is True
    assert worker["concurrency"] == 4
    assert worker["running"] == 0


async def test_stats_show_workers_of_other_processes(app: App, client: httpx.AsyncClient) -> None:
    store = await app.connect()
    info = '{"host": "elsewhere", "pid": 4242, "queues": ["emails"], "concurrency": 8}'
    await store.worker_beat("elsewhere:4242:abcd", info, ttl=30)
    (worker,) = (await client.get("/api/stats")).json()["workers"]
    assert (worker["id"], worker["host"], worker["pid"]) == (
        "elsewhere:4242:abcd",
        "elsewhere",
        4242,
    )
    assert (worker["queues"], worker["concurrency"], worker["alive"]) == (["emails"], 8, True)
    await store.worker_gone("elsewhere:4242:abcd")
    assert (await client.get("/api/stats")).json()["workers"] == []


async def test_stats_show_this_process_worker_slots_as_they_are_now(
    worker_client: httpx.AsyncClient,
) -> None:
    task_id = await submit(worker_client, task="hold", args={"seconds": 30})
    await eventually(lambda: _is(worker_client, task_id, "Running"), timeout=5.0)
    (worker,) = (await worker_client.get("/api/stats")).json()["workers"]
    assert worker["running"] == 1  # now, not as of its last beat
    await worker_client.post(f"/api/tasks/{task_id}/cancel")
