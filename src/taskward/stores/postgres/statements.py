"""The PostgreSQL store's named statements, read from ``stores/sql/postgres/*.sql``.

Each statement follows a ``-- name: <name>`` header. The lines right under the header may
declare what the connection runner may do with it beyond sending it once:

``-- retry: read``
    It only reads (no write, no row lock), so after the connection was lost under it the
    runner sends it again on another connection. Any other statement is sent again only
    when it provably never reached the server.
``-- prepared``
    It returns rows and its text never changes: on the held connection it runs as a
    prepared statement, prepared once per connection.

The one statement built at run time, `list_statement` (a list with filters), declares the
same where it is built. Nothing here looks at what the SQL says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from taskward.models import Status
from taskward.stores.rules import decode_cursor

__all__ = [
    "QUERIES",
    "SCHEDULE_QUERIES",
    "SQL_DIR",
    "Statement",
    "list_statement",
    "parse_statements",
]

#: The folder of the PostgreSQL ``.sql`` files (statements and numbered migrations).
SQL_DIR: Traversable = resources.files("taskward.stores").joinpath("sql", "postgres")

_HEADER = re.compile(r"^-- name: ", re.MULTILINE)
_DECLARATION = re.compile(r"-- (retry|prepared)\b(?::\s*(\S+))?\s*")


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement with what its declarations allow (see the module docstring)."""

    sql: str
    #: Declared ``-- retry: read``: sent again after a connection lost under it.
    read: bool = False
    #: Declared ``-- prepared``: a prepared statement on the held connection.
    prepared: bool = False
    #: Its ``-- name:``, for messages ("" for one built at run time).
    name: str = ""


def parse_statements(text: str, source: str = "<sql>") -> dict[str, Statement]:
    """The statements of one ``.sql`` text by name; `ValueError` for a malformed one."""
    out: dict[str, Statement] = {}
    for chunk in _HEADER.split(text)[1:]:
        name, _, body = chunk.partition("\n")
        name = name.strip()
        if name in out:
            raise ValueError(f"{source}: the statement {name!r} is defined twice")
        lines = body.split("\n")
        read = prepared = False
        while lines and (match := _DECLARATION.fullmatch(lines[0].strip())):
            key, value = match.groups()
            if key == "retry" and value == "read" and not read:
                read = True
            elif key == "prepared" and value is None and not prepared:
                prepared = True
            else:
                raise ValueError(f"{source}: {name}: bad declaration {lines[0].strip()!r}")
            lines.pop(0)
        sql = "\n".join(lines).strip().removesuffix(";")
        if not sql:
            raise ValueError(f"{source}: the statement {name!r} is empty")
        out[name] = Statement(sql, read=read, prepared=prepared, name=name)
    return out


def _load(filename: str) -> Mapping[str, Statement]:
    return parse_statements(SQL_DIR.joinpath(filename).read_text("utf-8"), filename)


#: The task, migration and leader statements (``queries.sql``), by name.
QUERIES = _load("queries.sql")
#: The durable schedules' statements (``schedules.sql``), by name.
SCHEDULE_QUERIES = _load("schedules.sql")


_LIST = QUERIES["list"]
_LIST_FILTERS = ("task", "queue", "name")  # columns a list filters on by equality


def list_statement(
    status: Sequence[Status] | None,
    task: str | None,
    queue: str | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[Statement, list[Any]]:
    """The statement (and its parameters) of a list: the ``list`` template with a condition
    for each filter given, newest first, at most ``limit`` rows below the cursor's seq."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        params.append([Status(s).value for s in status])
        where.append(f"status = ANY(${len(params)}::text[])")
    for column, value in zip(_LIST_FILTERS, (task, queue, name), strict=True):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")  # our column names, bound values
    if cursor is not None:
        params.append(decode_cursor(cursor))
        where.append(f"seq < ${len(params)}")
    params.append(limit)
    sql = _LIST.sql.format(where=" AND ".join(where) or "true", limit=f"${len(params)}")
    # A plain read, so safe to send again; not prepared, as its text varies with the filters.
    return Statement(sql, read=True, name="list"), params
