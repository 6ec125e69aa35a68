"""Prometheus metrics of one worker process, as that worker saw its own runs.

- ``taskward_task_run_seconds{task}``: a histogram of how long each run's function ran
  (from its start in this worker to its return, the outcome's write left out), every run
  that returned, whatever its outcome.
- ``taskward_tasks_{completed,failed,cancelled,retried}_total{task}``: the outcomes this
  worker *wrote* (a run whose lease was lost wrote nothing and counts in none). Each worker
  counts only its own: aggregate workers with ``sum``. (``serve``'s ``/metrics`` has
  counters of the same names counting every finish it saw in the store, from any worker.)
- ``taskward_worker_slots{state="busy"|"total"}``: the tasks this worker holds now
  (running, or their outcome being written) and its ``--concurrency``, read at each scrape.

Labels are the app's task names: a row naming a task the app does not have counts as
``task="(unknown)"``, so nothing written to the store can make new series.

prometheus-client comes with the ``server`` extra; this module is imported only when a
worker is run with ``--metrics-port``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from taskward.outcomes import Written

if TYPE_CHECKING:
    from taskward.worker import Worker

__all__ = ["CONTENT_TYPE", "UNKNOWN_TASK", "WorkerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: The ``task`` label of runs of a task function the app does not have.
UNKNOWN_TASK = "(unknown)"

_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
_COUNTED: tuple[Written, ...] = ("completed", "failed", "cancelled", "retried")


class WorkerMetrics:
    """The metrics of one `Worker`; `observe` is its `Worker.observer`."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.run_seconds = Histogram(
            "taskward_task_run_seconds",
            "How long task functions ran in this worker (start to return).",
            ["task"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.outcomes = {
            kind: Counter(
                f"taskward_tasks_{kind}",
                f"Outcomes this worker wrote: {kind}.",
                ["task"],
                registry=r,
            )
            for kind in _COUNTED
        }
        self.slots = Gauge(
            "taskward_worker_slots", "Slots of this worker by state.", ["state"], registry=r
        )
        self._tasks = frozenset(worker.app.tasks)
        # Every series exists from the start at 0, so rate() and alerts see the first run.
        for task in sorted(self._tasks):
            self.run_seconds.labels(task=task)
            for counter in self.outcomes.values():
                counter.labels(task=task)

    def observe(self, task: str, seconds: float, written: Written | None) -> None:
        """Count one run's end (the `Worker.observer` hook)."""
        label = task if task in self._tasks else UNKNOWN_TASK
        self.run_seconds.labels(task=label).observe(max(seconds, 0.0))
        counter = self.outcomes.get(written) if written is not None else None
        if counter is not None:
            counter.labels(task=label).inc()

    def install(self) -> None:
        """Make this the worker's observer."""
        self.worker.observer = self.observe

    def render(self) -> bytes:
        """The text exposition, with the slots read now."""
        self.slots.labels(state="busy").set(self.worker.running)
        self.slots.labels(state="total").set(self.worker.concurrency)
        return generate_latest(self.registry)
