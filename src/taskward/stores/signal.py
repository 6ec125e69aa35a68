"""The wake-up behind `Store.wait_for_change`: each waiter sees every change, none lost."""

from __future__ import annotations

import asyncio
import contextlib
import weakref

__all__ = ["ChangeSignal"]


class ChangeSignal:
    """The wake-up behind `Store.wait_for_change`, with no lost wake-ups.

    Each caller (the asyncio task that waits) remembers the last change it saw, so a change
    that happened while it was busy elsewhere (say, claiming) makes its next wait return at
    once instead of sleeping through it. A task's first wait simply waits.
    """

    def __init__(self) -> None:
        self._changes = 0
        self._event: asyncio.Event | None = None
        self._seen: weakref.WeakKeyDictionary[asyncio.Task[object], int] = (
            weakref.WeakKeyDictionary()
        )

    def notify(self) -> None:
        """Record a change and wake everyone waiting now."""
        self._changes += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float) -> None:
        """Return after a change this caller has not seen yet, or at ``timeout``."""
        task = asyncio.current_task()
        seen = None if task is None else self._seen.get(task)
        if seen is not None and seen != self._changes:
            self._seen[task] = self._changes  # type: ignore[index]
            return
        if self._event is None:
            self._event = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        finally:
            if task is not None:
                self._seen[task] = self._changes
