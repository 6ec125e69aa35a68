"""A web client's trace continues through ``POST /api/tasks``: its ``traceparent`` header is
the parent of each task's send span, and the run continues from there (SDK in-memory
exporter; the API's app traces because the OpenTelemetry API is installed)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from taskward.app import App
from waiting import eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def header(n: int = 0) -> str:
    """A client's traceparent; ``n`` makes the span id (and so the request) another."""
    return f"00-{TRACE}-{int(SPAN, 16) + n:016x}-01"


def sends(spans: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """The send spans by task id."""
    found = [s for s in spans.get_finished_spans() if s.name.startswith("send ")]
    return {str(dict(s.attributes or {})["messaging.message.id"]): s for s in found}


def parent(span: ReadableSpan) -> str | None:
    """The span's parent as traceparent-like text (trace id-span id)."""
    if span.parent is None:
        return None
    return f"{span.parent.trace_id:032x}-{span.parent.span_id:016x}"


def origin(span: ReadableSpan, spans: InMemorySpanExporter) -> str | None:
    """Where the span's trace came from: the first ancestor this process did not record
    (the web client's span, as trace id-span id), or None when the trace started here.

    Between the request's context and the send span there may be a server span (FastAPI's
    own telemetry makes one when OpenTelemetry is installed): it is walked through.
    """
    recorded = {s.context.span_id: s for s in spans.get_finished_spans() if s.context}
    while span.parent is not None:
        above = recorded.get(span.parent.span_id)
        if above is None:
            return parent(span)
        span = above
    return None


async def test_a_request_s_traceparent_is_the_parent_of_its_send_and_run(
    app: App, worker_client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    assert app._tracing is not None
    response = await worker_client.post(
        "/api/tasks", json={"task": "add", "args": {"a": 1}}, headers={"traceparent": header()}
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    send = sends(spans)[task_id]
    assert send.kind is SpanKind.PRODUCER
    assert origin(send, spans) == f"{TRACE}-{SPAN}"

    def process() -> ReadableSpan | None:
        found = [s for s in spans.get_finished_spans() if s.name == "process add"]
        return found[0] if found else None

    run = await eventually(process, timeout=5.0)
    assert send.context is not None
    assert parent(run) == f"{send.context.trace_id:032x}-{send.context.span_id:016x}"
    assert f"{send.context.trace_id:032x}" == TRACE  # one trace, from the web client on


async def test_each_task_of_a_batch_continues_the_request(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    for path in ("/api/tasks/batch", "/api/tasks"):
        response = await client.post(
            path,
            json=[{"task": "add"}, {"task": "boom", "args": {"message": "x"}}],
            headers={"traceparent": header()},
        )
        assert response.status_code == 202, response.text
        by_id = sends(spans)
        assert [origin(by_id[i], spans) for i in response.json()] == [f"{TRACE}-{SPAN}"] * 2


async def test_requests_inserted_together_keep_their_own_traces(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    # Concurrent requests share inserts (the API's group submitter): each still continues
    # its own client's trace.
    async def submit(n: int) -> str:
        response = await client.post(
            "/api/tasks", json={"task": "add"}, headers={"traceparent": header(n)}
        )
        assert response.status_code == 202, response.text
        task_id: str = response.json()["task_id"]
        return task_id

    ids = await asyncio.gather(*(submit(n) for n in range(1, 21)))
    by_id = sends(spans)
    assert [origin(by_id[i], spans) for i in ids] == [
        f"{TRACE}-{int(SPAN, 16) + n:016x}" for n in range(1, 21)
    ]


@pytest.mark.parametrize(
    "bad", ["", "junk", f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE.upper()}-{SPAN}-01"]
)
async def test_a_malformed_header_is_ignored(
    client: httpx.AsyncClient, spans: InMemorySpanExporter, bad: str
) -> None:
    # As the W3C says: an invalid traceparent starts a new trace, the request goes on.
    response = await client.post("/api/tasks", json={"task": "add"}, headers={"traceparent": bad})
    assert response.status_code == 202, response.text
    send = sends(spans)[response.json()["task_id"]]
    assert origin(send, spans) is None
    assert send.context is not None
    assert f"{send.context.trace_id:032x}" != TRACE


async def test_without_a_header_the_send_span_starts_a_trace(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    response = await client.post("/api/tasks", json={"task": "add"})
    assert response.status_code == 202, response.text
    assert origin(sends(spans)[response.json()["task_id"]], spans) is None
