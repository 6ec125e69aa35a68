"""The index keeping of the in-memory store (`taskward.stores.memory.MemoryStore`).

Claims are served from one heap per queue keyed by (priority, run_at, seq) plus one heap of
delayed tasks keyed by run_at, so a claim costs O(log n) however many tasks wait. Heap entries
carry a generation number; an entry whose task has since moved is skipped when it surfaces.
Finished tasks wait in one heap per status, oldest first, for `prune`.

`MemoryIndex._put` is the one place a row enters, changes or leaves: it keeps the rows, the
counts, the active names and every heap in step. Which index holds a row follows from its
status, as SQLite's partial indexes do: storage, not a state rule (those come from
`taskward.stores.rules`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from uuid import UUID

from taskward.models import ACTIVE, FINISHED, Status
from taskward.stores.base import TaskRecord
from taskward.stores.rules import claimable

__all__ = ["DelayedEntry", "FinishedEntry", "MemoryIndex", "ReadyEntry"]

# A heap entry: (priority, run_at, seq, generation, id). seq is unique per task and the
# generation unique per entry, so comparison never reaches the UUID.
ReadyEntry = tuple[int, float, int, int, UUID]
DelayedEntry = tuple[float, int, int, UUID]
FinishedEntry = tuple[float, int, UUID]


class MemoryIndex:
    """The rows of `MemoryStore` and their indexes (the store sets ``_clock``)."""

    _clock: Callable[[], float]

    def __init__(self) -> None:
        self._rows: dict[UUID, TaskRecord] = {}
        self._by_seq: dict[int, UUID] = {}
        self._seqs: list[int] = []  # ascending; may hold deleted seqs until the next prune
        self._active_names: dict[str, UUID] = {}
        self._named: dict[str, list[UUID]] = {}  # every task with a name, in seq order
        self._running: set[UUID] = set()
        # Finished tasks by status, oldest first: (finished_at, seq, id), stale entries skipped.
        self._finished: dict[Status, list[FinishedEntry]] = {s: [] for s in FINISHED}
        self._holes = 0  # deleted seqs still in _seqs
        self._counts: dict[str, dict[Status, int]] = {}
        self._ready: dict[str, list[ReadyEntry]] = {}
        self._delayed: list[DelayedEntry] = []
        self._generation: dict[UUID, int] = {}  # the live heap entry of each Pending task
        self._gen = itertools.count(1)

    def _put(self, old: TaskRecord | None, new: TaskRecord | None) -> None:
        """Replace ``old`` by ``new`` (either may be None) and keep every index in step.

        Which index holds a row follows from its status, as SQLite's partial indexes do:
        storage, not a state rule (those come from `taskward.stores.rules`)."""
        if old is not None:
            per = self._counts[old.queue]
            per[old.status] -= 1
            if not per[old.status]:
                del per[old.status]
            if old.status in ACTIVE and old.name is not None:
                del self._active_names[old.name]
            self._running.discard(old.id)
            if old.status is Status.PENDING and (new is None or new.status is not Status.PENDING):
                del self._generation[old.id]
        if new is None:
            return
        self._rows[new.id] = new
        per = self._counts.setdefault(new.queue, {})
        per[new.status] = per.get(new.status, 0) + 1
        if new.status in ACTIVE and new.name is not None:
            self._active_names[new.name] = new.id
        if new.status is Status.RUNNING:
            self._running.add(new.id)
        elif new.status in FINISHED:
            assert new.finished_at is not None
            heapq.heappush(self._finished[new.status], (new.finished_at, new.seq, new.id))
        elif new.status is Status.PENDING and (
            old is None or old.status is not Status.PENDING or old.run_at != new.run_at
        ):
            self._schedule(new)

    def _is_finished(self, entry: FinishedEntry, status: Status) -> bool:
        row = self._rows.get(entry[2])
        return row is not None and row.status is status and row.finished_at == entry[0]

    def _delete(self, row: TaskRecord) -> None:
        self._put(row, None)
        del self._rows[row.id]
        del self._by_seq[row.seq]
        if row.name is not None:
            same = self._named[row.name]
            same.remove(row.id)
            if not same:
                del self._named[row.name]
        self._holes += 1
        if self._holes > len(self._seqs) // 2:
            # Compact now and then, so deleting stays O(1) on average.
            self._seqs = [s for s in self._seqs if s in self._by_seq]
            self._holes = 0

    def _schedule(self, row: TaskRecord) -> None:
        gen = next(self._gen)
        self._generation[row.id] = gen
        if row.run_at <= self._clock():
            heap = self._ready.setdefault(row.queue, [])
            heapq.heappush(heap, (row.priority, row.run_at, row.seq, gen, row.id))
        else:
            heapq.heappush(self._delayed, (row.run_at, row.seq, gen, row.id))

    def _live(self, gen: int, task_id: UUID) -> bool:
        if self._generation.get(task_id) != gen:
            return False
        return claimable(self._rows[task_id])

    def _promote(self, now: float) -> None:
        """Move delayed tasks that are now due onto their queue's ready heap."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            run_at, seq, gen, task_id = heapq.heappop(delayed)
            if self._live(gen, task_id):
                row = self._rows[task_id]
                heap = self._ready.setdefault(row.queue, [])
                heapq.heappush(heap, (row.priority, run_at, seq, gen, task_id))

    def _settle(self, heap: list[ReadyEntry], now: float) -> None:
        """Pop entries off the top of a ready heap until the top is live and due.

        An entry that is not due any more (the clock was set back) goes back to the delayed
        heap, so a claim never takes a task early and never misses a due one behind it.
        """
        while heap:
            _, run_at, seq, gen, task_id = heap[0]
            if not self._live(gen, task_id):
                heapq.heappop(heap)
            elif run_at > now:
                heapq.heappop(heap)
                heapq.heappush(self._delayed, (run_at, seq, gen, task_id))
            else:
                return
