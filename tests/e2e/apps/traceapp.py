"""The app of the tracing end-to-end tests: it traces, and each process that imports it
writes the spans it ends to ``spans-<pid>.jsonl`` in its working directory, one JSON
object a line (a tiny exporter, so that the test reads every process's spans)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from taskward.app import App


class JsonLinesExporter(SpanExporter):
    """Appends each ended span to a file, as one line of JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.path.open("a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(_as_json(span)) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _as_json(span: ReadableSpan) -> dict[str, object]:
    assert span.context is not None
    return {
        "pid": os.getpid(),
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_trace_id": None if span.parent is None else f"{span.parent.trace_id:032x}",
        "parent_span_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "description": span.status.description,
    }


provider = TracerProvider()
provider.add_span_processor(
    SimpleSpanProcessor(JsonLinesExporter(Path.cwd() / f"spans-{os.getpid()}.jsonl"))
)
trace.set_tracer_provider(provider)

app = App(tracing=True)  # TASKWARD_DB chooses the store


@app.task(name="greet")
async def greet(name: str) -> str:
    """A run that completes."""
    return f"hello {name}"


@app.task(name="fail", max_attempts=1)
async def fail(reason: str) -> None:
    """A run that fails for good."""
    raise RuntimeError(reason)
