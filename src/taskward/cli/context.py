"""The CLI's shared plumbing: exit codes, the app (or store) a command works on, and running
one of its coroutines with errors turned into messages and exit codes.

Helpers keep their leading underscore: they are the CLI's own, not taskward's API.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar
from uuid import UUID

import click

from taskward.app import App
from taskward.errors import (
    ConfigurationError,
    InvalidArgumentsError,
    InvalidJSONError,
    TaskwardError,
)
from taskward.loading import load_app, origin
from taskward.stores import redact_url
from taskward.strictjson import parse_strict_json

T = TypeVar("T")

EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED, EXIT_TIMEOUT = 1, 2, 3, 4
#: 128 + SIGINT, as shells report a program that Ctrl-C stopped.
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _run(app: App, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` with the app open, turning taskward errors into messages and exit codes."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await app.close()

    try:
        return asyncio.run(main())
    except (InvalidArgumentsError, ConfigurationError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except TaskwardError as exc:  # unknown id, active name, not retryable, store down
        _fail(str(exc), EXIT_FAILED)


def _json_args(text: str) -> dict[str, Any]:
    """``--args``: a strict JSON object (no NaN or Infinity, no repeated key, not too deep)."""
    try:
        args = parse_strict_json(text)
    except InvalidJSONError as exc:
        _fail(f"--args is not valid JSON: {exc}", EXIT_USAGE)
    if not isinstance(args, dict):
        _fail("--args must be a JSON object of named arguments", EXIT_USAGE)
    return args


def _task_id(value: str) -> UUID:
    """A task id argument as a UUID; anything else is bad usage."""
    try:
        return UUID(value)
    except ValueError:
        _fail(f"{value!r} is not a task id (a UUID)", EXIT_USAGE)


class _Ctx:
    """The group's options (``--db``, ``--app``), passed to every command."""

    def __init__(self, db: str | None, app_spec: str | None) -> None:
        self.db = db
        self.app_spec = app_spec

    def app(self, need_tasks: bool = False) -> App:
        """The App to work with; ``need_tasks``: the command needs its task functions.

        A command that needs no task function still loads the app when one is given (its
        types say which arguments are secret, to show them as ``***``), but an app that
        fails to import is only warned about: the store (--db, TASKWARD_DB or the default)
        is read without it, so that ``list`` and ``status`` still work while the app is
        broken, hiding arguments by name only.
        """
        if self.app_spec:
            try:
                app = load_app(self.app_spec)
            except Exception as exc:  # any breakage of the app's module, here
                if need_tasks:
                    raise
                why = (
                    exc.format_message()
                    if isinstance(exc, click.ClickException)
                    else f"cannot load the app {self.app_spec!r}: {origin(exc)}"
                    f"{type(exc).__name__}: {exc}"
                )
                fallback = App(self.db)
                click.echo(
                    f"Warning: {why}; reading the store {redact_url(fallback.url)} without it"
                    " (arguments are hidden by name only)",
                    err=True,
                )
                return fallback
            if self.db:
                app = app.with_store(self.db)
            return app
        if need_tasks:
            raise click.UsageError(
                "this command needs the app: give --app module:app or set TASKWARD_APP"
            )
        return App(self.db)


pass_ctx = click.make_pass_decorator(_Ctx)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
