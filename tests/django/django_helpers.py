"""Helpers of the Django tests: the project's settings for a store, worker processes, and
bounded waits for code without an event loop (Django's sync API refuses to run in one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PROJECT = Path(__file__).parent / "project"


def tasks_setting(url: str, **options: Any) -> dict[str, Any]:
    """settings.TASKS with the default backend on the store ``url``."""
    return {
        "default": {
            "BACKEND": "taskward.contrib.django.TaskwardBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"DB": url, **options},
        },
        "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    }


def wait_for(check: Callable[[], T | None], *, timeout: float = 20.0, what: str = "") -> T:
    """Call ``check`` until it returns something truthy, and return that; AssertionError
    once a call begun after ``timeout`` seconds still finds nothing."""
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        value = check()
        if value:
            return value
        if last:
            raise AssertionError(f"not within {timeout}s: {what or check} (last: {value!r:.200})")
        time.sleep(0.05)


@dataclass
class DjangoWorker:
    """A ``manage.py taskward_worker`` process and its log."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What it wrote so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then its exit code (it must exit within ``timeout``)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        """SIGKILL if still running (the end of a test that failed early)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_worker(url: str, tmp: Path, markers: Path, *args: str, number: int = 0) -> DjangoWorker:
    """``python manage.py taskward_worker ARGS`` on the store ``url``, in ``tmp``."""
    log = tmp / f"worker-{number}.log"
    env = {
        **os.environ,
        "TASKWARD_DB": url,
        "DJANGO_SETTINGS_MODULE": "testsite.settings",
        "MARKER_DIR": str(markers),
        "TASKWARD_LEASE": "5",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(PROJECT / "manage.py"), "taskward_worker", "-v", "2", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    return DjangoWorker(proc, log)
