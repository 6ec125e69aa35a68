"""Who leads maintenance: a lease on the store's clock, never a session-level lock.

Rescue of expired leases, pruning and schedule firing are each safe to run from any process
(claims skip locked rows, schedules compare-and-set their last tick), but one process doing
them saves the others the work. That process holds the *maintenance role*: a row in the
store with its holder and an expiry on the store's clock (`Store.lead`).

`Leadership` keeps that role for one worker. It renews the row every third of the lease and
counts its own term from the moment it *sent* the renewal, on the monotonic clock, so it
stops acting as leader no later than the store stops counting it as one: a process that is
stopped (SIGSTOP, a long pause) or cut off (a partition that leaves its TCP session open)
finds `held` false when it wakes up, and another process has taken over after at most one
lease plus one renewal round. Rescue also checks the row in its own transaction, so a
statement of a stale leader that reaches the store late changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from taskward.stores.base import Store

__all__ = ["Leadership"]

logger = logging.getLogger("taskward.leader")


class Leadership:
    """One process's hold on the maintenance role, renewed in the background by `keep`."""

    def __init__(
        self,
        store: Store,
        holder: str,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"the leadership lease must be > 0 seconds, not {ttl}")
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self._clock = clock
        self._until = 0.0  # on `clock`: when this term ends unless renewed
        self._was_leading = False

    @property
    def held(self) -> bool:
        """Whether this process may act as leader now (its term has not run out)."""
        return self._clock() < self._until

    async def renew(self) -> bool:
        """Take or renew the role once; return `held` after it. Store errors count as no."""
        sent = self._clock()
        try:
            leads = await self.store.lead(self.holder, self.ttl)
        except Exception as exc:
            logger.warning("%s: leadership renewal failed (%s)", self.holder, exc)
            leads = False
        if leads:
            # The store counts the term from when it ran the statement, which is after
            # `sent`: ending ours at sent + ttl never outlasts the store's.
            self._until = sent + self.ttl
        elif self._until:
            self._until = 0.0
        held = self.held
        if held and not self._was_leading:
            logger.info("%s: this process now leads maintenance", self.holder)
        elif not held and self._was_leading:
            logger.warning(
                "%s: no longer leads maintenance (the role was not renewed in time);"
                " going on as a follower",
                self.holder,
            )
        self._was_leading = held
        return held

    async def keep(self) -> None:
        """Renew every third of the lease until cancelled; then give the role up."""
        try:
            while True:
                await self.renew()
                await asyncio.sleep(self.ttl / 3)
        finally:
            if self._was_leading:
                self._until = 0.0
                with contextlib.suppress(Exception):
                    # Shielded: this runs while the task is being cancelled.
                    await asyncio.shield(self.store.resign(self.holder))
