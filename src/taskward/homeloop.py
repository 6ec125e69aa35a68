"""Where an App's coroutines run: on the event loop that opened its store (its home loop).

A store's connections belong to one event loop. `HomeLoop._ready` opens the app's store on
the running loop, which becomes its home, and opens a fresh one when the home loop is gone;
`on_home_loop` makes an App coroutine method called from another loop run on the home loop
when that loop is running in another thread (the sync facade's case); `replace_store` opens
a fresh store after closing one whose loop is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from taskward.errors import ClosedError
from taskward.stores import open_store
from taskward.stores.base import Store

__all__ = ["HomeLoop", "on_home_loop", "replace_store"]

P = ParamSpec("P")
T = TypeVar("T")


class _HasHome(Protocol):
    _home: asyncio.AbstractEventLoop | None


H = TypeVar("H", bound=_HasHome)


def on_home_loop(
    method: Callable[Concatenate[H, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[H, P], Coroutine[Any, Any, T]]:
    """Run an App coroutine method on the app's home loop when that loop runs elsewhere."""

    async def run(self: H, /, *args: P.args, **kwargs: P.kwargs) -> T:
        home = self._home
        if home is not None and home is not asyncio.get_running_loop() and home.is_running():
            future = asyncio.run_coroutine_threadsafe(method(self, *args, **kwargs), home)
            return await asyncio.wrap_future(future)
        return await method(self, *args, **kwargs)

    functools.update_wrapper(run, method)
    return run


async def replace_store(stale: Store | None, store: Store) -> None:
    """Open ``store``, after closing ``stale`` as well as a dead loop's store can be closed."""
    if stale is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stale.close(), 1.0)
    await store.open()


class HomeLoop:
    """The store and home loop of `App` (which provides the attributes below)."""

    url: str
    _store: Store | None
    _owns_store: bool
    _home: asyncio.AbstractEventLoop | None
    _opening: asyncio.Task[None] | None
    _closed: bool

    def _new_store(self) -> Store:
        return open_store(self.url)

    @property
    def _is_memory(self) -> bool:
        return self.url.lower().startswith("memory:")

    def _ready_here(self) -> Store | None:
        """The store when it is open on the running loop already (nothing to wait for)."""
        store = self._store
        if (
            store is None
            or self._closed
            or self._opening is not None
            or self._home is not asyncio.get_running_loop()
        ):
            return None
        return store

    async def _ready(self) -> Store:
        """The store, opened on the running loop (which becomes the home loop)."""
        if self._closed:
            raise ClosedError("this App is closed")
        loop = asyncio.get_running_loop()
        if self._home is not loop or self._store is None:
            stale = None
            if self._store is None:
                self._store = self._new_store()
            elif self._home is not None and self._owns_store and not self._is_memory:
                # The old store's connections belong to a loop that is gone: start afresh.
                stale, self._store = self._store, self._new_store()
            self._home = loop
            self._opening = loop.create_task(replace_store(stale, self._store))
        store = self._store
        opening = self._opening
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except BaseException:
                if opening.done() and self._opening is opening:
                    # Let the next call try again rather than re-raise this failure forever.
                    self._opening = None
                    self._home = None
                raise
            if self._opening is opening:
                self._opening = None
        return store

    def _unbind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget ``loop`` as home (it is shutting down); the next call binds anew."""
        if self._home is loop:
            self._home = None
            self._opening = None
