"""Fixtures shared by every test folder: fresh PostgreSQL databases cloned from a template.

The template is created and migrated once per session; each test that asks for ``pg_url``
gets its own database cloned from it (``CREATE DATABASE ... TEMPLATE``, about 0.1 s), dropped
right after the test. At once, not in batches: every DROP DATABASE forces a checkpoint, which
would flush all the other clones' pages, while a clone dropped young takes its unwritten
pages with it.

The server is ``TASKWARD_TEST_PG`` (default: the local one on 127.0.0.1). When it cannot be
reached, tests that need it are skipped with the reason, except under CI (``CI`` set), where
they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

T = TypeVar("T")

PG_ADMIN_URL = os.environ.get("TASKWARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_PREFIX = "taskward_test_"


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a private loop in another thread (safe inside a test)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, name="pg-fixture")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def database_url(name: str, base: str = PG_ADMIN_URL) -> str:
    """``base`` with its database replaced by ``name``."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PgClones:
    """Makes databases cloned from one migrated template, and drops them."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.tag = f"{_PREFIX}{os.getpid()}_"
        self.template = f"{self.tag}template"
        self.count = 0
        self.made: list[str] = []

    async def _admin(self, *statements: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    def setup(self) -> None:
        """Drop what dead sessions left behind, then create and migrate the template."""
        from taskward.stores.postgres import PostgresStore

        async def go() -> None:
            import asyncpg

            conn = await asyncpg.connect(self.admin_url, timeout=10)
            try:
                names = await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{_PREFIX}%"
                )
                for (name,) in names:
                    match = re.match(rf"{_PREFIX}(\d+)_", name)
                    if (match and not _alive(int(match.group(1)))) or name.startswith(self.tag):
                        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{self.template}"')
            finally:
                await conn.close()
            await PostgresStore(database_url(self.template, self.admin_url)).migrate()

        run_async(go)

    def new(self, *, migrated: bool = True) -> str:
        """The URL of a fresh database: migrated and empty, or without any schema."""
        self.count += 1
        name = f"{self.tag}{self.count}"
        template = self.template if migrated else "template0"
        run_async(lambda: self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.made.append(name)
        return database_url(name, self.admin_url)

    def drop_made(self) -> None:
        """Drop the clones made so far (FORCE: a leftover connection must not block it)."""
        names, self.made = self.made, []
        if names:
            run_async(
                lambda: self._admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names))
            )

    def teardown(self) -> None:
        """Drop every clone and the template."""
        self.drop_made()
        run_async(lambda: self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        import asyncpg
    except ImportError as e:  # pragma: no cover - asyncpg is a dev dependency
        return f"asyncpg is not installed ({e})"

    async def ping() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        await conn.close()

    try:
        run_async(ping)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


@pytest.fixture(scope="session")
def pg_clones() -> Iterator[PgClones]:
    """The session's template database (skips, or fails under CI, without a server)."""
    problem = _reachable(PG_ADMIN_URL)
    if problem is not None:
        where = urlsplit(PG_ADMIN_URL).netloc.rpartition("@")[2]
        message = f"PostgreSQL at {where} is not reachable ({problem})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(f"{message}; start it (scripts/test does) or set TASKWARD_TEST_PG")
    clones = PgClones(PG_ADMIN_URL)
    clones.setup()
    try:
        yield clones
    finally:
        with contextlib.suppress(Exception):
            clones.teardown()


@pytest.fixture
def pg_url(pg_clones: PgClones) -> Iterator[str]:
    """A fresh, migrated, empty PostgreSQL database for this test."""
    yield pg_clones.new()
    pg_clones.drop_made()


@pytest.fixture
def pg_bare_url(pg_clones: PgClones) -> Iterator[str]:
    """A fresh PostgreSQL database without taskward's schema (nothing migrated yet)."""
    yield pg_clones.new(migrated=False)
    pg_clones.drop_made()


# -- spans --------------------------------------------------------------------------------
#
# OpenTelemetry's global tracer provider can be set once per process, and the tests' one
# stays for the rest of the session. So that the tests that do not look at spans do not pay
# for them (every task of every later test would be traced, through the processors of every
# earlier tracing test), the provider samples only while a test holds the `spans` fixture,
# and one processor hands ended spans to that test's exporter alone.


class _TestTracing:
    """The session's provider: a sampler and a processor, both switched by `spans`."""

    exporter: Any = None  # the exporter of the test that holds `spans`, else None


def _install_test_provider() -> None:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class Switch(Sampler):
        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if _TestTracing.exporter is None:
                return SamplingResult(Decision.DROP)
            # The span's attributes are the ones a sampler passes on.
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "on while a test holds the spans fixture"

    class Forward(SpanProcessor):
        def on_start(self, span: Any, parent_context: Context | None = None) -> None:
            return None

        def on_end(self, span: ReadableSpan) -> None:
            if _TestTracing.exporter is not None:
                _TestTracing.exporter.export([span])

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(sampler=Switch())
        provider.add_span_processor(Forward())
        trace.set_tracer_provider(provider)
        from taskward.contrib.otel import notice_provider

        notice_provider()  # earlier tests' submits found none: look again now


@pytest.fixture
def spans() -> Iterator[Any]:
    """An ``InMemorySpanExporter`` holding the spans ended during this test."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    _install_test_provider()
    exporter = InMemorySpanExporter()
    _TestTracing.exporter = exporter
    try:
        yield exporter
    finally:
        _TestTracing.exporter = None
        exporter.shutdown()
