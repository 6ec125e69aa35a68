"""Health, readiness, metrics, and what clients see when the store fails."""

from __future__ import annotations

import re
from uuid import UUID

import httpx
from api_helpers import NO_SUCH_ID, fast_worker, make_app, running

from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.errors import StoreError
from taskward.stores.base import TaskRecord
from taskward.stores.memory import MemoryStore
from waiting import eventually

SECRET = "/srv/secret/tasks.db: SELECT * FROM tasks"


class FlakyStore(MemoryStore):
    """A memory store that fails on demand, with a message full of internals."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.broken = False

    async def now(self) -> float:
        if self.down:
            raise StoreError(SECRET)
        return await super().now()

    async def get(self, task_id: UUID) -> TaskRecord | None:
        if self.down:
            raise StoreError(SECRET)
        if self.broken:
            raise RuntimeError(SECRET)
        return await super().get(task_id)


def flaky_app() -> tuple[App, FlakyStore]:
    store = FlakyStore()
    app = App(store)

    @app.task(name="add")
    async def add(a: int = 1) -> int:
        return a

    return app, store


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_without_a_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert (response.status_code, response.json()["status"]) == (200, "ok")


async def test_ready_with_a_running_worker(worker_client: httpx.AsyncClient) -> None:
    assert (await worker_client.get("/health/ready")).status_code == 200


async def test_not_ready_when_the_worker_is_not_running() -> None:
    app = make_app()
    api = TaskwardAPI(app, worker=fast_worker(app), run_worker=False)
    async with running(api) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "the worker is not running"}


async def test_not_ready_when_the_store_is_down_and_no_internals_shown() -> None:
    app, store = flaky_app()
    async with running(TaskwardAPI(app)) as client:
        store.down = True
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "the task store is not reachable"
        assert "secret" not in response.text
        failed = await client.get(f"/api/tasks/{NO_SUCH_ID}")
        assert failed.status_code == 503
        assert "secret" not in failed.text
        assert "SELECT" not in failed.text
        store.down = False
        assert (await client.get("/health/ready")).status_code == 200


async def test_unexpected_errors_are_a_bare_500() -> None:
    app, store = flaky_app()
    async with running(TaskwardAPI(app)) as client:
        store.broken = True
        response = await client.get(f"/api/tasks/{NO_SUCH_ID}")
        assert response.status_code == 500
        assert response.json() == {"detail": "internal server error"}
        assert "Traceback" not in response.text


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        have = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
        if have == wanted:
            return float(match[3])
    return None


async def test_metrics(worker_client: httpx.AsyncClient) -> None:
    for body in ({"args": {"a": 1}}, {"args": {"a": 2}}, {"task": "boom"}):
        assert (await worker_client.post("/api/tasks", json=body)).status_code == 202

    async def scraped() -> str | None:
        text = (await worker_client.get("/metrics")).text
        done = metric(text, "taskward_tasks_completed_total", task="add") == 2
        failed = metric(text, "taskward_tasks_failed_total", task="boom") == 1
        return text if done and failed else None

    text = await eventually(scraped, timeout=5.0)
    assert metric(text, "taskward_tasks_submitted_total", task="add") == 2
    assert metric(text, "taskward_tasks_submitted_total", task="boom") == 1
    assert metric(text, "taskward_task_run_seconds_count", task="add") == 2
    assert metric(text, "taskward_queue_depth", queue="default", status="Completed") == 2
    assert metric(text, "taskward_queue_depth", queue="default", status="Pending") == 0
    assert metric(text, "taskward_worker_slots", state="total") == 4
    assert metric(text, "taskward_worker_slots", state="busy") == 0
    assert metric(text, "taskward_workers_alive") == 1


async def test_metrics_content_type(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert "taskward_workers_alive 0.0" in response.text
