"""Helpers for end-to-end tests: real worker processes on a real store file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from taskward.app import App
from taskward.models import TaskInfo
from taskward.stores.base import NewTask
from waiting import eventually, get

APPS = Path(__file__).parent / "apps"


@dataclass
class WorkerProc:
    """A ``taskward worker`` subprocess and its captured log."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)


@dataclass
class Cluster:
    """Starts workers on one store and reads what they did."""

    db: str
    ledger: Path
    tmp: Path
    workers: list[WorkerProc] = field(default_factory=list)

    def start_worker(self, *args: str, app: str = "faultapp:app") -> WorkerProc:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        env = {
            **os.environ,
            "TASKWARD_DB": self.db,
            "LEDGER": str(self.ledger),
            "PYTHONPATH": str(APPS),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "taskward", "-v", "worker", app, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
            )
        worker = WorkerProc(proc, log)
        self.workers.append(worker)
        return worker

    def ledger_lines(self, kind: str = "done") -> list[tuple[str, int]]:
        if not self.ledger.exists():
            return []
        out = []
        for line in self.ledger.read_text().splitlines():
            word, key, pid = line.split()
            if word == kind:
                out.append((key, int(pid)))
        return out

    def stop_all(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(10)


def new_task(task: str, args: dict[str, Any] | str, **options: Any) -> NewTask:
    """A row to insert directly (``args`` as a dict, or raw text to store as it is)."""
    text = args if isinstance(args, str) else json.dumps(args)
    return NewTask(id=uuid.uuid4(), task=task, args=text, **options)


async def all_registered(app: App, workers: list[WorkerProc]) -> None:
    """Wait until every one of ``workers`` has registered in the store. A worker still
    starting up has not installed its signal handlers: a SIGTERM then simply kills it."""

    async def registered() -> bool:
        return len(await app.workers()) == len(workers)

    await eventually(registered, timeout=30, interval=0.2)


async def infos(app: App, ids: list[uuid.UUID | None]) -> list[TaskInfo]:
    """The current snapshot of each task, in order."""
    return [await get(app, task_id) for task_id in ids]


#: The `taskward serve` command, as a user runs it.
SERVE = [sys.executable, "-m", "taskward", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A ``taskward serve`` subprocess and its captured log."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    db: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_serve(
    tmp: Path, *args: str, token: str | None = None, env: Mapping[str, str] | None = None
) -> Server:
    """``taskward serve`` on a free port and a SQLite file in ``tmp``, once it is ready.

    ``env``: more environment (the apps of ``tests/e2e/apps`` import by name).
    """
    port = free_port()
    log = tmp / f"serve-{port}.log"
    db = f"sqlite:///{tmp / 'tasks.db'}"
    # The developer's own TASKWARD_* settings (a token, a redaction list) stay out.
    full = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}
    full.update(TASKWARD_DB=db, PYTHONPATH=str(APPS), **(env or {}))
    if token is not None:
        full["TASKWARD_API_TOKEN"] = token
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVE, "--port", str(port), *args],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    server = Server(proc, port, log, db)
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not become ready:\n{server.output()}")
        time.sleep(0.05)
