"""The PostgreSQL store: many worker processes on many hosts sharing one database.

- **Claims** are one statement: ``UPDATE ... FROM (SELECT ... ORDER BY priority, run_at, seq
  LIMIT n FOR UPDATE SKIP LOCKED)``. Concurrent claimers pass over each other's rows instead
  of waiting for them, and partial indexes on Pending tasks keep a claim's cost flat however
  long the history grows.
- **Clock.** Every lease and due time is computed by the database (``now()``), never by a
  host, so workers with skewed clocks agree. ``clock=`` replaces it for the contract tests
  only (a fake clock passed as a parameter to every statement).
- **Schema.** Plain numbered migrations in ``sql/postgres/`` (``0001_init.sql``, ...),
  recorded in ``taskward_schema_version``. `PostgresStore.migrate` (``taskward migrate``)
  applies them; `open` only checks: a database behind this code is refused with the advice
  to migrate, one ahead of it is a `ConfigurationError` (upgrade taskward).
- **Wake-ups.** Triggers NOTIFY the channel ``taskward`` when tasks are inserted, become
  Pending again, or are asked to cancel. `wait_for_change` LISTENs on a dedicated connection
  (reconnected in the background) behind a `ChangeSignal`; when notifications are lost (a
  transaction-mode pooler, a dropped connection) it still returns at its timeout, so callers
  that poll on that timeout (the worker does) keep working, only slower.
- **Maintenance leader.** `lead` takes or renews a lease row (``taskward_leaders``) on the
  database clock. A leader that stops renewing (it died, was stopped, or is cut off while
  its TCP session stays open) loses the role after one lease, and `rescue` with ``leader=``
  checks the row in its own transaction, so a stale leader rescues nothing; `fire_schedule`
  with ``leader=`` does the same, so it fires nothing either.
- **Transactional submit.** `insert` with ``connection=`` (the caller's asyncpg connection)
  inserts inside the caller's transaction: the tasks, and the NOTIFY, exist only if it commits.
- **Outages.** Connection failures become `StoreError` (the worker backs off and retries);
  asyncpg's pool replaces dead connections by itself. A value the database refuses as data
  (SQLSTATE class 22: a NUL character in text, a lone surrogate that has no UTF-8 form) is
  no outage: it is the caller's `InvalidArgumentsError`, which a retry would not mend.

The package, one job per module:

=================  ======================================================================
``store``          `PostgresStore`: the task operations, each a statement or a transaction
``schedules``      the schedule operations, mixed into `PostgresStore`
``inserts``        how tasks go in: one row by VALUES, a few by arrays, many by COPY
``runner``         the connections: pool, held connection, prepared statements, watchdog
``listener``       the LISTEN connection behind `wait_for_change`
``rows``           rows as records, read by column name
``statements``     the named statements of ``sql/postgres/*.sql`` and their declarations
``migrations``     the numbered migrations, applying them, checking a database's version
=================  ======================================================================
"""

from __future__ import annotations

from taskward.stores.postgres.listener import CHANNEL
from taskward.stores.postgres.migrations import SCHEMA_VERSION
from taskward.stores.postgres.statements import QUERIES
from taskward.stores.postgres.store import PostgresStore

__all__ = ["CHANNEL", "SCHEMA_VERSION", "PostgresStore"]

# The statements' text by name, for tools and tests that look at them (EXPLAIN a claim).
_SQL = {name: statement.sql for name, statement in QUERIES.items()}
