"""The PostgreSQL schema: numbered migrations, applying them once, checking a database's version.

Migrations are plain SQL files beside the statements (``0001_init.sql``, ...), recorded in
``taskward_schema_version``. `migrate` applies the missing ones in one transaction under an
advisory lock, so concurrent callers apply each once; `check_version` refuses a database
behind this code (run ``taskward migrate``) or ahead of it (upgrade taskward).
"""

from __future__ import annotations

import logging
import re

import asyncpg

from taskward.errors import ConfigurationError, StoreError
from taskward.stores.postgres.runner import DB_ERRORS
from taskward.stores.postgres.statements import QUERIES, SQL_DIR

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_version", "migrate", "read_version"]

logger = logging.getLogger("taskward.stores.postgres")

# The advisory lock key (64-bit, fixed) that serializes migrations.
_MIGRATE_KEY = 0x7461736B77617201  # "taskwar" + 1


def _load_migrations() -> dict[int, str]:
    """The numbered migration scripts (``0001_init.sql`` ...) by version."""
    out: dict[int, str] = {}
    for entry in SQL_DIR.iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            out[int(match.group(1))] = entry.read_text("utf-8")
    return dict(sorted(out.items()))


#: The migration scripts by version, oldest first.
MIGRATIONS = _load_migrations()
#: The schema this code reads and writes: the newest migration.
SCHEMA_VERSION = max(MIGRATIONS)


async def migrate(conn: asyncpg.Connection[asyncpg.Record], where: str) -> int:
    """Bring the database of ``conn`` to `SCHEMA_VERSION`; return the version found before.

    ``where`` names the database in messages. A database newer than this code is a
    `ConfigurationError`, a failed statement a `StoreError`.
    """
    try:
        async with conn.transaction():
            await conn.execute(QUERIES["xact_lock"].sql, _MIGRATE_KEY)
            await conn.execute(QUERIES["bootstrap"].sql)
            before: int = await conn.fetchval(QUERIES["schema_version"].sql)
            if before > SCHEMA_VERSION:
                check_version(before, where)
            for version, script in MIGRATIONS.items():
                if version > before:
                    logger.info("%s: applying migration %04d", where, version)
                    await conn.execute(script)
                    await conn.execute(QUERIES["record_version"].sql, version)
    except DB_ERRORS as e:
        raise StoreError(f"migrating {where} failed: {e}") from e
    return before


async def read_version(pool: asyncpg.Pool[asyncpg.Record], where: str) -> int:
    """The schema version of the pool's database (0 without taskward's tables).

    A failure is a `StoreError`: e.g. a session ended under the check is an outage like
    any other, which the caller may try again.
    """
    try:
        async with pool.acquire() as conn:
            if not await conn.fetchval(QUERIES["has_version_table"].sql):
                return 0
            version: int = await conn.fetchval(QUERIES["schema_version"].sql)
            return version
    except (*DB_ERRORS, TimeoutError) as e:
        raise StoreError(f"cannot read the schema version of {where}: {e}") from e


def check_version(version: int, where: str) -> None:
    """Refuse, with advice, a schema version other than `SCHEMA_VERSION`."""
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"{where} has taskward schema version {version}, newer than"
            f" {SCHEMA_VERSION} which this taskward knows: upgrade taskward"
        )
    if version < SCHEMA_VERSION:
        found = "no taskward schema" if version == 0 else f"taskward schema version {version}"
        raise ConfigurationError(
            f"{where} has {found}, and this taskward needs version {SCHEMA_VERSION}:"
            " run `taskward migrate` (with --db or TASKWARD_DB naming this database)"
        )
