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


@pytest.fixture
async def store_app(cluster: Cluster) -> AsyncIterator[App]:
    app = App(cluster.db)
    await app.open()
    try:
        yield app
    finally:
        await app.close()
