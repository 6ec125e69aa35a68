"""Helpers for testing code that uses taskward: an in-memory app and a clock you move by hand.

```python
from taskward.testing import FakeClock, memory_app

clock = FakeClock()
app = memory_app(clock)

@app.task
def send(to: str) -> None: ...

info = await send.submit("a@b.c", delay=60)   # due in a minute of *fake* time
clock.advance(60)                             # and now it is due
await drain(app)                              # runs it here, as a worker would
```

The memory store is the same one the contract suite checks against SQLite and PostgreSQL,
so what passes here behaves the same on a real store.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from taskward.app import App
from taskward.stores.memory import MemoryStore
from taskward.worker import Worker

__all__ = ["FakeClock", "MemoryStore", "drain", "memory_app"]


class FakeClock:
    """A clock for `MemoryStore(clock=...)` that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = self._check(start)

    @staticmethod
    def _check(value: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"a clock reading must be a finite number, got {value!r}")
        return float(value)

    def __call__(self) -> float:
        """The current fake time, in POSIX seconds."""
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0); return the new time."""
        if self._check(seconds) < 0:
            raise ValueError(f"a clock only moves forward, got {seconds!r}")
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        """Jump to ``now`` (any direction: for testing clock skew)."""
        self.now = self._check(now)


def memory_app(clock: Callable[[], float] | None = None, *, default_task: str | None = None) -> App:
    """An App on a fresh, private `MemoryStore` (on ``clock`` when given)."""
    return App(MemoryStore(clock=clock or time.time), default_task=default_task)


async def drain(app: App, *, concurrency: int = 10, timeout: float = 30.0) -> None:
    """Run every task of ``app`` that is due, in this process, through a real `Worker`.

    Returns once no task is due and none is running (retries that wait for their backoff
    delay are left Pending: advance a `FakeClock` and drain again). Raises `TimeoutError`
    after ``timeout`` seconds.
    """
    worker = Worker(app, concurrency=concurrency, pruning=None, poll_interval=0.01)
    await asyncio.wait_for(worker.run(until_idle=True), timeout)
