"""Submitting with connection= is for PostgreSQL; other stores refuse it clearly."""

from __future__ import annotations

import pytest

from taskward.app import App
from taskward.errors import ConfigurationError


async def test_a_connection_needs_a_postgresql_store() -> None:
    async with App("memory://") as app:

        @app.task
        async def mail(to: str) -> None: ...

        with pytest.raises(ConfigurationError, match="PostgreSQL"):
            await mail.submit("a@b.c", connection=object())
        with pytest.raises(ConfigurationError, match="PostgreSQL"):
            await app.submit_many([mail.prepare("a@b.c")], connection=object())
        assert (await app.list())[0] == []
