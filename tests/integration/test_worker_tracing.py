"""Tracing in one process, on memory and on a SQLite file: the send span of each submit, the
process span of each run, their attributes and statuses, and one trace from the caller's
span to the run, recorded by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any
from uuid import UUID

import pytest
from integration_helpers import StoreFactory, fast_worker, running, tid
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from taskward.app import App
from taskward.errors import DuplicateNameError, InvalidArgumentsError
from taskward.models import Status
from taskward.retry import Backoff
from taskward.stores.base import Store
from waiting import eventually, wait_status

SECRET = "sk-live-5e2f9d7a1c"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def register(app: App) -> None:
    @app.task(name="add", queue="maths")
    async def add(a: int, b: int) -> int:
        # The run's span is current in the task: spans of its own are its children.
        with trace.get_tracer("test").start_as_current_span("inside"):
            return a + b

    @app.task(name="leak", max_attempts=1)
    async def leak(api_key: SecretStr) -> None:
        raise ValueError(f"refused key {api_key.get_secret_value()}")

    @app.task(name="flaky", max_attempts=2, retry=Backoff(base=0.01, cap=0.01))
    def flaky(n: int) -> None:  # a plain function: runs in a thread
        raise RuntimeError("not yet")

    @app.task(name="hold")
    async def hold(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @app.task(name="chain")
    async def chain() -> str:
        return str((await app.submit("add", 1, 1)).id)


@pytest.fixture
def traced_app(make_store: StoreFactory) -> App:
    app = App(make_store(), tracing=True)
    register(app)
    return app


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = named(spans, name)
    return span


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def parent_of(span: ReadableSpan) -> tuple[int, int] | None:
    return None if span.parent is None else (span.parent.trace_id, span.parent.span_id)


async def stored_traceparent(app: App, task_id: UUID) -> str | None:
    row = await (await app.connect()).get(task_id)
    assert row is not None
    return row.traceparent


async def test_one_trace_from_the_caller_through_send_to_process(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("test").start_as_current_span("request") as request:
        info = await traced_app.submit("add", 2, 3)
    send = one(spans, "send add")
    assert parent_of(send) == (
        request.get_span_context().trace_id,
        request.get_span_context().span_id,
    )
    assert send.kind is SpanKind.PRODUCER
    assert dict(send.attributes or {}) == {
        "messaging.system": "taskward",
        "messaging.operation.type": "send",
        "messaging.destination.name": "maths",
        "messaging.message.id": str(info.id),
        "taskward.task.name": "add",
    }
    assert send.context is not None
    flags = int(send.context.trace_flags)  # sampled, and with newer SDKs "random" (0x02)
    trace_id, span_id = ids(send)
    stored = await stored_traceparent(traced_app, tid(info))
    assert stored == f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    async with running(fast_worker(traced_app)):
        await wait_status(traced_app, info.id, Status.COMPLETED)
        await eventually(lambda: named(spans, "process add"))
    process = one(spans, "process add")
    assert parent_of(process) == ids(send)  # one trace: the run continues the submit
    assert process.kind is SpanKind.CONSUMER
    assert dict(process.attributes or {}) == {
        "messaging.system": "taskward",
        "messaging.operation.type": "process",
        "messaging.destination.name": "maths",
        "messaging.message.id": str(info.id),
        "taskward.task.name": "add",
        "taskward.task.attempt": 1,
    }
    assert process.status.status_code is StatusCode.UNSET
    assert parent_of(one(spans, "inside")) == ids(process)


async def test_a_failed_run_is_an_error_with_the_masked_text_only(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    info = await traced_app.submit("leak", SecretStr(SECRET))
    async with running(fast_worker(traced_app)):
        failed = await wait_status(traced_app, info.id, Status.FAILED)
        await eventually(lambda: named(spans, "process leak"))
    process = one(spans, "process leak")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == failed.error
    assert failed.error is not None
    assert "***" in failed.error
    [event] = process.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == failed.error
    assert "Traceback" in str(attributes["exception.stacktrace"])
    assert dict(process.attributes or {})["error.type"] == "ValueError"
    # The secret is nowhere on either span, and no attribute holds arguments.
    for span in (process, one(spans, "send leak")):
        assert SECRET not in span.to_json()
        assert not any("arg" in key for key in dict(span.attributes or {}))


async def test_each_attempt_is_a_process_span_of_the_same_send(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    info = await traced_app.submit("flaky", 1)
    async with running(fast_worker(traced_app)):
        await wait_status(traced_app, info.id, Status.FAILED)
        await eventually(lambda: len(named(spans, "process flaky")) == 2)
    send = one(spans, "send flaky")
    attempts = sorted(named(spans, "process flaky"), key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {})["taskward.task.attempt"] for s in attempts] == [1, 2]
    for span in attempts:
        assert parent_of(span) == ids(send)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "RuntimeError: not yet"


async def test_a_cancelled_run_is_an_error(traced_app: App, spans: InMemorySpanExporter) -> None:
    info = await traced_app.submit("hold", 30.0)
    async with running(fast_worker(traced_app)):
        await wait_status(traced_app, info.id, Status.RUNNING)
        await traced_app.cancel(tid(info))
        await wait_status(traced_app, info.id, Status.CANCELLED, timeout=5.0)
        await eventually(lambda: named(spans, "process hold"))
    process = one(spans, "process hold")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "cancelled (cancel)"
    assert process.events == ()  # no exception: a cancel is not one
    assert dict(process.attributes or {})["error.type"] == "Cancelled"


async def test_submit_many_sends_one_span_per_task(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    given = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    batch = [
        traced_app.prepare("add", {"a": 1, "b": 1}),
        dataclasses.replace(traced_app.prepare("add", {"a": 2, "b": 2}), traceparent=given),
    ]
    with trace.get_tracer("test").start_as_current_span("request") as request:
        infos = await traced_app.submit_many(batch)
    caller = request.get_span_context()
    sends = {dict(s.attributes or {})["messaging.message.id"]: s for s in named(spans, "send add")}
    assert set(sends) == {str(i.id) for i in infos}
    # A task's own traceparent is its send span's parent; else the current span is.
    assert parent_of(sends[str(infos[0].id)]) == (caller.trace_id, caller.span_id)
    assert parent_of(sends[str(infos[1].id)]) == (int(CALLER_TRACE, 16), int(CALLER_SPAN, 16))
    assert batch[1].traceparent == given  # the caller's NewTask is left as it was
    async with running(fast_worker(traced_app)):
        for info in infos:
            await wait_status(traced_app, info.id, Status.COMPLETED)
        await eventually(lambda: len(named(spans, "process add")) == 2)
    for process in named(spans, "process add"):
        task_id = dict(process.attributes or {})["messaging.message.id"]
        assert parent_of(process) == ids(sends[str(task_id)])


async def test_a_malformed_traceparent_is_refused_before_anything_is_sent(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    good = traced_app.prepare("add", {"a": 1, "b": 1})
    for bad in ("00-abc", f"00-{'0' * 32}-{CALLER_SPAN}-01", f"01-{CALLER_TRACE}-{CALLER_SPAN}-01"):
        bad_task = dataclasses.replace(traced_app.prepare("add", {"a": 1, "b": 1}), traceparent=bad)
        with pytest.raises(InvalidArgumentsError, match="traceparent") as caught:
            await traced_app.submit_many([good, bad_task])
        assert caught.value.field == "traceparent"
    assert spans.get_finished_spans() == ()
    assert (await traced_app.counts()).by_status()[Status.PENDING] == 0


async def test_a_refused_insert_ends_its_send_span_in_error(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    await traced_app.submit("add", 1, 1, name="once")
    with pytest.raises(DuplicateNameError):
        await traced_app.submit("add", 1, 1, name="once")
    first, second = sorted(named(spans, "send add"), key=lambda s: s.start_time or 0)
    assert first.status.status_code is StatusCode.UNSET
    assert second.status.status_code is StatusCode.ERROR
    assert [e.name for e in second.events] == ["exception"]


async def test_a_malformed_stored_traceparent_starts_a_trace_of_its_own(
    traced_app: App, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    # Written around the App's checks (an older or foreign writer): the store keeps any text.
    store: Store = await traced_app.connect()
    new = dataclasses.replace(traced_app.prepare("add", {"a": 1, "b": 2}), traceparent="junk")
    [row] = await store.insert([new])
    with caplog.at_level(logging.DEBUG, logger="taskward.tracing"):
        async with running(fast_worker(traced_app)):
            await wait_status(traced_app, row.id, Status.COMPLETED)
            await eventually(lambda: named(spans, "process add"))
    assert one(spans, "process add").parent is None
    assert any("malformed" in r.getMessage() and "'junk'" in r.getMessage() for r in caplog.records)


async def test_a_task_without_a_traceparent_runs_in_a_new_trace(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    store: Store = await traced_app.connect()
    [row] = await store.insert([traced_app.prepare("add", {"a": 1, "b": 2})])
    with trace.get_tracer("test").start_as_current_span("ambient"):
        async with running(fast_worker(traced_app)):  # the worker's own context is not used
            await wait_status(traced_app, row.id, Status.COMPLETED)
            await eventually(lambda: named(spans, "process add"))
    assert one(spans, "process add").parent is None


async def test_tracing_off_makes_no_span_and_stores_no_traceparent(
    make_store: StoreFactory, spans: InMemorySpanExporter
) -> None:
    app = App(make_store(), tracing=False)
    register(app)
    assert app._tracing is None
    with trace.get_tracer("test").start_as_current_span("request"):
        info = await app.submit("add", 1, 2)
    async with running(fast_worker(app)):
        await wait_status(app, info.id, Status.COMPLETED)
    assert await stored_traceparent(app, tid(info)) is None
    assert sorted(s.name for s in spans.get_finished_spans()) == ["inside", "request"]


async def test_tracing_off_still_stores_a_given_traceparent(
    make_store: StoreFactory,
) -> None:
    app = App(make_store(), tracing=False)
    register(app)
    given = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    [info] = await app.submit_many(
        [dataclasses.replace(app.prepare("add", {"a": 1, "b": 1}), traceparent=given)]
    )
    assert await stored_traceparent(app, tid(info)) == given
    bad = dataclasses.replace(app.prepare("add", {"a": 1, "b": 1}), traceparent="x" * 55)
    with pytest.raises(InvalidArgumentsError, match="traceparent"):
        await app.submit_many([bad])


def test_the_sync_facade_continues_the_caller_s_trace(
    tmp_path: Any, spans: InMemorySpanExporter
) -> None:
    app = App(f"sqlite:///{tmp_path / 'sync.db'}", tracing=True)
    register(app)
    try:
        with trace.get_tracer("test").start_as_current_span("view") as view:
            info = app.sync.submit("add", 1, 2)
        send = one(spans, "send add")
        caller = view.get_span_context()
        assert parent_of(send) == (caller.trace_id, caller.span_id)
        assert dict(send.attributes or {})["messaging.message.id"] == str(info.id)
    finally:
        asyncio.run(app.close())


async def test_a_task_submitted_by_a_run_continues_its_trace(
    traced_app: App, spans: InMemorySpanExporter
) -> None:
    info = await traced_app.submit("chain")
    async with running(fast_worker(traced_app)):
        await wait_status(traced_app, info.id, Status.COMPLETED)
        child = UUID(await traced_app.wait(tid(info), timeout=5))
        await wait_status(traced_app, child, Status.COMPLETED)
        await eventually(lambda: named(spans, "process add"))
    chain = one(spans, "process chain")
    send = one(spans, "send add")
    assert parent_of(send) == ids(chain)
    assert parent_of(one(spans, "process add")) == ids(send)
    assert {ids(s)[0] for s in spans.get_finished_spans()} == {ids(chain)[0]}
