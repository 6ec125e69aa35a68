"""HTTP API throughput, beside the raw `App.submit` rate measured in the same run.

    python bench/api.py [--n 5000] [--concurrency 32] [--worker]      (prints one JSON line)

- http_submit: ``POST /api/tasks`` to a real ``taskward serve`` subprocess (uvicorn, on a
  fresh SQLite file, the demo app's ``echo`` task), from ``--concurrency`` requests in flight
  on as many keep-alive connections;
- http_get: ``GET /api/tasks/{id}`` of the tasks just submitted, the same way;
- app_submit: ``App.submit_many([one])`` (what the route does, without HTTP) from as many
  coroutines, on another fresh SQLite file: the baseline.

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams, so that on a small
machine its own cost stays small beside the server it measures. The server runs without a
worker unless ``--worker`` (then its worker competes for the same two cores).
Target: at least 1,000 submits/s through HTTP on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskward import demo

TARGET = 1000.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\n"
        if body or method == "POST":
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def drive(port: int, requests: list[tuple[str, str, bytes]], concurrency: int) -> Any:
    """Send every request over ``concurrency`` connections; (seconds, response bodies)."""
    conns = [await Connection.open(port) for _ in range(concurrency)]
    bodies: list[bytes] = [b""] * len(requests)
    next_index = 0

    async def lane(conn: Connection) -> None:
        nonlocal next_index
        while next_index < len(requests):
            i = next_index
            next_index += 1
            method, path, body = requests[i]
            status, bodies[i] = await conn.request(method, path, body)
            if status >= 300:
                raise RuntimeError(f"{method} {path} -> {status}: {bodies[i][:200]!r}")

    start = time.perf_counter()
    await asyncio.gather(*(lane(c) for c in conns))
    seconds = time.perf_counter() - start
    for c in conns:
        c.close()
    return seconds, bodies


@contextlib.contextmanager
def server(db: str, port: int, worker: bool) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "taskward", "serve", "--port", str(port)]
    if not worker:
        args.append("--no-worker")
    env = {**os.environ, "TASKWARD_DB": db}
    env.pop("TASKWARD_API_TOKEN", None)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def app_submit_rate(db: str, n: int, concurrency: int) -> float:
    app = demo.build(db)
    await app.open()
    try:
        await app.submit_many([app.prepare("echo", {"message": "warm-up"})])
        left = n

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await app.submit_many([app.prepare("echo", {"message": "hi"})])

        start = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)
    finally:
        await app.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--worker", action="store_true", help="run the server's worker too")
    opts = parser.parse_args()
    n, concurrency = opts.n, opts.concurrency

    with tempfile.TemporaryDirectory() as tmp:
        http_db = f"sqlite:///{Path(tmp) / 'http.db'}"
        port = free_port()
        body = json.dumps({"task": "echo", "args": {"message": "hi"}}).encode()
        with server(http_db, port, opts.worker):
            # Warm up: connections, imports, the SQLite file and page cache.
            await drive(port, [("POST", "/api/tasks", body)] * 200, concurrency)
            submit_s, bodies = await drive(port, [("POST", "/api/tasks", body)] * n, concurrency)
            ids = [json.loads(b)["task_id"] for b in bodies]
            gets = [("GET", f"/api/tasks/{i}", b"") for i in ids]
            get_s, _ = await drive(port, gets, concurrency)
        app_rate = await app_submit_rate(f"sqlite:///{Path(tmp) / 'app.db'}", n, concurrency)

    http_rate = n / submit_s
    print(
        json.dumps(
            {
                "bench": "api",
                "n": n,
                "concurrency": concurrency,
                "server_worker": opts.worker,
                "http_submit_per_s": round(http_rate, 1),
                "http_get_per_s": round(n / get_s, 1),
                "app_submit_per_s": round(app_rate, 1),
                "http_to_app_ratio": round(http_rate / app_rate, 3),
                "target_submit_per_s": TARGET,
                "meets_target": http_rate >= TARGET,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
