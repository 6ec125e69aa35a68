"""Fixtures for the store contract suite: one `store` fixture, parametrized over every store.

To run the whole contract on another store, add one entry to `STORE_FACTORIES`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from store_helpers import FakeClock

from taskward.stores import MemoryStore, Store
from taskward.stores.sqlite import SQLiteStore

StoreFactory = Callable[[Path, FakeClock], Store]

#: Every store the contract runs on. Each gets a fresh, empty store per test and must read
#: "now" from the given clock (a PostgreSQL store can take it as a parameter in tests).
STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": lambda tmp, clock: MemoryStore(clock=clock),
    "sqlite": lambda tmp, clock: SQLiteStore(tmp / "tasks.db", clock=clock),
}


@pytest.fixture
def clock() -> FakeClock:
    """The clock every store under test reads."""
    return FakeClock()


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    """An open, empty store of each kind."""
    s = STORE_FACTORIES[request.param](tmp_path, clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
