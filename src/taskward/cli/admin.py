"""Commands on the store as a whole: stats, prune, migrate."""

from __future__ import annotations

import json
from typing import Any

import click

from taskward.cli.context import _Ctx, _run, json_option, pass_ctx
from taskward.cli.output import _show_stats
from taskward.models import Status
from taskward.stores.base import Counts


@click.command()
@json_option
@pass_ctx
def stats(obj: _Ctx, as_json: bool) -> None:
    """Counts by status and queue, and the worker processes alive."""
    app = obj.app()

    async def go() -> tuple[Counts, list[dict[str, Any]]]:
        return await app.counts(), await app.workers()

    counts, workers = _run(app, go)
    _show_stats(counts, workers, as_json)


@click.command()
@click.option("--completed", type=click.FloatRange(0), default=86_400.0, show_default=True)
@click.option("--failed", type=click.FloatRange(0), default=7 * 86_400.0, show_default=True)
@click.option("--cancelled", type=click.FloatRange(0), default=7 * 86_400.0, show_default=True)
@json_option
@pass_ctx
def prune(obj: _Ctx, completed: float, failed: float, cancelled: float, as_json: bool) -> None:
    """Delete finished tasks older than the given ages (seconds)."""
    app = obj.app()
    ages = {Status.COMPLETED: completed, Status.FAILED: failed, Status.CANCELLED: cancelled}

    async def go() -> int:
        store = await app.connect()
        total = 0
        while (n := await store.prune(ages, 1000)) > 0:
            total += n
        return total

    total = _run(app, go)
    click.echo(json.dumps({"pruned": total}) if as_json else f"pruned {total} finished tasks")


@click.command()
@json_option
@pass_ctx
def migrate(obj: _Ctx, as_json: bool) -> None:
    """Create or upgrade the store's schema (--db / TASKWARD_DB; needs no app).

    PostgreSQL: applies the numbered migrations (workers refuse an older schema until this
    has run). SQLite creates its schema on first use: this only opens the file.
    """
    app = obj.app()
    url = app.url

    async def go() -> tuple[int | None, int | None]:
        from taskward.stores import open_store

        store = open_store(url)
        if url.partition("://")[0].lower() in ("postgresql", "postgres"):
            from taskward.stores.postgres import SCHEMA_VERSION, PostgresStore

            assert isinstance(store, PostgresStore)
            return await store.migrate(), SCHEMA_VERSION
        await store.open()
        await store.close()
        return None, None  # no versions to tell

    before, after = _run(app, go)
    if as_json:
        click.echo(json.dumps({"before": before, "after": after}))
    elif after is None:
        click.echo("schema ready (this store creates its own on first use)")
    elif before == after:
        click.echo(f"schema already at version {after}")
    else:
        click.echo(f"schema migrated from version {before} to {after}")
