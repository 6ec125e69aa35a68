"""The API installed in someone else's FastAPI app, sharing that app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from api_helpers import fast_worker, make_app
from fastapi import FastAPI, Request

from taskward.api import TaskwardAPI
from waiting import eventually


def host_app() -> tuple[FastAPI, TaskwardAPI, list[str]]:
    app = make_app()
    tasks_api = TaskwardAPI(app, worker=fast_worker(app))
    happened: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        happened.append("host startup")
        async with tasks_api.lifespan():
            yield
        happened.append("host shutdown")

    host = FastAPI(lifespan=lifespan)

    @host.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    tasks_api.install(host, prefix="/tasks")
    return host, tasks_api, happened


async def test_mounted_api_runs_in_the_hosts_lifespan() -> None:
    host, tasks_api, happened = host_app()
    async with (
        host.router.lifespan_context(host),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://h") as client,
    ):
        assert tasks_api.worker_alive
        response = await client.post("/tasks/api/tasks", json={"args": {"a": 2, "b": 2}})
        assert response.status_code == 202
        location = response.headers["location"]
        assert location.startswith("/tasks/api/tasks/")

        async def result() -> object:
            body = (await client.get(location)).json()
            return body["result"] if body["status"] == "Completed" else None

        assert await eventually(result, timeout=5.0) == 4
        # The API's error bodies, without touching the host's handlers.
        bad = await client.post("/tasks/api/tasks", json={"priority": "high"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "priority"]
        assert (await client.get("/tasks/health/ready")).status_code == 200
        # The body limit covers the API's paths only.
        big = b"x" * (2 * 1024 * 1024)
        assert (await client.post("/upload", content=big)).json() == {"size": len(big)}
        assert (await client.post("/tasks/api/tasks", content=big)).status_code == 413
    assert happened == ["host startup", "host shutdown"]
    assert not tasks_api.worker_alive  # the host's shutdown stopped the worker


async def test_two_apis_in_one_host_each_serve_their_own_app() -> None:
    first, second = make_app(), make_app()
    apis = [TaskwardAPI(first), TaskwardAPI(second, token="s3cret")]
    host = FastAPI()
    apis[0].install(host, prefix="/one")
    apis[1].install(host, prefix="/two")
    async with (
        apis[0].lifespan(),
        apis[1].lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://h") as client,
    ):
        one = await client.post("/one/api/tasks", json={"args": {"a": 1}})
        assert one.status_code == 202, one.text
        assert (await client.post("/two/api/tasks", json={})).status_code == 401
        two = await client.post(
            "/two/api/tasks", json={"name": "second"}, headers={"authorization": "Bearer s3cret"}
        )
        assert two.status_code == 202, two.text
        assert (await first.get(one.json()["task_id"])) is not None
        assert (await first.get(two.json()["task_id"])) is None
        assert (await second.get(two.json()["task_id"])) is not None
        assert (await client.get("/two/health/ready")).json() == {"status": "ok"}
