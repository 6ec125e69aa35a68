"""Stores: where durable tasks live. `open_store` turns a URL into one.

==========================  ===========================================================
``memory://``               `MemoryStore`: this process only, gone at exit (tests, demos)
``sqlite:///rel/path.db``   `SQLiteStore` on a path relative to the working directory
``sqlite:////abs/path.db``  `SQLiteStore` on an absolute path
``postgresql://...``        ``PostgresStore`` (needs ``taskward[postgres]``)
==========================  ===========================================================

Importing this package loads only the standard library and the memory store; the SQLite
and PostgreSQL modules load when a URL asks for them.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from taskward.errors import ConfigurationError
from taskward.stores.base import Counts, NewTask, Page, Store, TaskRecord
from taskward.stores.memory import MemoryStore

__all__ = [
    "Counts",
    "MemoryStore",
    "NewTask",
    "Page",
    "Store",
    "TaskRecord",
    "open_store",
    "redact_url",
]


def open_store(url: str) -> Store:
    """The store a URL names, not yet connected: ``await store.open()`` before use."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"a store URL looks like 'sqlite:///taskward.db', not {url!r}")
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db" (the URL has no host).
        if not rest.startswith("/") or rest == "/":
            raise ConfigurationError(
                f"a SQLite URL is sqlite:///relative.db or sqlite:////absolute.db, not {url!r}"
            )
        from taskward.stores.sqlite import SQLiteStore

        return SQLiteStore(rest[1:], url=url)
    if scheme in ("postgresql", "postgres"):
        return _postgres_store(url)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme!r} in {url!r}: use memory://, sqlite:/// or"
        " postgresql://"
    )


def redact_url(url: str) -> str:
    """The store URL with its password hidden, for logs and messages."""
    url = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if not sep or not at or ":" not in user:
        return url
    return f"{scheme}://{user.partition(':')[0]}:***@{host}{slash}{path}"


def _postgres_store(url: str) -> Store:
    try:
        module: Any = importlib.import_module("taskward.stores.postgres")
    except ImportError as e:
        raise ConfigurationError(
            f"PostgreSQL stores are not available ({e}); install taskward[postgres]"
        ) from e
    store: Store = module.PostgresStore(url)
    return store
