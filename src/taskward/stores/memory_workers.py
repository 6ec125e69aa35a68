"""The in-memory store's worker registry and maintenance role (`MemoryStore`'s part).

Workers say they are alive with a beat that expires; the maintenance role is one
(holder, expires_at) pair, taken or renewed as `taskward.stores.rules.may_lead` says.
"""

from __future__ import annotations

from collections.abc import Callable

from taskward.stores.base import WorkerRecord
from taskward.stores.rules import may_lead

__all__ = ["MemoryWorkers"]


class MemoryWorkers:
    """The worker and leadership methods of `MemoryStore` (which provides the attributes)."""

    _clock: Callable[[], float]
    _workers: dict[str, WorkerRecord]
    _leader: tuple[str, float] | None  # (holder, expires_at)

    async def worker_beat(self, worker_id: str, info: str, ttl: float) -> None:
        """Say this worker is alive for ``ttl`` more seconds."""
        now = self._clock()
        old = self._workers.get(worker_id)
        self._workers[worker_id] = WorkerRecord(
            id=worker_id,
            info=info,
            started_at=now if old is None else old.started_at,
            last_seen=now,
            expires_at=now + ttl,
        )

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        self._workers.pop(worker_id, None)

    async def workers(self) -> list[WorkerRecord]:
        """The workers alive now, oldest first."""
        now = self._clock()
        for worker_id in [w.id for w in self._workers.values() if w.expires_at <= now]:
            del self._workers[worker_id]
        return sorted(self._workers.values(), key=lambda w: (w.started_at, w.id))

    async def lead(self, holder: str, ttl: float) -> bool:
        """Take or renew the maintenance role for ``holder`` until now + ``ttl``."""
        now = self._clock()
        if not may_lead(self._leader, holder, now):
            return False
        self._leader = (holder, now + ttl)
        return True

    async def resign(self, holder: str) -> None:
        """Give the maintenance role up, if ``holder`` has it."""
        if self._leader is not None and self._leader[0] == holder:
            self._leader = None
