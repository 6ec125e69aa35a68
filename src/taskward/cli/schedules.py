"""``taskward schedules``: list, add, remove, pause and resume durable schedules."""

from __future__ import annotations

import click

from taskward.cli.context import (
    EXIT_USAGE,
    _Ctx,
    _fail,
    _json_args,
    _run,
    json_option,
    pass_ctx,
)
from taskward.cli.output import _show_schedules
from taskward.errors import ConfigurationError, InvalidArgumentsError, UnknownTaskError


@click.group()
def schedules() -> None:
    """Durable schedules: list, add, remove, pause, resume."""


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
