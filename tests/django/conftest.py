"""Fixtures for the Django integration: a real Django project (``project/``) whose tasks run
in real ``manage.py taskward_worker`` processes, on SQLite and on PostgreSQL.

Django is set up once, here, with the project's settings; each test that asks for
``backend`` gets the default task backend on a store of its own (``override_settings``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import django
import pytest
from django.test import override_settings
from django_helpers import PROJECT, DjangoWorker, start_worker, tasks_setting

sys.path.insert(0, str(PROJECT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")
django.setup()

from taskward.contrib.django import TaskwardBackend  # noqa: E402
from taskward.contrib.django.compat import task_backends  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite file, or a fresh migrated PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tasks.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def backend(store_url: str) -> Iterator[TaskwardBackend]:
    """The project's default task backend, on this test's store."""
    with override_settings(TASKS=tasks_setting(store_url)):
        found = task_backends["default"]
        assert isinstance(found, TaskwardBackend)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
async def abackend(backend: TaskwardBackend) -> AsyncIterator[TaskwardBackend]:
    """`backend` for a test on an event loop: its app is closed on that loop, at the end."""
    try:
        yield backend
    finally:
        await backend.app.close()


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    """Where tasks write files that prove they ran."""
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def worker(
    store_url: str, tmp_path: Path, marker_dir: Path
) -> Iterator[Callable[..., DjangoWorker]]:
    """Starts ``manage.py taskward_worker`` processes on this test's store; kills any that a
    test left running."""
    started: list[DjangoWorker] = []

    def start(*args: str) -> DjangoWorker:
        proc = start_worker(store_url, tmp_path, marker_dir, *args, number=len(started))
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()
