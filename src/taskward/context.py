"""What a running task can ask about itself: its name, whether it was cancelled, and a way
to report progress. Works in async tasks and in sync tasks run in a thread, through a
context variable that the manager sets for each run.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Protocol

from taskward.models import Progress

__all__ = ["cancelled", "current_task", "progress"]


class _Running(Protocol):
    """What the context variable holds: the manager's record of the running task."""

    @property
    def name(self) -> str: ...

    @property
    def cancel_requested(self) -> bool: ...

    def report(self, progress: Progress) -> None: ...


_current: ContextVar[_Running | None] = ContextVar("taskward_current", default=None)


def current_task() -> str | None:
    """The name of the task running in this context, or None outside a task."""
    running = _current.get()
    return None if running is None else running.name


def cancelled() -> bool:
    """True once cancellation of the current task was asked for.

    Sync tasks run in a thread cannot be interrupted: they should check this and return.
    """
    running = _current.get()
    return running is not None and running.cancel_requested


def progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """Report how far the current task is (``done`` of ``total``); a no-op outside a task."""
    if isinstance(done, bool) or not isinstance(done, int | float) or not math.isfinite(done):
        raise ValueError(f"progress done must be a finite number, not {done!r}")
    if done < 0:
        raise ValueError(f"progress done must be >= 0, not {done}")
    if total is not None and (
        isinstance(total, bool)
        or not isinstance(total, int | float)
        or not math.isfinite(total)
        or total < 0
    ):
        raise ValueError(f"progress total must be a finite number >= 0 or None, not {total!r}")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"progress message must be a string or None, not {message!r}")
    running = _current.get()
    if running is not None:
        running.report(Progress(done, total, message))
