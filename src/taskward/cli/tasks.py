"""Commands on tasks: submit, status, list, cancel, retry, wait."""

from __future__ import annotations

import asyncio
import json
import sys
from uuid import UUID

import click

from taskward.app import App
from taskward.cli.context import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    _Ctx,
    _fail,
    _json_args,
    _run,
    _task_id,
    json_option,
    pass_ctx,
)
from taskward.cli.output import _show, _show_page, _task_json
from taskward.errors import ConfigurationError, InvalidArgumentsError, UnknownTaskError
from taskward.models import FINISHED, Status, TaskInfo
from taskward.options import SubmitOptions


@click.command()
@click.argument("task", required=False)
@click.option("--args", "args_json", default="{}", help="Arguments as a JSON object.")
@click.option("--name", help="A unique name among active tasks.")
@click.option("--priority", type=int, help="Lower runs first.")
@click.option("--queue", help="Queue to submit to.")
@click.option("--delay", type=float, help="Seconds to wait before it may run.")
@click.option("--max-attempts", type=int)
@click.option("--timeout", type=float, help="Seconds one attempt may take.")
@json_option
@pass_ctx
def submit(
    obj: _Ctx,
    task: str | None,
    args_json: str,
    name: str | None,
    priority: int | None,
    queue: str | None,
    delay: float | None,
    max_attempts: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Submit TASK (default: the app's default task) with --args; prints the new task's id."""
    args = _json_args(args_json)
    app = obj.app(need_tasks=True)
    try:
        options = SubmitOptions(
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        new = app.prepare(task, args, options)
    except (UnknownTaskError, InvalidArgumentsError, ConfigurationError) as exc:
        _fail(str(exc), EXIT_USAGE)

    async def go() -> TaskInfo:
        return (await app.submit_many([new]))[0]

    info = _run(app, go)
    click.echo(json.dumps(_task_json(app, info)) if as_json else str(info.id))


@click.command()
@click.argument("task_id")
@json_option
@pass_ctx
def status(obj: _Ctx, task_id: str, as_json: bool) -> None:
    """Show one task."""
    app = obj.app()
    tid = _task_id(task_id)
    info = _run(app, lambda: app.get(tid))
    if info is None:
        _fail(f"no task with id {task_id}")
    _show(app, info, as_json)


@click.command(name="list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in Status], case_sensitive=False),
    help="Only tasks in this status (repeat for several).",
)
@click.option("--task")
@click.option("--queue")
@click.option("--name")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", help="From the previous page's output.")
@json_option
@pass_ctx
def list_(
    obj: _Ctx,
    statuses: tuple[str, ...],
    task: str | None,
    queue: str | None,
    name: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List tasks, newest first."""
    app = obj.app()
    items, next_cursor = _run(
        app,
        lambda: app.list(
            status=list(statuses) or None,
            task=task,
            queue=queue,
            name=name,
            limit=limit,
            cursor=cursor,
        ),
    )
    _show_page(app, items, next_cursor, as_json)


@click.command()
@click.argument("task_id")
@json_option
@pass_ctx
def cancel(obj: _Ctx, task_id: str, as_json: bool) -> None:
    """Cancel a task: Pending at once, Running within about a second."""
    app = obj.app()
    tid = _task_id(task_id)

    async def go() -> tuple[TaskInfo, bool]:
        # A finished task is left as it is; asking first tells "already Cancelled" apart
        # from "Cancelled by this request", which the store's answer alone cannot.
        before = await app.get(tid)
        if before is None:
            raise UnknownTaskError(f"no task with id {tid}")
        if before.is_finished:
            return before, False
        after = await app.cancel(tid)
        return after, not after.is_finished or after.status is Status.CANCELLED

    info, acted = _run(app, go)
    _show(app, info, as_json)
    if not acted:
        if info.status is Status.CANCELLED:  # the wish is met: harmless, as over HTTP
            click.echo(f"task {tid} was already cancelled", err=True)
            return
        _fail(f"task {tid} had already ended ({info.status.value}); nothing to cancel")
    if info.status is Status.RUNNING:
        click.echo("cancel requested: its worker stops it within about a second", err=True)


@click.command()
@click.argument("task_id")
@json_option
@pass_ctx
def retry(obj: _Ctx, task_id: str, as_json: bool) -> None:
    """Run a Failed or Cancelled task again."""
    app = obj.app()
    tid = _task_id(task_id)
    info = _run(app, lambda: app.retry(tid))
    _show(app, info, as_json)


@click.command()
@click.argument("task_id")
@click.option("--timeout", type=click.FloatRange(0), help="Give up after this many seconds.")
@json_option
@pass_ctx
def wait(obj: _Ctx, task_id: str, timeout: float | None, as_json: bool) -> None:
    """Wait for a task to finish, with a live progress bar; exit code tells how it ended."""
    app = obj.app()
    tid = _task_id(task_id)
    try:
        info = _run(app, lambda: _follow(app, tid, timeout, show_bar=not as_json))
    except KeyboardInterrupt:
        click.echo(f"Interrupted: stopped waiting; task {tid} itself goes on.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if as_json:
        click.echo(json.dumps(_task_json(app, info)))
    elif info.status is Status.COMPLETED:
        click.echo(json.dumps(info.result))
    elif info.status in FINISHED:
        click.echo(f"{info.status.value}" + (f": {info.error}" if info.error else ""), err=True)
    else:
        waited = f"{timeout or 0:g} s"
        click.echo(f"timed out after {waited}: task {tid} is still {info.status}", err=True)
    if info.status is Status.FAILED:
        sys.exit(EXIT_FAILED)
    if info.status is Status.CANCELLED:
        sys.exit(EXIT_CANCELLED)
    if info.status not in FINISHED:
        sys.exit(EXIT_TIMEOUT)


async def _follow(app: App, task_id: UUID, timeout: float | None, show_bar: bool) -> TaskInfo:
    """Poll the task until it finishes or ``timeout`` passes, drawing its progress."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        # Not on a pipe or a log file: there a bar is only noise (blank lines).
        disable=not show_bar or not console.is_terminal,
        transient=True,
        console=console,
    ) as bar:
        row = bar.add_task("waiting", total=None, detail="")
        while True:
            info = await app.get(task_id)
            if info is None:
                raise UnknownTaskError(f"no task with id {task_id}")
            p = info.progress
            bar.update(
                row,
                description=info.status.value,
                total=p.total if p is not None else None,
                completed=p.done if p is not None else 0,
                detail=(p.message or "") if p is not None else "",
            )
            if info.status in FINISHED:
                return info
            if deadline is not None and loop.time() >= deadline:
                return info
            await asyncio.sleep(0.1)
