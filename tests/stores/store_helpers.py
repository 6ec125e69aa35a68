"""Helpers shared by the store tests: a fake clock, a short way to make a NewTask, and a
plain connection to a PostgreSQL test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import asyncpg

from taskward.stores import NewTask

START = 1_700_000_000.0


class FakeClock:
    """A clock that moves only when told to: time in tests is an argument, not a sleep."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def new(
    name: str | None = None,
    *,
    task: str = "send",
    args: str = "{}",
    priority: int = 0,
    queue: str = "default",
    max_attempts: int = 3,
    timeout: float | None = None,
    delay: float | None = None,
    run_at: float | None = None,
) -> NewTask:
    """A NewTask with a fresh id."""
    return NewTask(
        id=uuid4(),
        task=task,
        args=args,
        name=name,
        priority=priority,
        queue=queue,
        max_attempts=max_attempts,
        timeout=timeout,
        delay=delay,
        run_at=run_at,
    )


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A plain asyncpg connection to ``url`` (as an admin or another client would use)."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
