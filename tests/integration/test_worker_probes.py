"""A worker's own HTTP port (`taskward.probes`, `taskward.worker_metrics`), in this process,
on memory and on a SQLite file: what each run counts, and what the probes answer while the
worker starts, runs, loses its store and drains."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest
from integration_helpers import FaultyStore, fast_worker, running, tid

from taskward.app import App
from taskward.models import Status
from taskward.probes import ProbeServer, listen
from taskward.retry import Backoff
from taskward.stores.base import NewTask, TaskRecord
from taskward.worker import Worker
from taskward.worker_metrics import UNKNOWN_TASK, WorkerMetrics
from waiting import eventually, wait_status

PING = 0.05


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value in Prometheus text, or None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name and (match[2] or "") == wanted:
            return float(match[3])
    return None


@contextlib.asynccontextmanager
async def serving(worker: Worker) -> AsyncIterator[tuple[ProbeServer, httpx.AsyncClient]]:
    """The worker's probe server on a free port, and a client on it."""
    metrics = WorkerMetrics(worker)
    metrics.install()
    server = ProbeServer(worker, metrics, listen("127.0.0.1", 0), ping_every=PING)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            yield server, client
    finally:
        await server.close()


async def ready(client: httpx.AsyncClient) -> httpx.Response | None:
    response = await client.get("/health/ready")
    return response if response.status_code == 200 else None


async def test_metrics_count_what_this_worker_wrote(app: App) -> None:
    attempts = 0

    @app.task(name="ok")
    async def ok() -> str:
        return "done"

    @app.task(name="flaky", max_attempts=2, retry=Backoff(base=0.01, jitter=0))
    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("no luck")

    @app.task(name="slow")
    async def slow() -> None:
        await asyncio.sleep(30)

    worker = fast_worker(app)
    async with serving(worker) as (_, client), running(worker):
        a, b, c = await ok.submit(), await flaky.submit(), await slow.submit()
        await wait_status(app, tid(c), Status.RUNNING)
        await app.cancel(tid(c))
        await wait_status(app, tid(a), Status.COMPLETED)
        await wait_status(app, tid(b), Status.FAILED, timeout=5)
        await wait_status(app, tid(c), Status.CANCELLED, timeout=5)

        async def scraped() -> str | None:
            text = (await client.get("/metrics")).text
            return text if sample(text, "taskward_tasks_cancelled_total", task="slow") else None

        text = await eventually(scraped)
    assert sample(text, "taskward_tasks_completed_total", task="ok") == 1
    assert sample(text, "taskward_tasks_retried_total", task="flaky") == 1
    assert sample(text, "taskward_tasks_failed_total", task="flaky") == 1
    assert sample(text, "taskward_tasks_cancelled_total", task="slow") == 1
    assert sample(text, "taskward_tasks_completed_total", task="flaky") == 0  # made at start
    assert sample(text, "taskward_task_run_seconds_count", task="flaky") == 2  # both attempts
    assert sample(text, "taskward_task_run_seconds_count", task="ok") == 1
    assert sample(text, "taskward_worker_slots", state="total") == 4
    assert sample(text, "taskward_worker_slots", state="busy") == 0
    assert attempts == 2


async def test_a_task_the_app_does_not_have_counts_under_one_label(app: App) -> None:
    @app.task(name="known")
    async def known() -> None:
        pass

    store = await app.connect()
    rows = [NewTask(id=uuid4(), task=f"ghost{i}", args="{}") for i in range(3)]
    await store.insert(rows)
    worker = fast_worker(app)
    async with serving(worker) as (_, client), running(worker):
        for row in rows:
            await wait_status(app, row.id, Status.FAILED)

        async def scraped() -> str | None:
            text = (await client.get("/metrics")).text
            failed = sample(text, "taskward_tasks_failed_total", task=UNKNOWN_TASK)
            return text if failed == 3 else None

        text = await eventually(scraped)
    assert "ghost" not in text


async def test_slots_show_the_runs_held_now(app: App) -> None:
    release = asyncio.Event()

    @app.task(name="hold")
    async def hold() -> None:
        await release.wait()

    worker = fast_worker(app, concurrency=3)
    async with serving(worker) as (_, client), running(worker):
        infos = [await hold.submit() for _ in range(2)]
        for info in infos:
            await wait_status(app, tid(info), Status.RUNNING)
        text = (await client.get("/metrics")).text
        assert sample(text, "taskward_worker_slots", state="busy") == 2
        assert sample(text, "taskward_worker_slots", state="total") == 3
        release.set()
        for info in infos:
            await wait_status(app, tid(info), Status.COMPLETED)


class GetFails(FaultyStore):
    """A store whose reads by key fail while ``get`` is in `broken` (the probes' ping)."""

    async def get(self, task_id: UUID) -> TaskRecord | None:
        self._enter("get")
        return await self.inner.get(task_id)


async def test_ready_follows_the_store_and_turns_503_at_a_stop(app: App) -> None:
    store = GetFails(await app.connect())
    faulty = App(store)
    worker = fast_worker(faulty)
    store.broken.add("get")  # the store does not answer from the start
    async with serving(worker) as (server, client):
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "reason": "starting: the task store has not answered yet",
        }
        assert (await client.get("/health/live")).status_code == 200
        async with running(worker):
            store.broken.discard("get")
            assert (await eventually(lambda: ready(client))).json() == {"status": "ok"}
            store.broken.add("get")

            async def down() -> httpx.Response | None:
                response = await client.get("/health/ready")
                return response if response.status_code == 503 else None

            response = await eventually(down)
            assert response.json()["reason"] == "the task store is not reachable"
            assert (await client.get("/health/live")).status_code == 200  # alive all along
            store.broken.discard("get")
            await eventually(lambda: ready(client))
            server.drain()
            response = await client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["reason"] == "shutting down"
    await faulty.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET /health/live?verbose=1 HTTP/1.0\r\n\r\n", 200),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"hello\r\n\r\n", 400),
        (b"GET /health/live HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 400),
    ],
)
async def test_what_the_http_server_answers(app: App, request_bytes: bytes, status: int) -> None:
    worker = fast_worker(app)
    async with serving(worker) as (server, _):
        host, port = server.sock.getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request_bytes)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
        assert f"Content-Length: {len(body)}".encode() in head
        assert b"Connection: close" in head


async def test_head_answers_without_a_body(app: App) -> None:
    worker = fast_worker(app)
    async with serving(worker) as (_, client):
        response = await client.head("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert int(response.headers["content-length"]) > 0
        assert response.content == b""
