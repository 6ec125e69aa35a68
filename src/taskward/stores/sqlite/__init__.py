"""The SQLite store: durable tasks in one file, shared by any number of worker processes.

==================  ===================================================================
``store.py``        `SQLiteStore`: the `Store` protocol, each method checks, runs, notifies
``operations.py``   what each method does on a connection: statements and rules
``rows.py``         rows as records and back, columns found by name
``runner.py``       where a call runs: the loop's own connection, else the store thread
``thread.py``       the store thread: calls in order, group commit, waiting out locks
``schema.py``       the statements of ``sql/sqlite.sql`` and the schema's migrations
==================  ===================================================================
"""

from taskward.stores.sqlite.schema import SCHEMA_VERSION
from taskward.stores.sqlite.store import SQLiteStore

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
