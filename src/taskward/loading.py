"""What the command-line entry points (``taskward`` and ``taskward serve``) share: loading
the App from ``module:attribute``, and reading ``--queues``, the child-process options and
``--log-format``.

Kept out of `taskward.cli` so that ``serve`` (loaded on its own, with the server stack) and
the CLI's commands both use it without either importing the other.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from taskward.app import App
from taskward.errors import TaskwardError

__all__ = [
    "QUEUES_HELP",
    "AppLoadError",
    "child_options",
    "load_app",
    "log_format_option",
    "origin",
    "parse_queues",
    "queues_option",
]

F = TypeVar("F", bound=Callable[..., Any])

# The package's own folder: frames in it are taskward's, not the user's.
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class AppLoadError(click.ClickException):
    """The app module raised a taskward error while it was imported (a bad setting in it)."""

    exit_code = click.UsageError.exit_code  # 2: bad usage or input


def origin(exc: BaseException) -> str:
    """``path.py:12: ``, the last line outside taskward on ``exc``'s way (the user's own)."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if not name.startswith("<") and not os.path.abspath(name).startswith(_PACKAGE):
            shown = os.path.relpath(name)
            where = f"{name if shown.startswith('..') else shown}:{frame.lineno}: "
    return where


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (the attribute defaults to ``app``) and return the App."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise click.UsageError(f"--app must look like 'module:app', not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like uvicorn: apps in the current folder import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import {module_name!r}: {exc}") from exc
    except TaskwardError as exc:
        # A bad @app.task(...) option and the like: the message says what to change and
        # the origin where; a traceback through taskward's internals would only bury it.
        raise AppLoadError(f"cannot load the app {spec!r}: {origin(exc)}{exc}") from None
    attr = attr or "app"
    if not hasattr(module, attr):
        raise click.UsageError(f"module {module_name!r} has no attribute {attr!r} (from {spec!r})")
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise click.UsageError(f"{spec!r} is not a taskward App (found {type(app).__name__})")
    return app


def parse_queues(spec: str) -> tuple[list[str], dict[str, int]]:
    """``"emails:5,reports:1,default"`` -> the queues, and the limits of those with one.

    ValueError (saying what is wrong) for an empty name, a name given twice or a limit that
    is not a positive integer.
    """
    queues: list[str] = []
    limits: dict[str, int] = {}
    for item in spec.split(","):
        name, sep, limit = (part.strip() for part in item.partition(":"))
        if not name and not sep:
            continue  # "a,,b" or a trailing comma
        if not name:
            raise ValueError(f"{item.strip()!r} has no queue name (expected name or name:limit)")
        if name in queues:
            raise ValueError(f"queue {name!r} is listed twice")
        queues.append(name)
        if sep:
            if not limit.isdigit() or int(limit) < 1:
                raise ValueError(
                    f"the limit of queue {name!r} must be an integer >= 1, not {limit!r}"
                )
            limits[name] = int(limit)
    if not queues:
        raise ValueError(f"{spec!r} names no queue")
    return queues, limits


def queues_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[list[str] | None, dict[str, int]]:
    """``--queues emails:5,reports:1,default``: the queues served, and their own limits."""
    if not value:
        return None, {}
    try:
        return parse_queues(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


QUEUES_HELP = (
    "Comma-separated queues to serve (default: all); NAME:N also runs at most N tasks of that"
    " queue at once, within --concurrency."
)


def child_options(command: F) -> F:
    """``--processes``, ``--max-tasks-per-child`` and ``--max-memory-per-child``: the pool of
    child processes for ``executor="process"`` tasks (keyword arguments of `Worker`)."""
    options = [
        click.option(
            "--processes",
            type=click.IntRange(1, 1024),
            default=None,
            help="Child processes for executor='process' tasks (default: the number of CPUs).",
        ),
        click.option(
            "--max-tasks-per-child",
            type=click.IntRange(1),
            default=None,
            help="Replace a child process after it ran this many tasks (default: never).",
        ),
        click.option(
            "--max-memory-per-child",
            type=click.FloatRange(0, min_open=True),
            default=None,
            metavar="MB",
            help="Replace a child process after a task left it above this resident memory.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


#: ``--log-format`` of ``worker`` and ``serve`` (`taskward.logformat`).
log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="TASKWARD_LOG_FORMAT",
    show_envvar=True,
    help="Log lines as text, or as one JSON object each (see docs/observability.md).",
)
