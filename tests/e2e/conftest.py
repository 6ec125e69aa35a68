"""Fixtures for end-to-end tests: real worker processes on a real store file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from e2e_helpers import Cluster

from taskward.app import App


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(db=f"sqlite:///{tmp_path / 'tasks.db'}", ledger=tmp_path / "ledger", tmp=tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store a test's processes share: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tasks.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db_cluster(tmp_path: Path, db: str) -> Iterator[Cluster]:
    """A `Cluster` on `db` (each store in turn)."""
    c = Cluster(db=db, ledger=tmp_path / "ledger", tmp=tmp_path)
    try:
        yield c
    finally:
        c.stop_all()  # SIGKILL ends a stopped process too


@pytest.fixture
async def store_app(cluster: Cluster) -> AsyncIterator[App]:
    app = App(cluster.db)
    await app.open()
    try:
        yield app
    finally:
        await app.close()
