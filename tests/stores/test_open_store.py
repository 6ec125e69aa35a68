"""open_store: which store each URL names, and clear errors for the rest."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from taskward.errors import ConfigurationError
from taskward.stores import MemoryStore, Store, open_store, redact_url
from taskward.stores.sqlite import SQLiteStore


def test_memory_url_gives_a_fresh_memory_store() -> None:
    a, b = open_store("memory://"), open_store("memory://")
    assert isinstance(a, MemoryStore)
    assert a is not b
    assert isinstance(a, Store)


def test_sqlite_relative_and_absolute_paths() -> None:
    rel = open_store("sqlite:///data/tasks.db")
    assert isinstance(rel, SQLiteStore)
    assert rel.path == "data/tasks.db"
    assert rel.url == "sqlite:///data/tasks.db"
    absolute = open_store("sqlite:////var/lib/tasks.db")
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == "/var/lib/tasks.db"


async def test_an_opened_sqlite_url_creates_its_file(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = open_store(f"sqlite:///{path}")
    await store.open()
    await store.close()
    assert path.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db"])
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite:///"):
        open_store(url)


@pytest.mark.parametrize("url", ["postgresql://u@localhost/db", "postgres://localhost/db"])
def test_postgres_urls(url: str) -> None:
    if importlib.util.find_spec("taskward.stores.postgres") is None:
        with pytest.raises(ConfigurationError, match="taskward\\[postgres\\]"):
            open_store(url)
    else:
        store = open_store(url)
        assert type(store).__name__ == "PostgresStore"


@pytest.mark.parametrize(("url", "scheme"), [("redis://x", "redis"), ("mysql://x/y", "mysql")])
def test_unknown_schemes_are_named(url: str, scheme: str) -> None:
    with pytest.raises(ConfigurationError, match=f"'{scheme}'"):
        open_store(url)


def test_a_url_without_scheme() -> None:
    with pytest.raises(ConfigurationError, match=r"tasks\.db"):
        open_store("tasks.db")


def test_importing_stores_loads_no_database_driver() -> None:
    code = (
        "import sys, taskward.stores;"
        "print(sorted(m for m in ('sqlite3', 'asyncpg', 'taskward.stores.sqlite')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgres://u:p@h", "postgres://u:***@h"),
        (
            "postgresql://app@db/x?password=s3cret&sslmode=require",
            "postgresql://app@db/x?password=***&sslmode=require",
        ),
        ("postgresql://app@db/x", "postgresql://app@db/x"),
        ("sqlite:///tasks.db", "sqlite:///tasks.db"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown
