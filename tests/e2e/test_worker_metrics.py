"""``taskward worker --metrics-port`` as a real process: its probes and metrics, JSON logs,
a SIGTERM as Kubernetes sends it (drain within the grace, not ready meanwhile, exit 0), a
store cut off (not ready until it answers again), and the errors of a bad setting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from e2e_helpers import APPS, Cluster, WorkerProc, free_port, new_task, start_serve
from tcp_proxy import PausableProxy

from taskward.app import App
from taskward.models import Status
from waiting import eventually, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=3) as c:
        yield c


def start(cluster: Cluster, *args: str) -> tuple[WorkerProc, str]:
    """A worker with its metrics port; the port's base URL."""
    port = free_port()
    worker = cluster.start_worker("--metrics-port", str(port), *args)
    return worker, f"http://127.0.0.1:{port}"


async def answer(client: httpx.AsyncClient, url: str, worker: WorkerProc) -> httpx.Response:
    """The first answer from ``url`` (the worker may still be starting)."""

    async def get() -> httpx.Response | None:
        assert worker.proc.poll() is None, worker.output()
        try:
            return await client.get(url)
        except httpx.TransportError:
            return None

    return await eventually(get, timeout=20, interval=0.1)


async def status_is(client: httpx.AsyncClient, url: str, code: int) -> httpx.Response | None:
    response = await client.get(url)
    return response if response.status_code == code else None


def json_lines(worker: WorkerProc) -> list[dict[str, object]]:
    """Every line of the worker's log, each one JSON object (else the test fails)."""
    return [json.loads(line) for line in worker.output().splitlines() if line.strip()]


