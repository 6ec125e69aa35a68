"""Each program under examples/ runs as a real subprocess (``python -X dev``: asyncio debug
mode, warnings shown) with a bounded timeout, and says and does what it promises. The web
example is also driven in-process through its ASGI app, lifespan included."""

from __future__ import annotations

import asyncio
import importlib.util
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import httpx
import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Never acceptable on stderr: a task left pending in the loop, a coroutine never awaited, or
# an exception nobody looked at.
BAD = ("Task was destroyed but it is pending", "was never awaited", "never retrieved")


def assert_clean(stderr: str) -> None:
    for text in BAD:
        assert text not in stderr, stderr


def run_example(name: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-X", "dev", str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert_clean(done.stderr)
    return done


class Lines:
    """Reads a pipe line by line in a thread, so that a test can wait for a line, bounded."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:  # closed here, at its end, by the only thread that reads it
            for line in stream:
                self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"{text!r} never came; got:\n{''.join(self.seen)}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 15) -> str:
        """Everything up to the end of the stream."""
        deadline = time.monotonic() + timeout
        while (line := self._queue.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            self.seen.append(line)
        return "".join(self.seen)


@pytest.fixture
def start() -> Iterator[Any]:
    """Start an example as a child process; whatever is still running is killed at the end."""
    procs: list[subprocess.Popen[str]] = []
    readers: list[Lines] = []

    def starter(name: str, *args: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
        proc = subprocess.Popen(
            [sys.executable, "-X", "dev", str(EXAMPLES / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        readers.extend([out, err])
        return proc, out, err

    yield starter
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    for reader in readers:
        reader.thread.join(timeout=10)


# ----------------------------------------------------------------------- the docs' programs

ROOT = EXAMPLES.parent
# A line of a program in the docs that prints, and the comment saying what it prints.
_PRINTS = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<shown>.+)$")


def doc_programs(page: str) -> list[str]:
    """The complete programs of a Markdown page: its Python blocks that run ``main()``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.DOTALL)
    return [block for block in blocks if "asyncio.run(main())" in block]


