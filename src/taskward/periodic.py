"""Periodic work in process: the body of a `TaskManager.every` task.

Call, sleep to the next tick, repeat: runs never overlap, a run that overruns its interval
skips the ticks it missed instead of bunching them up, and a run that raises is logged and
recorded as the task's error while the schedule goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable
from typing import Any

from taskward.context import _current
from taskward.models import Progress
from taskward.records import Record, describe_error

__all__ = ["Periodic"]

logger = logging.getLogger("taskward.manager")


class Periodic:
    """The body of an `every` task: call, sleep to the next tick, repeat."""

    def __init__(
        self,
        interval: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_now: bool,
    ) -> None:
        self.interval = interval
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.run_now = run_now

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        rec = _current.get()
        assert isinstance(rec, Record)
        runs = failures = 0
        next_at = loop.time() + (0 if self.run_now else self.interval)
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if inspect.iscoroutinefunction(self.fn):
                    outcome = await self.fn(*self.args, **self.kwargs)
                else:
                    outcome = await asyncio.to_thread(self.fn, *self.args, **self.kwargs)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except Exception as exc:
                failures += 1
                rec.error = describe_error(exc)
                logger.error("periodic task %r failed: %s", rec.name, rec.error, exc_info=exc)
            else:
                rec.result = outcome
            runs += 1
            rec.report(Progress(runs, None, f"{runs} runs, {failures} failed"))
            now = loop.time()
            next_at += self.interval
            if next_at < now:  # overran: skip the missed ticks rather than bunch them up
                next_at += math.ceil((now - next_at) / self.interval) * self.interval
