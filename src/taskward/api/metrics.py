"""Prometheus metrics of ``/metrics``, in a registry of their own (one per API).

What each counts, and from where:

- ``taskward_tasks_submitted_total{task}``: tasks submitted through this API process.
- ``taskward_tasks_{completed,failed,cancelled}_total{task}`` and
  ``taskward_task_run_seconds{task}`` (a histogram of ``finished_at - started_at``): tasks
  that this process *saw* finish in the store, whichever worker ran them (see
  `taskward.api.events` for how it watches). Every API replica sees the same finishes, so
  aggregate replicas with ``max``, not ``sum``.
- ``taskward_queue_depth{queue,status}``: the store's counts, read at each scrape.
- ``taskward_oldest_pending_age_seconds{queue}``: how long the longest-waiting due Pending
  task of each queue has waited (0 when none waits), read at each scrape from the claim
  index (`Store.oldest_pending`): the queue's latency, what an autoscaler should watch.
- ``taskward_worker_slots{state="busy"|"total"}`` and ``taskward_workers_alive``: the worker
  running in this process, if any.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from taskward.models import Status, TaskInfo
from taskward.stores.base import Counts

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))


class Metrics:
    """The API's metrics; `observe` is an `EventHub` listener."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.submitted = Counter(
            "taskward_tasks_submitted", "Tasks submitted through this API.", ["task"], registry=r
        )
        self._submitted: dict[str, Counter] = {}
        self.finished = {
            status: Counter(
                f"taskward_tasks_{status.value.lower()}",
                f"Tasks seen ending {status.value} in the store.",
                ["task"],
                registry=r,
            )
            for status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
        }
        self.run_seconds = Histogram(
            "taskward_task_run_seconds",
            "Run time of the last attempt of finished tasks (finished_at - started_at).",
            ["task"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "taskward_queue_depth",
            "Tasks in the store by queue and status.",
            ["queue", "status"],
            registry=r,
        )
        self.oldest_pending = Gauge(
            "taskward_oldest_pending_age_seconds",
            "Seconds the longest-waiting due Pending task of each queue has waited.",
            ["queue"],
            registry=r,
        )
        self.slots = Gauge(
            "taskward_worker_slots", "Slots of this process's worker.", ["state"], registry=r
        )
        self.workers_alive = Gauge(
            "taskward_workers_alive", "Workers alive in this process.", registry=r
        )

    def count_submitted(self, task: str) -> None:
        """One more task of ``task`` submitted through this API."""
        child = self._submitted.get(task)
        if child is None:
            child = self._submitted[task] = self.submitted.labels(task=task)
        child.inc()

    def observe(self, before: Status | None, info: TaskInfo) -> None:
        """Count a task that just finished (an `EventHub` listener)."""
        counter = self.finished.get(info.status)
        if counter is None or before is info.status:
            return
        task = info.task or ""
        counter.labels(task=task).inc()
        if info.started_at is not None and info.finished_at is not None:
            seconds = (info.finished_at - info.started_at).total_seconds()
            self.run_seconds.labels(task=task).observe(max(seconds, 0.0))

    def render(
        self,
        counts: Counts | None,
        *,
        busy: int | None,
        total: int | None,
        alive: int,
        waiting: Mapping[str, float] | None = None,
    ) -> bytes:
        """The text exposition, after refreshing the gauges (``counts`` or ``waiting``
        None: the store could not be read, and the gauges keep their last values)."""
        if counts is not None:
            self.queue_depth.clear()
            for queue, per_status in counts.by_queue.items():
                for status in Status:
                    self.queue_depth.labels(queue=queue, status=status.value).set(
                        per_status.get(status, 0)
                    )
        if counts is not None and waiting is not None:
            # Every queue the store knows gets a value (0: nothing waits), so an alert on
            # it never reads a stale series after a queue has emptied.
            self.oldest_pending.clear()
            for queue in sorted({*counts.by_queue, *waiting}):
                self.oldest_pending.labels(queue=queue).set(waiting.get(queue, 0.0))
        if busy is not None and total is not None:
            self.slots.labels(state="busy").set(busy)
            self.slots.labels(state="total").set(total)
        self.workers_alive.set(alive)
        return generate_latest(self.registry)
