"""Differential test: random operation sequences give the same answers on every store.

The memory store is the reference. Lease tokens differ by nature (each store makes its own),
so each store's calls use its own tokens, and records are compared without them; seqs are
compared by order only (SQLite may reuse the seq of a pruned newest task).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import FakeClock, new

from taskward.errors import TaskwardError
from taskward.models import Status
from taskward.stores import MemoryStore, Store, TaskRecord
from taskward.stores.sqlite import SQLiteStore

NAMES = st.one_of(st.none(), st.sampled_from(["a", "b"]))
QUEUES = st.sampled_from(["q1", "q2"])
TASK = st.tuples(NAMES, st.integers(-1, 1), QUEUES, st.sampled_from([0.0, 5.0]))
INSERT = st.tuples(st.just("insert"), st.lists(TASK, min_size=1, max_size=3))
CLAIM = st.tuples(
    st.just("claim"), st.sampled_from([None, ("q1",), ("q2", "q1")]), st.integers(1, 3)
)
OPS = st.one_of(
    INSERT,
    INSERT,
    CLAIM,
    CLAIM,
    st.tuples(
        st.just("finish"),
        st.integers(0, 20),
        st.sampled_from([Status.COMPLETED, Status.FAILED, Status.CANCELLED]),
        st.booleans(),
    ),
    st.tuples(
        st.just("requeue"),
        st.integers(0, 20),
        st.booleans(),
        st.booleans(),
        st.sampled_from([0.0, 2.0]),
    ),
    st.tuples(st.just("heartbeat"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("progress"), st.integers(0, 20)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("retry"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 5.0, 31.0])),
    st.tuples(st.just("rescue")),
    st.tuples(st.just("prune"), st.sampled_from([0.0, 10.0])),
)


class Driver:
    """Applies operations to one store and keeps its own lease tokens."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tokens: dict[UUID, list[str]] = {}

    def token(self, task_id: UUID, stale: bool) -> str:
        held = self.tokens.get(task_id, ["none"])
        return held[0] if stale else held[-1]

    async def apply(
        self, op: tuple[Any, ...], ids: list[UUID], claimed: list[UUID], new_tasks: list[Any]
    ) -> Any:
        s = self.store
        kind = op[0]
        # Fenced calls aim at tasks that were claimed at some point; the others at any task.
        among = claimed if kind in ("finish", "requeue", "heartbeat", "progress") else ids
        targeted = kind in ("finish", "requeue", "heartbeat", "progress", "cancel", "retry")
        pick = among[op[1] % len(among)] if among and targeted else None
        try:
            if kind == "insert":
                return await s.insert(new_tasks)
            if kind == "claim":
                rows = await s.claim("w", op[1], op[2], 30.0)
                for r in rows:
                    assert r.lease_token is not None
                    self.tokens.setdefault(r.id, []).append(r.lease_token)
                return rows
            if kind == "rescue":
                return await s.rescue()
            if kind == "prune":
                return await s.prune({status: op[1] for status in Status if status.is_finished})
            if pick is None:
                return None
            if kind == "finish":
                return await s.finish(pick, self.token(pick, op[3]), op[2], result="1")
            if kind == "requeue":
                tok = self.token(pick, False)
                error = "E" if op[2] else None
                return await s.requeue(
                    pick, tok, delay=op[4], error=error, traceback=error, refund_attempt=op[3]
                )
            if kind == "heartbeat":
                return await s.heartbeat("w", [(pick, self.token(pick, op[2]))], 30.0)
            if kind == "progress":
                return await s.set_progress(pick, self.token(pick, False), "{}")
            if kind == "cancel":
                return await s.request_cancel(pick)
            if kind == "retry":
                return await s.retry(pick)
        except TaskwardError as e:
            return type(e)
        raise AssertionError(kind)


def normal(value: Any) -> Any:
    """A result with store-specific details (tokens, seqs) taken out."""
    if isinstance(value, TaskRecord):
        return dataclasses.replace(value, seq=0, lease_token="held" if value.lease_token else None)
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


async def run(ops: list[tuple[Any, ...]], directory: Path, postgres_url: str | None = None) -> None:
    clock = FakeClock()
    other: Store = SQLiteStore(directory / "m.db", clock=clock)
    if postgres_url is not None:
        from taskward.stores.postgres import PostgresStore

        await _empty(postgres_url)
        other = PostgresStore(postgres_url, clock=clock, max_size=2)
    stores: list[Store] = [MemoryStore(clock=clock), other]
    drivers = [Driver(s) for s in stores]
    ids: list[UUID] = []
    claimed: list[UUID] = []
    for s in stores:
        await s.open()
    try:
        for op in ops:
            if op[0] == "advance":
                clock.advance(op[1])
                continue
            tasks = []
            if op[0] == "insert":
                tasks = [new(name, priority=p, queue=q, delay=d or None) for name, p, q, d in op[1]]
            results = [await d.apply(op, ids, claimed, tasks) for d in drivers]
            assert normal(results[0]) == normal(results[1]), op
            if op[0] == "insert" and isinstance(results[0], list):
                ids.extend(t.id for t in tasks)
            if op[0] == "claim":
                claimed.extend(r.id for r in results[0] if r.id not in claimed)
        pages = [await s.list(limit=1000) for s in stores]
        assert normal(pages[0].items) == normal(pages[1].items)
        counts = [await s.counts() for s in stores]
        assert counts[0] == counts[1]
    finally:
        for s in stores:
            await s.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=10, max_size=40))
def test_every_store_answers_like_the_memory_store(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(ops, Path(directory)))


async def _empty(url: str) -> None:
    """Empty the tables between examples (a fresh database per example would be slow)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE taskward_tasks, taskward_workers RESTART IDENTITY")
    finally:
        await conn.close()


@pytest.mark.postgres
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(OPS, min_size=10, max_size=40))
def test_postgres_answers_like_the_memory_store(pg_url: str, ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run(ops, Path(directory), pg_url))
