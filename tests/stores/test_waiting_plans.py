"""`Store.oldest_pending` reads the claim index, one seek per (queue, priority) pair: its
plans on PostgreSQL (EXPLAIN ANALYZE) and SQLite (EXPLAIN QUERY PLAN), with a long history
and a backlog, as a busy system has. A scrape every few seconds must never scan the tasks.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from store_helpers import connection, new

from taskward.stores.postgres import PostgresStore
from taskward.stores.postgres.statements import QUERIES
from taskward.stores.sqlite import SQLiteStore
from taskward.stores.sqlite.schema import SQL

QUEUES = ("a", "b", "c", "d")
PRIORITIES = (-1, 0, 5)


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a JSON plan, depth first."""
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


@pytest.mark.postgres
async def test_postgres_reads_one_index_entry_per_queue_and_priority(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.insert(
            [new(queue=q, priority=p) for q in QUEUES for p in PRIORITIES for _ in range(300)]
        )
        expected = await store.oldest_pending()
    finally:
        await store.close()
    assert expected.keys() == set(QUEUES)
    async with connection(pg_url) as conn:
        # A long history: 30000 finished tasks beside the 3600 waiting.
        await conn.execute(
            "INSERT INTO taskward_tasks (id, task, args, priority, queue, status, max_attempts,"
            " run_at, created_at, finished_at)"
            " SELECT gen_random_uuid(), 'old', '{}', 0, 'a', 'Completed', 1, 0, 0, 0"
            " FROM generate_series(1, 30000)"
        )
        await conn.execute("ANALYZE taskward_tasks")
        sql = QUERIES["pending_heads"].sql
        [[raw]] = await conn.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", None)
    plan = json.loads(raw)[0]["Plan"]
    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "taskward_tasks"]
    assert scans, plan
    for node in scans:
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
        assert node["Index Name"] == "taskward_tasks_claim", node
        # Each seek stops at its first entry: one row per loop, never a range walked.
        assert node["Actual Rows"] <= 1, node
    loops = sum(node["Actual Loops"] for node in scans)
    pairs = len(QUEUES) * len(PRIORITIES)
    assert loops <= 2 * pairs + 2, (loops, plan)


async def test_sqlite_seeks_the_claim_index(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.insert(
            [new(queue=q, priority=p) for q in QUEUES for p in PRIORITIES for _ in range(50)]
        )
        assert (await store.oldest_pending()).keys() == set(QUEUES)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {SQL['pending_heads']}")]
    finally:
        conn.close()
    searches = [line for line in plan if "tasks" in line and line.startswith(("SCAN", "SEARCH"))]
    assert searches, plan
    for line in searches:
        # A scan of the index is the first entry only (LIMIT 1); every other read is a seek.
        assert "tasks_claim" in line or "INTEGER PRIMARY KEY" in line, plan
    assert "SEARCH s USING INDEX tasks_claim (queue=? AND priority>?)" in plan, plan
    assert "SEARCH s USING INDEX tasks_claim (queue>?)" in plan, plan