@pytest.mark.parametrize("page", ["README.md", "docs/manager.md"])
def test_the_task_manager_programs_of_the_docs_print_what_their_comments_say(
    page: str, tmp_path: Path
) -> None:
    [program] = [p for p in doc_programs(page) if "TaskManager" in p]
    promised = [m["shown"] for line in program.splitlines() if (m := _PRINTS.match(line))]
    assert promised, "the program says what it prints"
    path = tmp_path / "program.py"
    path.write_text(program)
    done = subprocess.run(
        [sys.executable, "-X", "dev", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert_clean(done.stderr)
    assert done.stdout.splitlines() == promised


# ----------------------------------------------------------------------- named tasks


def test_named_tasks_walks_through_the_api() -> None:
    done = run_example("named_tasks.py")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "refused: a task named 'data-sync' is already" in out
    assert "report: Cancelled, started_at=None" in out
    assert "data-sync -> 'user 42: 3 pages synced'" in out
    assert "data-sync    Completed progress='page 3 of 3'" in out
    assert "thumbnail -> 'cat.png -> thumb_cat.png'" in out
    assert "data-sync -> 'user 43: 1 pages synced'" in out
    assert "wait raised ValueError: the upstream API said no" in out
    assert "stubborn: Cancelled (ignored cancellation for 0.1s)" in out
    assert "wait raised TaskCancelledError: task 'stubborn' was cancelled" in out
    assert "cleanup_finished() forgot 5 tasks; count=0" in out
    assert "last         Cancelled" in out
    assert out.rstrip().endswith("done")
    # The failure's traceback and the abandoned task are logged, naming the task.
    assert "ERROR taskward.manager: task 'import' failed" in done.stderr
    assert "Traceback" in done.stderr
    assert "WARNING taskward.manager: task 'stubborn' ignored cancellation" in done.stderr


# ----------------------------------------------------------------------- worker pool


def test_worker_pool_drains_the_queue_within_its_bounds() -> None:
    done = run_example("worker_pool.py", "--jobs", "24", "--workers", "3", "--queue", "4")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["most running at once"] == "3 (workers: 3)"
    assert lines["completed"] == "24, failed or cancelled: 0"
    started = lines["start order"].split()
    assert sorted(started) == sorted(f"job-{i:02d}-" + started_kind(i) for i in range(24))
    waits = int(lines["producer waited for room"].split()[0])
    assert 0 < waits < 24  # backpressure happened, and not for every job


def started_kind(job: int) -> str:
    return {0: "urgent", 1: "normal", 2: "bulk"}[(job * 7) % 3]


def test_worker_pool_starts_waiting_jobs_by_priority_then_in_order() -> None:
    # One worker and room for all nine: they all wait before the first starts, so the start
    # order is exactly priority order, and submission order within a priority.
    done = run_example("worker_pool.py", "--jobs", "9", "--workers", "1", "--queue", "8")
    assert done.returncode == 0, done.stderr
    order = next(line for line in done.stdout.splitlines() if line.startswith("start order:"))
    started = order.split(": ", 1)[1].split()
    rank = ["urgent", "normal", "bulk"]
    expected = sorted(
        (f"job-{i:02d}-{started_kind(i)}" for i in range(9)),
        key=lambda name: (rank.index(name.rsplit("-", 1)[1]), name),
    )
    assert started == expected


# ----------------------------------------------------------------------- periodic worker


def test_periodic_worker_stops_after_its_time_is_up() -> None:
    done = run_example("periodic_worker.py", "--seconds", "1", "--interval", "0.1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    refreshes = [line for line in out.splitlines() if line.startswith("refresh ")]
    assert refreshes[0] == "refresh 1 by task 'refresh-cache'"  # run_now: at once
    assert "stopping (time is up)" in out
    assert f"stopped after {len(refreshes)} refreshes; refresh-cache is Cancelled" in out
    assert "shutdown: task 'refresh-cache' ended Cancelled" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda sig: sig.name)
def test_periodic_worker_stops_cleanly_on_a_signal(start: Any, sig: signal.Signals) -> None:
    proc, out, err = start("periodic_worker.py", "--seconds", "60", "--interval", "0.05")
    out.wait_for("refresh 2 by task")
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    stdout = out.rest()
    assert f"stopping ({sig.name})" in stdout
    assert "refresh-cache is Cancelled" in stdout
    assert_clean(err.rest())


# ----------------------------------------------------------------------- web + email


@pytest.fixture(scope="module")
def web_email() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_email", EXAMPLES / "web_email.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_web_signup_answers_at_once_and_the_email_is_sent_in_the_background(
    web_email: ModuleType,
) -> None:
    assert web_email.app.title  # the module-level app that `python web_email.py` serves
    app = web_email.create_app(email_seconds=0.01)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        async with asyncio.timeout(2):
            created = await client.post("/signup", json={"email": "ada@example.com"})
        assert created.status_code == 202
        body = created.json()
        assert body["task"] == "welcome-ada@example.com"
        assert body["status"] in {"Pending", "Running"}

        again = await client.post("/signup", json={"email": "ada@example.com"})
        assert again.status_code == 409
        assert "on its way" in again.json()["detail"]

        async with asyncio.timeout(5):
            status = await client.get("/tasks/welcome-ada@example.com", params={"wait": 3})
        assert status.status_code == 200
        info = status.json()
        assert info["status"] == "Completed"
        assert info["result"] == "sent to ada@example.com"
        assert info["progress"] == {"done": 3, "total": 3, "message": "sent"}
        assert app.state.outbox == ["ada@example.com"]

        assert (await client.get("/tasks/welcome-nobody")).status_code == 404
        assert (await client.post("/signup", json={})).status_code == 422
        counts = (await client.get("/tasks")).json()
        assert counts == {"count": 1, "running": 0, "pending": 0}


async def test_web_shutdown_cancels_emails_still_being_sent(web_email: ModuleType) -> None:
    app = web_email.create_app(email_seconds=60)
    transport = httpx.ASGITransport(app=app)
    async with asyncio.timeout(5):
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            created = await client.post("/signup", json={"email": "slow@example.com"})
            assert created.status_code == 202
            tasks = app.state.tasks
        # Leaving the lifespan shut the manager down, well within the 5 s bound.
    info = tasks.status("welcome-slow@example.com")
    assert info is not None
    assert info.status.value == "Cancelled"
    assert app.state.outbox == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_web_email_serves_on_loopback_and_stops_on_sigterm(start: Any) -> None:
    port = free_port()
    proc, _out, err = start("web_email.py", "--port", str(port), "--email-seconds", "0.05")
    err.wait_for(f"Uvicorn running on http://127.0.0.1:{port}")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        created = client.post("/signup", json={"email": "grace@example.com"})
        assert created.status_code == 202
        info = client.get("/tasks/welcome-grace@example.com", params={"wait": 5}).json()
        assert info["status"] == "Completed"
        # One more, still in flight when the server is told to stop.
        assert client.post("/signup", json={"email": "late@example.com"}).status_code == 202
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down (the lifespan closes the manager), then re-raises SIGTERM.
    assert proc.wait(timeout=15) in {0, -signal.SIGTERM}
    stderr = err.rest()
    assert "Application shutdown complete" in stderr
    assert_clean(stderr)
