"""Fixtures for the store contract suite: one `store` fixture, parametrized over every store.

To run the whole contract on another store, add one entry to `STORE_FACTORIES` (and to
`MARKS` when it needs a server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from store_helpers import FakeClock

from taskward.stores import MemoryStore, Store
from taskward.stores.sqlite import SQLiteStore


@dataclass
class StoreEnv:
    """What a factory may use: a temporary folder, the test's clock, a fresh database."""

    tmp: Path
    clock: FakeClock
    request: pytest.FixtureRequest

    def postgres_url(self) -> str:
        """A fresh, migrated PostgreSQL database for this test (see tests/conftest.py)."""
        url: str = self.request.getfixturevalue("pg_url")
        return url


StoreFactory = Callable[[StoreEnv], Store]


def _postgres(env: StoreEnv) -> Store:
    from taskward.stores.postgres import PostgresStore

    return PostgresStore(env.postgres_url(), clock=env.clock, max_size=4)


#: Every store the contract runs on. Each gets a fresh, empty store per test and must read
#: "now" from the given clock (the PostgreSQL store takes it as a parameter in tests).
STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": lambda env: MemoryStore(clock=env.clock),
    "sqlite": lambda env: SQLiteStore(env.tmp / "tasks.db", clock=env.clock),
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture
def clock() -> FakeClock:
    """The clock every store under test reads."""
    return FakeClock()


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(STORE_FACTORIES)]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    """An open, empty store of each kind."""
    s = STORE_FACTORIES[request.param](StoreEnv(tmp_path, clock, request))
    await s.open()
    try:
        yield s
    finally:
        await s.close()
