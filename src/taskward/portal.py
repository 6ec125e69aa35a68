"""A blocking way into an App's coroutines, for threads without a running event loop.

`App.portal` makes one; ``app.sync`` (`taskward.sync.SyncApp`) is built on one.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from taskward.errors import ClosedError

if TYPE_CHECKING:
    from taskward.app import App

__all__ = ["Portal"]

T = TypeVar("T")


class Portal:
    """A blocking way into an App's coroutines, for threads without a running event loop.

    Made by `App.portal`; ``app.sync`` is built on one. The coroutines run on one private
    daemon thread with its own event loop, started on first use and stopped by `close` (also
    at interpreter exit). With a database URL the portal drives a twin of the app on a store
    instance of its own (`App.with_store`, same URL: the database is shared anyway), so that
    no connection is used from two loops; with ``memory://`` or a `Store` instance it drives
    the app itself, whose methods then run on the app's home loop when that loop is running
    in another thread.
    """

    def __init__(
        self,
        app: App,
        *,
        target: Callable[[], App],
        release: Callable[[asyncio.AbstractEventLoop], None],
    ) -> None:
        self.app = app
        self._make_target = target  # the App the coroutines run on: ``app`` or its twin
        self._release = release  # ``app`` forgets a home loop that is shutting down
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._target: App | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` has begun; a closed portal refuses work."""
        return self._closed

    def _start(self) -> tuple[asyncio.AbstractEventLoop, App]:
        with self._lock:
            if self._closed:
                raise ClosedError("app.sync is closed")
            if self._loop is None or self._target is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="taskward-sync", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                self._target = self._make_target()
                atexit.register(self.close)
            return self._loop, self._target

    def call(self, make: Callable[[App], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(app)`` to its end, blocking this thread, and return its result.

        ``app`` is the App to drive (this portal's app, or its twin): write
        ``portal.call(lambda app: app.get(task_id))``. Refused (`RuntimeError`) inside a
        running event loop, which blocking would freeze.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "app.sync blocks, so it cannot be used inside a running event loop: "
                "await the App's coroutine methods instead"
            )
        loop, target = self._start()
        future = asyncio.run_coroutine_threadsafe(make(target), loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt while blocked: do not leave the coroutine running behind.
            future.cancel()
            raise

    def close(self) -> None:
        """Close the twin's store (if there is one) and stop the thread. Final."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, target = self._loop, self._thread, self._target
        atexit.unregister(self.close)
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("app.sync cannot be closed from its own thread")
        app = self.app

        async def shutdown() -> None:
            if target is not None and target is not app:
                await target.close()
            else:
                self._release(loop)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for other in others:
                other.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()
