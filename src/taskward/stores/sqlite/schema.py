"""The SQLite file's format: the statements of ``sql/sqlite.sql`` by name, and the schema
that `migrate` creates on a new file or brings an older one up to.

The version a file holds is its ``PRAGMA user_version``. Version 1 is the ``schema``
statement; each later version ``n`` is the ``schema_n`` statement, run in order, so a file
of any older version reaches `SCHEMA_VERSION` in one transaction. A file newer than this
code, or a ``tasks`` table that taskward did not create, is refused, never written to.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

from taskward.errors import ConfigurationError

__all__ = ["SCHEMA_VERSION", "SQL", "migrate"]

#: The schema this code writes and reads, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 5


def _load_statements() -> dict[str, str]:
    """The statements of ``sql/sqlite.sql`` by their ``-- name:``."""
    text = resources.files("taskward.stores").joinpath("sql", "sqlite.sql").read_text("utf-8")
    out: dict[str, str] = {}
    for chunk in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = chunk.partition("\n")
        out[name.strip()] = body.strip().removesuffix(";")
    return out


def _script(text: str) -> list[str]:
    """The statements of a schema script, split at the ``;`` that ends a line."""
    return [s for s in re.split(r";\s*\n", text) if s.strip()]


#: Every statement of ``sql/sqlite.sql``, by its ``-- name:``.
SQL = _load_statements()
_SCHEMA = _script(SQL["schema"])
#: What each version adds to the one before (version 1 is `_SCHEMA`).
_MIGRATIONS = {
    version: _script(SQL[f"schema_{version}"]) for version in range(2, SCHEMA_VERSION + 1)
}


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema on a new file, or migrate an older one, inside the caller's write
    transaction; `ConfigurationError` for a file this code must not touch."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"SQLite database {path} has schema version {version}, newer than"
            f" {SCHEMA_VERSION} which this taskward knows: upgrade taskward"
        )
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'"
        ).fetchone()
        if exists:
            raise ConfigurationError(
                f"SQLite database {path} has a tasks table that taskward did not create"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        version = 1
    for later in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[later]:
            conn.execute(statement)
    # PRAGMA takes no bound parameters; the value is our own integer constant.
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
