"""One trace across two real processes, on SQLite and on PostgreSQL: a submitting process
and a ``taskward worker`` subprocess each write the spans they end to a file of their own
(tests/e2e/apps/traceapp.py); the run's span is a child of the submit's, by the
traceparent stored with the task. And a real ``taskward serve`` continues a web client's
trace from its ``traceparent`` header to the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from e2e_helpers import APPS, Cluster, start_serve

from taskward.app import App
from taskward.models import Status
from waiting import eventually, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

Span = dict[str, Any]


def spans_of(folder: Path) -> dict[int, list[Span]]:
    """The spans every process wrote in ``folder``, by pid."""
    out: dict[int, list[Span]] = {}
    for path in sorted(folder.glob("spans-*.jsonl")):
        spans = [json.loads(line) for line in path.read_text().splitlines()]
        out[int(path.stem.removeprefix("spans-"))] = spans
    return out


def find(spans: list[Span], name: str) -> Span:
    [span] = [s for s in spans if s["name"] == name]
    return span


def submit(tmp: Path, db: str) -> dict[str, str]:
    """Run the submitting process to its end; what it printed."""
    done = subprocess.run(
        [sys.executable, str(APPS / "trace_submit.py")],
        env={**os.environ, "TASKWARD_DB": db, "PYTHONPATH": str(APPS)},
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed: dict[str, str] = json.loads(done.stdout)
    return printed


async def test_a_run_in_a_worker_process_continues_the_submitter_s_trace(
    db_cluster: Cluster, tmp_path: Path, db: str
) -> None:
    submitted = submit(tmp_path, db)
    [(submitter, sent)] = spans_of(tmp_path).items()  # the worker has not started yet
    request = find(sent, "request")
    send = find(sent, "send greet")
    assert (send["kind"], send["parent_span_id"]) == ("PRODUCER", request["span_id"])
    assert send["trace_id"] == request["trace_id"] == submitted["trace_id"]
    assert send["attributes"]["messaging.message.id"] == submitted["greet"]

    worker = db_cluster.start_worker(app="traceapp:app")
    observer = App(db, tracing=False)
    try:
        await wait_status(observer, UUID(submitted["greet"]), Status.COMPLETED, timeout=30)
        failed = await wait_status(observer, UUID(submitted["fail"]), Status.FAILED, timeout=30)
    finally:
        await observer.close()

    def worker_spans() -> list[Span] | None:
        ran = spans_of(tmp_path).get(worker.pid, [])
        return ran if len(ran) >= 2 else None

    ran = await eventually(worker_spans, timeout=10)
    process = find(ran, "process greet")
    assert worker.pid != submitter
    assert process["kind"] == "CONSUMER"
    # One trace id over both processes; the run's parent is the submit's send span.
    assert (process["trace_id"], process["parent_span_id"]) == (send["trace_id"], send["span_id"])
    assert process["attributes"] == {
        "messaging.system": "taskward",
        "messaging.operation.type": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": submitted["greet"],
        "taskward.task.name": "greet",
        "taskward.task.attempt": 1,
    }
    assert process["status"] == "UNSET"
    failing = find(ran, "process fail")
    assert failing["parent_span_id"] == find(sent, "send fail")["span_id"]
    assert (failing["status"], failing["description"]) == ("ERROR", failed.error)
    assert failed.error == "RuntimeError: on purpose"
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()


async def test_serve_continues_a_web_client_s_trace(tmp_path: Path) -> None:
    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    server = start_serve(tmp_path, "traceapp:app")
    try:
        response = httpx.post(
            f"{server.url}/api/tasks",
            json={"task": "greet", "args": {"name": "web"}},
            headers={"traceparent": f"00-{client_trace}-{client_span}-01"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]

        def process() -> Span | None:
            spans = spans_of(tmp_path).get(server.proc.pid, [])
            found = [s for s in spans if s["name"] == "process greet"]
            return found[0] if found else None

        run = await eventually(process, timeout=30)
    finally:
        assert server.stop() == 0, server.output()
    spans = spans_of(tmp_path)[server.proc.pid]
    send = find(spans, "send greet")
    assert send["attributes"]["messaging.message.id"] == task_id
    assert run["parent_span_id"] == send["span_id"]
    # From the run up through the send (and the server's own span, when FastAPI makes one)
    # to the web client's span: one trace.
    by_id = {s["span_id"]: s for s in spans}
    span = send
    while span["parent_span_id"] in by_id:
        span = by_id[span["parent_span_id"]]
    assert (span["parent_trace_id"], span["parent_span_id"]) == (client_trace, client_span)
    assert {s["trace_id"] for s in (run, send, span)} == {client_trace}
