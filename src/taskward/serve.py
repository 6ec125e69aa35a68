"""``taskward serve``: the HTTP API and a worker in one process, the zero-config main job.

One event loop runs uvicorn's server and the `Worker` side by side. Signals are taskward's,
not uvicorn's (its handlers are switched off): the first SIGTERM/SIGINT stops accepting
connections, ends event streams and starts the worker's graceful stop (running tasks get
the grace, then are released); a second one stops at once. The worker runs outside the ASGI
lifespan on purpose: uvicorn skips the lifespan's shutdown on a forced exit, and the
worker must release its tasks even then.

Security: the server binds 127.0.0.1 unless told otherwise, and refuses another address
without ``TASKWARD_API_TOKEN`` unless given ``--insecure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

import click
import uvicorn

from taskward.api.auth import TOKEN_ENV, token_from_env
from taskward.api.service import TaskwardAPI
from taskward.app import App
from taskward.errors import TaskwardError
from taskward.loading import QUEUES_HELP, child_options, load_app, log_format_option, queues_option
from taskward.logformat import LogFormat, json_logs, use_log_format
from taskward.signals import on_stop_signals
from taskward.stores import redact_url
from taskward.worker import Worker

__all__ = ["is_loopback", "serve"]

logger = logging.getLogger("taskward.serve")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: `on_stop_signals` owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket, so that a busy port is a clear error before anything starts."""
    host = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _load(app_spec: str | None, db: str | None) -> App:
    if app_spec:
        app = load_app(app_spec)
        return app.with_store(db) if db else app
    from taskward import demo

    return demo.build(db) if db else demo.app


async def _serve_http(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits the process when the app's startup fails
        raise RuntimeError(f"the HTTP server did not start (code {exc.code})") from None


async def _run(api: TaskwardAPI, server: _Server, sock: socket.socket, banner: str) -> int:
    """Serve until a signal (or a failure); return the exit code."""
    try:
        await api.app.open()
    except TaskwardError as exc:
        click.echo(f"Error: cannot open the task store {redact_url(api.app.url)}: {exc}", err=True)
        return 1
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        # Ends event streams; the worker stops claiming (the second time: releases now).
        api.stop(now=signals > 1)
        server.should_exit = True
        if signals > 1:
            server.force_exit = True

    code = 0
    with on_stop_signals(on_signal):
        serving = asyncio.create_task(_serve_http(server, sock), name="taskward-http")
        while not server.started and not serving.done():  # noqa: ASYNC110 (no startup event)
            await asyncio.sleep(0.02)
        jobs: set[asyncio.Task[Any]] = {serving}
        if server.started:
            if json_logs():  # every line on stderr is then one JSON object
                logger.info("%s", banner)
            else:
                click.echo(banner, err=True)
            if api.worker is not None:
                jobs.add(asyncio.create_task(api.run_worker(), name="taskward-worker"))
        await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
        # One ended: the server (stopped, or it failed to start) or the worker (it crashed).
        api.stop()
        server.should_exit = True
        for job in jobs:
            try:
                await job
            except Exception as exc:
                logger.error("stopped after an error: %s", exc)
                code = 1
        if server.force_exit and server.started:
            # uvicorn skips the app's lifespan shutdown on a forced exit: finish it here, so
            # nothing is left half-open when the loop closes.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.lifespan.shutdown(), 5)
    try:
        await asyncio.wait_for(api.app.close(), 10)
    except Exception as exc:
        logger.warning("closing the store failed: %s", exc)
    return code


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@click.command()
@click.argument("app_spec", required=False, metavar="[MODULE:APP]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--no-worker", is_flag=True, help="API only (for replicas; workers run elsewhere).")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--queues", callback=queues_option, help=QUEUES_HELP)
@click.option("--grace", type=click.FloatRange(0), default=15.0, show_default=True)
@click.option(
    "--insecure",
    is_flag=True,
    help=f"Allow a non-loopback address without {TOKEN_ENV} (trusted networks only).",
)
@click.option("--access-log", is_flag=True, help="Log every request.")
@child_options
@log_format_option
@click.pass_context
def serve(
    ctx: click.Context,
    app_spec: str | None,
    host: str,
    port: int,
    no_worker: bool,
    concurrency: int,
    queues: tuple[list[str] | None, dict[str, int]],
    grace: float,
    insecure: bool,
    access_log: bool,
    processes: int | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: float | None,
    log_format: LogFormat,
) -> None:
    """Serve the HTTP API (docs at /docs) and run a worker, until SIGTERM/SIGINT.

    Without MODULE:APP it serves a demo app: try
    curl -X POST localhost:8080/api/tasks -H 'content-type: application/json' -d '{}'
    """
    root = ctx.find_root().params
    app_spec = app_spec or root.get("app_spec")
    token = token_from_env()
    if not token and not insecure and not is_loopback(host):
        raise click.UsageError(
            f"refusing to serve on {host} without a token: anyone who can reach it could "
            f"submit and cancel tasks. Set {TOKEN_ENV}, bind to 127.0.0.1, or pass "
            "--insecure on a network you trust."
        )
    if not logging.getLogger().handlers:  # run directly, not under the taskward group
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    use_log_format(log_format)
    app = _load(app_spec, root.get("db"))
    worker = None
    if not no_worker:
        queue_list, queue_limits = queues
        worker = Worker(
            app,
            queues=queue_list,
            concurrency=concurrency,
            queue_limits=queue_limits,
            grace=grace,
            processes=processes,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
        )
    api = TaskwardAPI(app, worker=worker, token=token, run_worker=False)
    sock = _listen(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        api.fastapi(),
        lifespan="on",
        log_config=None,
        access_log=access_log,
        timeout_graceful_shutdown=max(1, min(round(grace), 30)),
        server_header=False,
    )
    banner = (
        f"taskward: serving {app_spec or 'the demo app'} on http://{shown}:{bound_port} "
        f"(API docs at /docs); "
        + ("no worker" if worker is None else f"worker with {concurrency} slots")
        + ("; token required" if token else "")
    )
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        code = runner.run(_run(api, _Server(config), sock, banner))
    sys.exit(code)


if __name__ == "__main__":
    serve()
