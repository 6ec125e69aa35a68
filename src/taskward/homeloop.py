"""Where an App's coroutines run: on the event loop that opened its store (its home loop).

A store's connections belong to one event loop. `on_home_loop` makes an App coroutine
method called from another loop run on the home loop when that loop is running in another
thread (the sync facade's case), and `replace_store` opens a fresh store after closing one
whose loop is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from taskward.stores.base import Store

__all__ = ["on_home_loop", "replace_store"]

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
