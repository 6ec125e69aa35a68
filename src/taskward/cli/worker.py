"""``taskward worker``: run a worker for an app until SIGTERM/SIGINT."""

from __future__ import annotations

import click

from taskward.cli.context import EXIT_USAGE, _Ctx, _fail, _run, pass_ctx
from taskward.loading import QUEUES_HELP, child_options, queues_option


@click.command()
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
@child_options
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
    processes: int | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: float | None,
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
            processes=processes,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
        )
    except ValueError as exc:  # e.g. TASKWARD_LEASE is not a positive number
        _fail(f"bad worker setting: {exc} (check TASKWARD_LEASE)", EXIT_USAGE)

    async def run() -> None:
        with on_stop_signals(w.stop):
            await w.run()

    _run(app, run)
