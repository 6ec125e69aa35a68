"""``python manage.py taskward_worker``: run the Django tasks of a `TaskwardBackend` until
SIGTERM or SIGINT (a graceful stop, exit 0; a second signal stops at once)."""

from __future__ import annotations

import asyncio
import logging
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskward.loading import parse_queues

_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


def concurrency(text: str) -> int:
    """``--concurrency``: 1..10000 (argparse names this function in its error message)."""
    value = int(text)
    if not 1 <= value <= 10_000:
        raise ValueError(text)
    return value


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no types
    """Run a taskward worker for the Django tasks of one backend."""

    help = "Run a taskward worker for the Django tasks of a TaskwardBackend."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """The worker's options."""
        parser.add_argument(
            "--backend",
            default="default",
            help="The alias in settings.TASKS of a TaskwardBackend (default: default).",
        )
        parser.add_argument(
            "--queues",
            default=None,
            help="Comma-separated queues to serve (default: the backend's QUEUES); NAME:N also"
            " runs at most N tasks of that queue at once, within --concurrency.",
        )
        parser.add_argument(
            "--concurrency",
            type=concurrency,
            default=10,
            help="Tasks run at once, 1..10000 (default: 10).",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=15.0,
            help="Seconds running tasks get to finish after SIGTERM (default: 15).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the worker from the backend's settings and run it until a stop signal."""
        from taskward.contrib.django.backend import TaskwardBackend
        from taskward.contrib.django.compat import task_backends
        from taskward.signals import on_stop_signals
        from taskward.worker import Worker

        alias = options["backend"]
        try:
            backend = task_backends[alias]
        except Exception as exc:  # InvalidTaskBackendError, ImproperlyConfigured
            raise CommandError(f"task backend {alias!r}: {exc}") from None
        if not isinstance(backend, TaskwardBackend):
            raise CommandError(
                f"task backend {alias!r} is {type(backend).__name__}, not a TaskwardBackend"
            )
        queues: list[str] | None = sorted(backend.queues) or None
        limits: dict[str, int] = {}
        if options["queues"] is not None:
            try:
                queues, limits = parse_queues(options["queues"])
            except ValueError as exc:
                raise CommandError(f"--queues: {exc}") from None
        grace = options["grace"]
        if not grace >= 0:
            raise CommandError(f"--grace must be >= 0 seconds, not {grace}")
        self._log_to_stderr(options["verbosity"])
        app = backend.app
        app.refuse_in_run = True  # a refused path fails with its reason, never runs
        try:
            worker = Worker(
                app,
                queues=queues,
                concurrency=options["concurrency"],
                queue_limits=limits,
                grace=grace,
            )
        except ValueError as exc:  # a bad TASKWARD_LEASE, a limit on a queue not served
            raise CommandError(f"bad worker setting: {exc}") from None

        async def main() -> None:
            try:
                with on_stop_signals(worker.stop):
                    self.stdout.write(
                        f"taskward worker {worker.id} serving backend {alias!r}, queues"
                        f" {', '.join(queues) if queues else 'all'}"
                    )
                    self.stdout.flush()
                    await worker.run()
            finally:
                await app.close()

        asyncio.run(main())

    def _log_to_stderr(self, verbosity: int) -> None:
        """taskward's log on stderr at the level ``-v`` asks (1: warnings), unless the
        project's LOGGING already handles it."""
        logger = logging.getLogger("taskward")
        if logger.handlers:
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(_LEVELS.get(verbosity, logging.DEBUG))
