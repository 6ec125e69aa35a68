"""Helpers shared by the store tests: a fake clock and a short way to make a NewTask."""

from __future__ import annotations

from uuid import uuid4

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
