"""The ``taskward`` command: a thin layer over `App` and `Worker`.

Exit codes: 0 success; 1 the operation failed (unknown id, refused, task Failed, cancel of a
task that had already Completed or Failed); 2 bad usage or input (bad JSON, unknown task,
invalid arguments, malformed id, no app where one is needed, an app that fails to load with a
taskward configuration error); 3 the task was Cancelled; 4 a wait timed out; 130 interrupted
by Ctrl-C (SIGINT; ``worker`` and ``serve`` instead stop gracefully and exit 0).
``--json`` prints machine-readable output on every command; errors always go to stderr.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
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
    UnknownTaskError,
)
from taskward.loading import QUEUES_HELP, load_app, origin, queues_option
from taskward.models import FINISHED, Status, TaskInfo
from taskward.scheduler import ScheduleInfo
from taskward.stores import redact_url
from taskward.stores.base import Counts
from taskward.strictjson import parse_strict_json

T = TypeVar("T")

EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED, EXIT_TIMEOUT = 1, 2, 3, 4
#: 128 + SIGINT, as shells report a program that Ctrl-C stopped.
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
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
    try:
        return UUID(value)
    except ValueError:
        _fail(f"{value!r} is not a task id (a UUID)", EXIT_USAGE)


def _task_json(app: App, info: TaskInfo) -> dict[str, Any]:
    """A task as the CLI prints it: secret arguments as "***" (by type with the app's task
    functions, by name always)."""
    return info.to_json(app.secrets(info.task))


def _show(app: App, info: TaskInfo, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_task_json(app, info)))
        return
    data = _task_json(app, info)
    progress = info.progress
    data["progress"] = (
        None
        if progress is None
        else f"{progress.done:g}"
        + (f"/{progress.total:g}" if progress.total is not None else "")
        + (f" {progress.message}" if progress.message else "")
    )
    data["args"] = json.dumps(data["args"]) if data["args"] is not None else None
    data["result"] = json.dumps(data["result"]) if info.result is not None else None
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value is None or key == "traceback":
            continue
        click.echo(f"{key:<{width}}  {value}")
    if info.traceback:
        click.echo("traceback:\n" + info.traceback.rstrip())


class _Ctx:
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


@click.group(cls=_Commands)
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


@main.command()
@click.argument("app_spec", required=False)
@click.option("--queues", callback=queues_option, help=QUEUES_HELP)
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--grace", type=click.FloatRange(0), default=15.0, show_default=True)
@click.option(
    "--lease",
    type=click.FloatRange(0.1),
    default=None,
    help="Lease seconds (default: TASKWARD_LEASE, else 30); heartbeats every third of it.",
)
@click.option(
    "--keep-completed",
    type=click.FloatRange(0),
    default=86_400.0,
    show_default=True,
    help="Seconds a Completed task is kept before it is pruned.",
)
@click.option(
    "--keep-failed",
    type=click.FloatRange(0),
    default=7 * 86_400.0,
    show_default=True,
    help="Seconds a Failed or Cancelled task is kept before it is pruned.",
)
@click.option("--no-prune", is_flag=True, help="Keep finished tasks (prune them elsewhere).")
@pass_ctx
def worker(
    obj: _Ctx,
    app_spec: str | None,
    queues: tuple[list[str] | None, dict[str, int]],
    concurrency: int,
    grace: float,
    lease: float | None,
    keep_completed: float,
    keep_failed: float,
    no_prune: bool,
) -> None:
    """Run a worker for APP_SPEC (module:app) until SIGTERM/SIGINT."""
    from taskward.signals import on_stop_signals
    from taskward.worker import Pruning, Worker

    if app_spec:
        obj.app_spec = app_spec
    app = obj.app(need_tasks=True)
    queue_list, queue_limits = queues
    pruning = (
        None
        if no_prune
        else Pruning(completed=keep_completed, failed=keep_failed, cancelled=keep_failed)
    )
    try:
        w = Worker(
            app,
            queues=queue_list,
            concurrency=concurrency,
            queue_limits=queue_limits,
            grace=grace,
            lease=lease,
            pruning=pruning,
        )
    except ValueError as exc:  # e.g. TASKWARD_LEASE is not a positive number
        _fail(f"bad worker setting: {exc} (check TASKWARD_LEASE)", EXIT_USAGE)

    async def run() -> None:
        with on_stop_signals(w.stop):
            await w.run()

    _run(app, run)


@main.command()
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
        new = app.prepare(
            task,
            args,
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            max_attempts=max_attempts,
            timeout=timeout,
        )
    except (UnknownTaskError, InvalidArgumentsError, ConfigurationError) as exc:
        _fail(str(exc), EXIT_USAGE)

    async def go() -> TaskInfo:
        return (await app.submit_many([new]))[0]

    info = _run(app, go)
    click.echo(json.dumps(_task_json(app, info)) if as_json else str(info.id))


@main.command()
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


@main.command(name="list")
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
    if as_json:
        click.echo(
            json.dumps({"items": [_task_json(app, i) for i in items], "cursor": next_cursor})
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "task", "queue", "prio", "status", "attempts", "created")
    for i in items:
        table.add_row(
            str(i.id),
            i.name or "",
            i.task or "",
            i.queue or "",
            str(i.priority),
            i.status.value,
            f"{i.attempts}/{i.max_attempts}",
            i.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    # Piped output keeps whole ids and names instead of folding them to 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}")


@main.command()
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


@main.command()
@click.argument("task_id")
@json_option
@pass_ctx
def retry(obj: _Ctx, task_id: str, as_json: bool) -> None:
    """Run a Failed or Cancelled task again."""
    app = obj.app()
    tid = _task_id(task_id)
    info = _run(app, lambda: app.retry(tid))
    _show(app, info, as_json)


@main.command()
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


@main.command()
@json_option
@pass_ctx
def stats(obj: _Ctx, as_json: bool) -> None:
    """Counts by status and queue, and the worker processes alive."""
    app = obj.app()

    async def go() -> tuple[Counts, list[dict[str, Any]]]:
        return await app.counts(), await app.workers()

    counts, workers = _run(app, go)
    by_status = {s.value: n for s, n in counts.by_status().items()}
    by_queue = {
        queue: {s.value: per.get(s, 0) for s in Status}
        for queue, per in sorted(counts.by_queue.items())
    }
    if as_json:
        alive = [
            {**w, "started_at": _iso(w["started_at"]), "last_seen": _iso(w["last_seen"])}
            for w in workers
        ]
        click.echo(json.dumps({"by_status": by_status, "by_queue": by_queue, "workers": alive}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("queue", *(s.value for s in Status))
    for queue, per in by_queue.items():
        table.add_row(queue, *(str(per[s.value]) for s in Status))
    table.add_row("all", *(str(by_status[s.value]) for s in Status), style="bold")
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(f"{len(workers)} worker(s) alive")
    for w in workers:
        limits = w.get("queue_limits") or {}
        queues = (
            ",".join(f"{q}:{limits[q]}" if q in limits else q for q in w["queues"])
            if w["queues"]
            else "all queues"
        )
        console.print(
            f"  {w['id']}  {w['running']}/{w['concurrency']} slots busy  {queues}",
            highlight=False,
        )


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


@main.command()
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


@main.command()
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


# -- schedules -------------------------------------------------------------------------------


@main.group()
def schedules() -> None:
    """Durable schedules: list, add, remove, pause, resume."""


def _show_schedules(app: App, infos: list[ScheduleInfo], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([i.to_json(app.secrets(i.schedule.task)) for i in infos]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "when", "task", "args", "state", "last tick", "next tick")
    for i in infos:
        s = i.schedule
        table.add_row(
            s.name,
            s.describe() + (" catch-up" if s.catch_up else ""),
            s.task,
            json.dumps(i.to_json(app.secrets(s.task))["args"]),
            "paused" if i.paused else "active",
            i.last_tick.strftime("%Y-%m-%d %H:%M:%S") if i.last_tick else "",
            i.next_tick.strftime("%Y-%m-%d %H:%M:%S") if i.next_tick else "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@schedules.command(name="list")
@json_option
@pass_ctx
def schedules_list(obj: _Ctx, as_json: bool) -> None:
    """List the stored schedules (times in UTC)."""
    app = obj.app()
    _show_schedules(app, _run(app, app.list_schedules), as_json)


@schedules.command(name="add")
@click.argument("name")
@click.argument("task")
@click.option("--every", type=float, help="Seconds between ticks (aligned to the Unix epoch).")
@click.option("--cron", help="A cron expression, e.g. '0 3 * * *'.")
@click.option("--timezone", default="UTC", show_default=True, help="The cron's time zone.")
@click.option("--args", "args_json", default="{}", help="Arguments as a JSON object.")
@click.option("--catch-up", is_flag=True, help="After downtime, run every missed tick.")
@click.option("--max-instances", type=int, default=1, show_default=True)
@json_option
@pass_ctx
def schedules_add(
    obj: _Ctx,
    name: str,
    task: str,
    every: float | None,
    cron: str | None,
    timezone: str,
    args_json: str,
    catch_up: bool,
    max_instances: int,
    as_json: bool,
) -> None:
    """Store schedule NAME: submit TASK on every tick (--every or --cron)."""
    from taskward.scheduler import Schedule

    args = _json_args(args_json)
    app = obj.app(need_tasks=True)
    try:
        schedule = Schedule(
            name=name,
            task=task,
            args=args,
            every=every,
            cron=cron,
            timezone=timezone,
            catch_up=catch_up,
            max_instances=max_instances,
        )
        app.check_schedule(schedule)
    except (UnknownTaskError, InvalidArgumentsError, ConfigurationError) as exc:
        _fail(str(exc), EXIT_USAGE)
    _show_schedules(app, [_run(app, lambda: app.add_schedule(schedule))], as_json)


@schedules.command(name="remove")
@click.argument("name")
@pass_ctx
def schedules_remove(obj: _Ctx, name: str) -> None:
    """Delete schedule NAME (the tasks it submitted stay)."""
    app = obj.app()
    _run(app, lambda: app.remove_schedule(name))
    click.echo(f"removed schedule {name!r}")


@schedules.command(name="pause")
@click.argument("name")
@json_option
@pass_ctx
def schedules_pause(obj: _Ctx, name: str, as_json: bool) -> None:
    """Stop firing schedule NAME until it is resumed."""
    app = obj.app()
    _show_schedules(app, [_run(app, lambda: app.pause_schedule(name))], as_json)


@schedules.command(name="resume")
@click.argument("name")
@json_option
@pass_ctx
def schedules_resume(obj: _Ctx, name: str, as_json: bool) -> None:
    """Fire schedule NAME again from its next tick (ticks missed while paused are skipped)."""
    app = obj.app()
    _show_schedules(app, [_run(app, lambda: app.resume_schedule(name))], as_json)
