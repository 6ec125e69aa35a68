"""Fixtures for the in-process worker tests: every test runs on memory and on a SQLite file."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from integration_helpers import StoreFactory

from taskward.app import App
from taskward.stores import MemoryStore, Store
from taskward.stores.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Makes fresh stores of one kind; closes them all after the test."""
    made: list[Store] = []

    def make(clock: Callable[[], float] | None = None) -> Store:
        tick = clock or time.time
        store: Store
        if request.param == "memory":
            store = MemoryStore(clock=tick)
        else:
            store = SQLiteStore(tmp_path / f"tasks-{len(made)}.db", clock=tick)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()


@pytest.fixture
def app(make_store: StoreFactory) -> App:
    """An App on a fresh store of the kind under test."""
    return App(make_store())
