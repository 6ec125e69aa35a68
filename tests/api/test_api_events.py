"""Live events: the hub finds changes in the store (made by anyone) and streams them as SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_helpers import make_app

from taskward.api.events import EventHub
from taskward.app import App
from taskward.models import Status
from taskward.testing import drain
from waiting import eventually


def parse(chunk: bytes) -> list[tuple[str, Any]]:
    """The (event, data) pairs in an SSE chunk; comments come out as ("comment", text)."""
    out: list[tuple[str, Any]] = []
    for block in chunk.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                out.append(("comment", line[1:].strip()))
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


class Reader:
    """Reads a hub subscription in the background, collecting its events."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.stream = stream
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        self.connected = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for chunk in self.stream:
            self.events.extend(parse(chunk))
            self.connected.set()
            self.changed.set()

    async def wait_for(self, kind: str, **match: Any) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                for event, data in self.events:
                    if event == kind and all(data.get(k) == v for k, v in match.items()):
                        return dict(data)
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(find(), 2.0)

    def of(self, task_id: str) -> list[tuple[str, str]]:
        return [
            (event, data["status"])
            for event, data in self.events
            if isinstance(data, dict) and data.get("id") == task_id
        ]


@pytest.fixture
async def hub(app: App) -> AsyncIterator[EventHub]:
    await app.open()
    hub = EventHub(app, interval=0.01)
    await hub.poll()  # the first look only learns what is there
    yield hub
    hub.close()


@contextlib.asynccontextmanager
async def reading(hub: EventHub, **filters: Any) -> AsyncIterator[Reader]:
    reader = Reader(hub.subscribe(keepalive=0.05, **filters))
    try:
        await asyncio.wait_for(reader.connected.wait(), 1.0)
        yield reader
    finally:
        reader.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader.task


async def test_changes_made_outside_the_api_are_streamed(hub: EventHub, app: App) -> None:
    async with reading(hub) as reader:
        info = await app.get_task("add").submit_args({"a": 1})
        await hub.poll()
        await reader.wait_for("status", id=str(info.id), status="Pending")
        await drain(app)
        await hub.poll()
        done = await reader.wait_for("status", id=str(info.id), status="Completed")
        assert done["result"] == 3
        assert "args" not in done
        assert "traceback" not in done
        assert reader.of(str(info.id)) == [("status", "Pending"), ("status", "Completed")]


async def test_progress_and_attempts_of_running_tasks(hub: EventHub, app: App) -> None:
    store = await app.connect()
    info = await app.get_task("hold").submit_args({"seconds": 1})
    assert info.id is not None
    async with reading(hub) as reader:
        (claimed,) = await store.claim("w1", None, 1, 30)
        token = claimed.lease_token
        assert token is not None
        await hub.poll()
        await reader.wait_for("status", id=str(info.id), status="Running")
        await store.set_progress(info.id, token, json.dumps({"done": 1, "total": 4}))
        await hub.poll()
        progress = await reader.wait_for("progress", id=str(info.id))
        assert progress["progress"] == {"done": 1.0, "total": 4.0, "message": None}
        await hub.poll()  # nothing new: nothing sent
        await store.finish(info.id, token, Status.FAILED, error="gave up")
        await hub.poll()
        failed = await reader.wait_for("status", id=str(info.id), status="Failed")
        assert failed["error"] == "gave up"
        assert [e for e, _ in reader.events if e in ("status", "progress")] == [
            "status",
            "progress",
            "status",
        ]


async def test_cancel_by_another_process_of_a_pending_task(hub: EventHub, app: App) -> None:
    info = await app.get_task("add").submit_args({})
    assert info.id is not None
    await hub.poll()
    async with reading(hub) as reader:
        await app.cancel(info.id)  # straight to the store, as the CLI would
        await hub.poll()
        await reader.wait_for("status", id=str(info.id), status="Cancelled")


async def test_filters(hub: EventHub, app: App) -> None:
    first = await app.get_task("add").submit_args({})
    assert first.id is not None
    async with (
        reading(hub, ids=[str(first.id)]) as by_id,
        reading(hub, task="boom") as by_task,
        reading(hub, queue="other") as by_queue,
    ):
        second = await app.get_task("boom").submit_args({}, queue="other")
        await app.cancel(first.id)
        await hub.poll()
        await by_id.wait_for("status", id=str(first.id), status="Cancelled")
        await by_task.wait_for("status", id=str(second.id))
        await by_queue.wait_for("status", id=str(second.id))
        assert {d["id"] for e, d in by_id.events if e == "status"} == {str(first.id)}
        assert {d["id"] for e, d in by_task.events if e == "status"} == {str(second.id)}


async def test_keepalive_and_close(app: App) -> None:
    hub = EventHub(app)
    chunks: list[bytes] = []

    async def read() -> None:
        async for chunk in hub.subscribe(keepalive=0.02):
            chunks.append(chunk)

    reader = asyncio.create_task(read())
    # Quiet for its keepalive interval, the stream sends a comment.
    await eventually(lambda: b": keep-alive\n\n" in chunks, timeout=0.1)
    hub.close()
    await asyncio.wait_for(reader, 1.0)  # closing the hub ends the stream
    assert chunks[0].startswith(b"retry: ")
    assert set(chunks[1:]) == {b": keep-alive\n\n"}


async def test_a_slow_reader_is_told_it_lagged(hub: EventHub, app: App) -> None:
    stream = hub.subscribe(keepalive=5)
    assert (await anext(stream)).startswith(b"retry:")
    tasks = [app.prepare("add", {"a": i}) for i in range(1100)]
    for info in await app.submit_many(tasks):
        hub.observe(info)
    chunk = await anext(stream)
    assert parse(chunk)[0][0] == "lagged"
    await stream.aclose()


async def test_the_run_loop_survives_store_failures(app: App) -> None:
    hub = EventHub(app, interval=0.01)
    calls = 0

    async def failing_poll() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("store down")

    hub.poll = failing_poll  # type: ignore[method-assign]
    runner = asyncio.create_task(hub.run())
    await eventually(lambda: calls >= 2, timeout=0.2)  # it polled again after a failure
    assert not runner.done()
    hub.close()
    await asyncio.wait_for(runner, 1.0)  # and ends, without an error, once closed


async def test_observing_the_same_state_twice_sends_once() -> None:
    app = make_app()
    hub = EventHub(app)
    stream = hub.subscribe(keepalive=5)
    await anext(stream)
    info = await app.get_task("add").submit_args({})
    hub.observe(info)
    hub.observe(info)
    hub.close()
    rest = b"".join([chunk async for chunk in stream])
    assert [e for e, _ in parse(rest)] == ["status"]


@pytest.mark.parametrize(
    ("ids", "index"),
    [(["not-a-uuid"], 0), ([str(uuid.uuid4()), "42"], 1)],
)
async def test_a_malformed_task_id_filter_is_422(
    client: httpx.AsyncClient, ids: list[str], index: int
) -> None:
    # Not a stream that would silently never send anything.
    response = await client.get("/api/events", params={"id": ids})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "id", index]
    assert problem["msg"] == f"{ids[index]!r} is not a task id (a UUID)"
