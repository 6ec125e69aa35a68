"""A TCP proxy of the tests' own, to cut a worker off from its database without closing
anything: a network partition that leaves the TCP sessions open.

`PausableProxy` forwards connections on a loopback port to a target, on an event loop in a
thread of its own (so a test that blocks, waiting for a process, does not stall it).
`pause` stops moving bytes in both directions: connections stay open, new ones are accepted
and left waiting, and what either side sends waits in the proxy and the kernel's buffers.
`resume` delivers it all and goes on forwarding, as a healed partition would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class PausableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` until closed."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> int:
        """Listen on a free loopback port; return it."""
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def pause(self) -> None:
        """Stop forwarding; every connection stays open."""
        self._loop.call_soon_threadsafe(self._forwarding.clear)

    def resume(self) -> None:
        """Forward again, what waited first."""
        self._loop.call_soon_threadsafe(self._forwarding.set)

    def close(self) -> None:
        """Stop listening, drop every connection and end the thread."""
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _shutdown(self) -> None:
        self._forwarding.set()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # ends both pipes of each connection
        await asyncio.sleep(0.1)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._forwarding.wait()  # a connection made during a partition hangs
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                up_writer.close()
                self._writers.discard(up_writer)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                await self._forwarding.wait()
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            sink.write_eof()
