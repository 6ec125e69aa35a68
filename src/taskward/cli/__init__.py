"""The ``taskward`` command: a thin layer over `App` and `Worker`.

Exit codes: 0 success; 1 the operation failed (unknown id, refused, task Failed, cancel of a
task that had already Completed or Failed); 2 bad usage or input (bad JSON, unknown task,
invalid arguments, malformed id, no app where one is needed, an app that fails to load with a
taskward configuration error); 3 the task was Cancelled; 4 a wait timed out; 130 interrupted
by Ctrl-C (SIGINT; ``worker`` and ``serve`` instead stop gracefully and exit 0).
``--json`` prints machine-readable output on every command; errors always go to stderr.

This module is the group and its options; each family of commands is a module of its own
(`tasks`, `worker`, `schedules`, `admin`), over what they share: `context` (the app or store
a command works on, exit codes) and `output` (tables, JSON). ``serve`` lives in
`taskward.serve`, imported only when used.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from taskward.cli.admin import migrate, prune, stats
from taskward.cli.context import EXIT_INTERRUPTED, _Ctx
from taskward.cli.schedules import schedules
from taskward.cli.tasks import cancel, list_, retry, status, submit, wait
from taskward.cli.worker import worker

__all__ = ["main"]


#: The options of ``taskward`` itself (they go before the command): a placeholder for their
#: value, and the environment variable that can give it instead.
_GROUP_OPTIONS = {
    "--app": ("module:app", "TASKWARD_APP"),
    "--db": ("URL", "TASKWARD_DB"),
    "-v": ("", None),
    "--verbose": ("", None),
}


def _misplaced(exc: click.NoSuchOption) -> click.UsageError | None:
    """A hint for a group option given after the command (``taskward submit --app x``)."""
    if exc.option_name not in _GROUP_OPTIONS:
        return None
    option = exc.option_name
    value, env = _GROUP_OPTIONS[option]
    names = []
    ctx = exc.ctx
    while ctx is not None and ctx.parent is not None:  # up to, not with, the root
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(reversed(names)) or "COMMAND"
    example = f"taskward {option}{' ' + value if value else ''} {command} ..."
    hint = f"{option} is an option of taskward itself, not of {command!r}: put it before the"
    hint += f" command, as in `{example}`"
    if env:
        hint += f", or set {env}"
    if option == "--app" and command in ("worker", "serve"):
        hint += f"; `taskward {command} module:app` also takes the app as its argument"
    return click.UsageError(hint, ctx=exc.ctx)


class _Commands(click.Group):
    """The command group; ``serve`` is imported only when used (it loads the server stack)."""

    lazy = {"serve": "taskward.serve:serve"}

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            raise (_misplaced(exc) or exc) from None
        except KeyboardInterrupt:
            # Ctrl-C: the shells' 130, not click's "Aborted!" with 1, which would read as
            # "the operation failed" (for `wait`: "the task failed").
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise click.ClickException(
                f"`taskward {cmd_name}` needs the server extra: "
                f"pip install 'taskward[server]' ({exc})"
            ) from exc
        command: click.Command = getattr(module, attr)
        return command


@click.group(
    cls=_Commands,
    commands=[worker, submit, status, list_, cancel, retry, wait, stats, prune, migrate, schedules],
)
@click.option(
    "--db",
    envvar="TASKWARD_DB",
    show_envvar=True,
    help="Store URL (default: the app's store, else sqlite:///taskward.db).",
)
@click.option(
    "--app",
    "app_spec",
    envvar="TASKWARD_APP",
    show_envvar=True,
    help="The App as module:attribute (needed to submit and to run workers).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="taskward")
@click.pass_context
def main(ctx: click.Context, db: str | None, app_spec: str | None, verbose: int) -> None:
    """taskward: background tasks, durable on SQLite or PostgreSQL."""
    # The long-running commands tell what they do (start, signals, releases); the others only
    # warn. Each -v shows one level more.
    base = logging.INFO if ctx.invoked_subcommand in ("serve", "worker") else logging.WARNING
    level = max(logging.DEBUG, base - 10 * verbose)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = _Ctx(db, app_spec)