async def test_probes_metrics_and_json_logs_of_a_worker_process(
    cluster: Cluster, store_app: App, client: httpx.AsyncClient
) -> None:
    worker, base = start(cluster, "--log-format", "json")
    live = await answer(client, f"{base}/health/live", worker)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await eventually(lambda: status_is(client, f"{base}/health/ready", 200), timeout=10)
    assert ready.json() == {"status": "ok"}
    quick, bad = await store_app.submit_many(
        [new_task("quick", {"key": "k1"}), new_task("typed", {"count": "not a number"})]
    )
    assert quick.id is not None
    assert bad.id is not None
    await wait_status(store_app, quick.id, Status.COMPLETED, timeout=10)
    await wait_status(store_app, bad.id, Status.FAILED, timeout=10)
    response = await client.get(f"{base}/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'taskward_task_run_seconds_bucket{le="0.01",task="quick"}' in text
    assert 'taskward_task_run_seconds_count{task="quick"} 1.0' in text
    assert 'taskward_tasks_completed_total{task="quick"} 1.0' in text
    assert 'taskward_tasks_failed_total{task="typed"} 1.0' in text
    assert 'taskward_worker_slots{state="total"} 10.0' in text
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    lines = json_lines(worker)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    # Every line of taskward's names the worker (asyncio's debug line at start does not).
    ours = [line for line in lines if str(line["logger"]).startswith("taskward.")]
    assert len(ours) >= 3
    assert len({line.get("worker") for line in ours}) == 1
    assert None not in {line.get("worker") for line in ours}
    [failed] = [line for line in lines if line.get("task_id") == str(bad.id)]
    assert failed["level"] == "ERROR"
    assert (failed["task"], failed["attempt"], failed["queue"]) == ("typed", 1, "default")
    assert "failed for good" in str(failed["message"])


async def test_a_child_process_tasks_log_lines_carry_the_runs_fields(
    cluster: Cluster, store_app: App
) -> None:
    # executor="process": the child's records are relayed by the worker, inside the run.
    worker = cluster.start_worker("--log-format", "json", "--processes", "1", app="procapp:app")
    [task] = await store_app.submit_many([new_task("chatty", {"word": "hello"}, queue="q2")])
    assert task.id is not None
    await wait_status(store_app, task.id, Status.COMPLETED, timeout=30)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    # What the task prints is not a log record: it reaches stdout as it is.
    output = worker.output().splitlines()
    assert "printed by the child" in output
    lines = [json.loads(text) for text in output if text.startswith("{")]
    [line] = [line for line in lines if "the child says hello" in str(line["message"])]
    assert (line["logger"], line["level"]) == ("procapp", "WARNING")
    assert (line["task_id"], line["task"], line["attempt"]) == (str(task.id), "chatty", 1)
    assert line["queue"] == "q2"
    assert isinstance(line["worker"], str)


async def test_sigterm_drains_the_running_task_not_ready_meanwhile_and_exits_0(
    cluster: Cluster, store_app: App, client: httpx.AsyncClient
) -> None:
    worker, base = start(cluster, "--grace", "20")
    await answer(client, f"{base}/health/live", worker)
    await eventually(lambda: status_is(client, f"{base}/health/ready", 200), timeout=10)
    [task] = await store_app.submit_many([new_task("sleepy", {"key": "s1", "seconds": 3})])
    assert task.id is not None
    await wait_status(store_app, task.id, Status.RUNNING, timeout=10)
    worker.signal(signal.SIGTERM)  # to the main process's PID, as the kubelet does
    draining = await eventually(lambda: status_is(client, f"{base}/health/ready", 503))
    assert draining.json() == {"status": "unavailable", "reason": "shutting down"}
    assert worker.proc.poll() is None  # still draining: the task has not ended yet
    assert (await client.get(f"{base}/health/live")).status_code == 200
    assert worker.wait(20) == 0
    info = await wait_status(store_app, task.id, Status.COMPLETED)
    assert info.attempts == 1  # it ran to its end in the grace: not released, not run again
    assert cluster.ledger_lines("done") == [("s1", worker.pid)]


@pytest.mark.postgres
async def test_ready_is_503_while_the_store_is_cut_off(
    tmp_path: Path, pg_url: str, client: httpx.AsyncClient
) -> None:
    parts = urlsplit(pg_url)
    proxy = PausableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = proxy.start()
    behind = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    cluster = Cluster(db=behind, ledger=tmp_path / "ledger", tmp=tmp_path)
    try:
        worker, base = start(cluster)
        await answer(client, f"{base}/health/live", worker)
        await eventually(lambda: status_is(client, f"{base}/health/ready", 200), timeout=15)
        proxy.pause()
        down = await eventually(
            lambda: status_is(client, f"{base}/health/ready", 503), timeout=15, interval=0.2
        )
        assert down.json()["reason"] == "the task store is not reachable"
        assert (await client.get(f"{base}/health/live")).status_code == 200
        proxy.resume()
        await eventually(lambda: status_is(client, f"{base}/health/ready", 200), timeout=15)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        cluster.stop_all()
        proxy.close()


async def test_serve_logs_json_and_shows_queue_latency(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    server = start_serve(tmp_path, "--no-worker", "--log-format", "json", "--access-log")
    try:
        submitted = await client.post(f"{server.url}/api/tasks", json={})
        assert submitted.status_code == 202

        async def waiting() -> str | None:
            text = (await client.get(f"{server.url}/metrics")).text
            for line in text.splitlines():
                if line.startswith('taskward_oldest_pending_age_seconds{queue="default"}'):
                    return line if float(line.split()[-1]) > 0 else None
            return None

        await eventually(waiting, timeout=10)
        assert "taskward_queue_depth" in (await client.get(f"{server.url}/metrics")).text
    finally:
        assert server.stop() == 0
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    messages = " ".join(str(line["message"]) for line in lines)
    assert "POST /api/tasks" in messages  # uvicorn's access log, as JSON too
    assert {"time", "level", "logger", "message"} <= set(lines[-1])


def run_cli(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``taskward`` with ``args`` in a fresh interpreter (``prelude`` runs first)."""
    code = f"{prelude}\nimport sys\nfrom taskward.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={"PYTHONPATH": str(APPS), "TASKWARD_DB": f"sqlite:///{tmp_path / 't.db'}"},
        check=False,
    )


def test_metrics_port_without_prometheus_client_is_a_usage_error(tmp_path: Path) -> None:
    # As if the server extra were not installed: the import of prometheus_client fails.
    done = run_cli(
        tmp_path,
        "worker",
        "faultapp:app",
        "--metrics-port",
        str(free_port()),
        prelude="import sys; sys.modules['prometheus_client'] = None",
    )
    assert done.returncode == 2, done.stderr
    assert "--metrics-port needs prometheus-client: pip install 'taskward[server]'" in done.stderr


def test_a_busy_metrics_port_is_a_usage_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(tmp_path, "worker", "faultapp:app", "--metrics-port", str(port))
    assert done.returncode == 2, done.stderr
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_bad_log_format_and_port_are_usage_errors(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "worker", "faultapp:app", "--log-format", "xml")
    assert done.returncode == 2
    assert "'xml' is not one of 'text', 'json'" in done.stderr
    done = run_cli(tmp_path, "worker", "faultapp:app", "--metrics-port", "70000")
    assert done.returncode == 2
    assert "70000 is not in the range 0<=x<=65535" in done.stderr
