"""``taskward worker``: run a worker for an app until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import click

from taskward.cli.context import EXIT_USAGE, _Ctx, _fail, _run, pass_ctx
from taskward.loading import QUEUES_HELP, child_options, log_format_option, queues_option
from taskward.logformat import LogFormat, bind, use_log_format

if TYPE_CHECKING:
    from taskward.probes import ProbeServer
    from taskward.worker import Worker

logger = logging.getLogger("taskward.worker")


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
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics, /health/live and /health/ready on this port (0: any free one).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of --metrics-port (0.0.0.0 in a container, for Prometheus and probes).",
)
@log_format_option
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
    metrics_port: int | None,
    metrics_host: str,
    log_format: LogFormat,
) -> None:
    """Run a worker for APP_SPEC (module:app) until SIGTERM/SIGINT."""
    from taskward.signals import on_stop_signals
    from taskward.worker import Pruning, Worker

    use_log_format(log_format)
    probes = None if metrics_port is None else _probe_socket(metrics_host, metrics_port)
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
        bind(worker=w.id)  # every line this worker logs names it (taskward.logformat)
        if probes is None:
            with on_stop_signals(w.stop):
                await w.run()
            return
        server = _probe_server(w, probes)
        await server.start()
        logger.info("worker %s: metrics and probes on %s", w.id, server.url)

        def stop() -> None:
            server.drain()  # not ready from the first signal on, while running tasks end
            w.stop()

        try:
            with on_stop_signals(stop):
                await w.run()
        finally:
            await server.close()

    _run(app, run)


def _probe_socket(host: str, port: int) -> socket.socket:
    """The bound socket of ``--metrics-port``: a missing extra or a busy port is an error
    before the worker starts, not after it has claimed tasks."""
    try:
        import prometheus_client  # noqa: F401  (the server extra)
    except ImportError:
        raise click.UsageError(
            "--metrics-port needs prometheus-client: pip install 'taskward[server]'"
        ) from None
    from taskward.probes import listen

    try:
        return listen(host, port)
    except OSError as exc:
        raise click.UsageError(
            f"--metrics-port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


def _probe_server(worker: Worker, sock: socket.socket) -> ProbeServer:
    from taskward.probes import ProbeServer
    from taskward.worker_metrics import WorkerMetrics

    metrics = WorkerMetrics(worker)
    metrics.install()
    return ProbeServer(worker, metrics, sock)
