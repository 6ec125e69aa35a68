"""A worker process's own HTTP port (``taskward worker --metrics-port``): ``/metrics``,
``/health/live`` and ``/health/ready``.

The server is a few lines of HTTP/1.1 on the worker's own event loop (asyncio streams, one
request per connection, GET and HEAD only), not a thread beside it: so that

- ``/health/live`` answers 200 exactly while the loop answers. A task function that blocks
  the loop without awaiting blocks this answer too, and the liveness probe's timeout finds
  out (a server in a thread of its own would go on answering for a stuck worker).
- ``/health/ready`` answers 200 while the worker runs and its store answered one of
  `ProbeServer`'s pings (a read by key, every `PING_EVERY` seconds, at most `PING_TIMEOUT`
  each) within the last `STALE` seconds; else 503 with the reason: starting, the store is
  not reachable, or shutting down (from the first SIGTERM on, while the worker drains).
  The pings run in the background, so a probe never waits for the store.
- ``/metrics`` is `taskward.worker_metrics.WorkerMetrics.render`.

The answers are JSON, as ``serve``'s probes: ``{"status": "ok"}`` or
``{"status": "unavailable", "reason": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import UUID

if TYPE_CHECKING:
    from taskward.worker import Worker
    from taskward.worker_metrics import WorkerMetrics

__all__ = ["PING_EVERY", "PING_TIMEOUT", "STALE", "ProbeServer", "listen"]

logger = logging.getLogger("taskward.probes")

#: Seconds between two pings of the store, and the longest one may take.
PING_EVERY = 2.0
PING_TIMEOUT = 2.0
#: Not ready when no ping succeeded for this long (three pings missed).
STALE = 3 * PING_EVERY
#: The id the pings read: no task has it (a read by primary key, cheap on every store).
_NO_TASK = UUID(int=0)
_HEAD_LIMIT = 8192  # bytes of request line and headers; a probe sends a few hundred
_READ_TIMEOUT = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {503: "Service Unavailable"}


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (``port`` 0: a free one); OSError when it cannot be."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class ProbeServer:
    """Serves one worker's metrics and probes on a bound socket until closed."""

    def __init__(
        self,
        worker: Worker,
        metrics: WorkerMetrics,
        sock: socket.socket,
        *,
        ping_every: float = PING_EVERY,
        stale: float | None = None,
    ) -> None:
        self.worker = worker
        self.metrics = metrics
        self.sock = sock
        self.ping_every = ping_every
        self.stale = 3 * ping_every if stale is None else stale
        self._last_ok: float | None = None  # time.monotonic() of the last good ping
        self._draining = False
        self._server: asyncio.Server | None = None
        self._pinger: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where it listens, as ``http://host:port``."""
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def drain(self) -> None:
        """The worker is stopping: not ready from now on."""
        self._draining = True

    def not_ready(self) -> str | None:
        """Why this worker should not count as ready now, or None when it is ready."""
        if self._draining:
            return "shutting down"
        if self._last_ok is None:
            return "starting: the task store has not answered yet"
        if time.monotonic() - self._last_ok > self.stale:
            return "the task store is not reachable"
        return None

    async def start(self) -> None:
        """Begin serving and pinging the store."""
        self._server = await asyncio.start_server(self._handle, sock=self.sock)
        self._pinger = asyncio.create_task(self._ping_loop(), name="taskward-probe-ping")

    async def close(self) -> None:
        """Stop serving (connections in flight are let finish, briefly)."""
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _ping_loop(self) -> None:
        failures = 0
        while True:
            try:
                await asyncio.wait_for(self._ping(), PING_TIMEOUT)
            except Exception as exc:
                failures += 1
                if failures == 1:  # once per outage: the worker logs its own retries
                    logger.warning("readiness: the task store did not answer (%s)", exc)
            else:
                if failures:
                    logger.info("readiness: the task store answers again")
                failures = 0
                self._last_ok = time.monotonic()
            await asyncio.sleep(self.ping_every)

    async def _ping(self) -> None:
        store = await self.worker.app.connect()
        await store.get(_NO_TASK)

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return  # the client went away or never finished: nothing to answer
            except asyncio.LimitOverrunError:
                head = b""
            status, body, content_type, method = self._answer(head)
            headers = [
                f"HTTP/1.1 {status} {_REASONS[status]}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}",
                "Cache-Control: no-store",
                "Connection: close",
            ]
            if status == 405:
                headers.append("Allow: GET, HEAD")
            writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                writer.write(body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[int, bytes, str, str]:
        """Status, body, content type and method for one request head."""
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _json(400, {"status": "error", "reason": "not an HTTP/1.x request"}, "")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _json(405, {"status": "error", "reason": f"{method[:20]} is not allowed"}, "")
        path = urlsplit(target).path
        if path == "/metrics":
            from taskward.worker_metrics import CONTENT_TYPE

            return 200, self.metrics.render(), CONTENT_TYPE, method
        if path == "/health/live":
            return _json(200, {"status": "ok"}, method)
        if path == "/health/ready":
            reason = self.not_ready()
            if reason is None:
                return _json(200, {"status": "ok"}, method)
            return _json(503, {"status": "unavailable", "reason": reason}, method)
        known = "/metrics, /health/live, /health/ready"
        return _json(404, {"status": "error", "reason": f"not found; try {known}"}, method)


def _json(status: int, body: dict[str, str], method: str) -> tuple[int, bytes, str, str]:
    return status, json.dumps(body).encode(), "application/json", method
