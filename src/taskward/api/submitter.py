"""Group commit for submits: concurrent requests share one store round trip.

Under load, one insert per request spends most of its time handing work to the store's
thread and back (and, with SQLite, waiting for the GIL while the event loop serves other
requests). `GroupSubmitter` adds no delay: the first request is inserted at once, and the
requests that arrive while that insert runs go together in the next one
(`taskward.batching.GroupCommit`).

Each request stays all or nothing on its own. When a shared insert fails (a name already
active, say), each request in it is inserted again alone, so only the request at fault gets
the error.
"""

from __future__ import annotations

from taskward.app import App
from taskward.batching import GroupCommit
from taskward.models import TaskInfo
from taskward.stores.base import NewTask

__all__ = ["GroupSubmitter"]


class GroupSubmitter(GroupCommit[NewTask, TaskInfo]):
    """Submit tasks through ``app.submit_many``, sharing round trips between callers."""

    def __init__(self, app: App, *, max_batch: int = 1000) -> None:
        super().__init__(
            app.submit_many, max_batch=max_batch, name="taskward-submit", alone_on_error=True
        )
        self.app = app
