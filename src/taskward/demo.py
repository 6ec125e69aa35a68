"""The demo app that ``taskward serve`` runs when given no app: something to try with curl.

- ``work`` (the default task, so a body may leave out ``task``): about two seconds of
  pretend work in ten steps, reporting progress; ``{"args": {"seconds": 30}}`` makes it long
  enough to cancel.
- ``fail``: fails at once, for good (to see a Failed task and retry it).
- ``echo``: returns its arguments.

Run workers for it elsewhere with ``taskward worker taskward.demo:app``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

import taskward
from taskward.app import App

__all__ = ["app", "build"]


def build(store: str | None = None) -> App:
    """A fresh demo App on ``store`` (None: ``TASKWARD_DB``, else ``sqlite:///taskward.db``)."""
    demo = App(store)

    @demo.task(name="work", default=True)
    async def work(
        seconds: Annotated[float, Field(ge=0, le=3600)] = 2.0,
        steps: Annotated[int, Field(ge=1, le=1000)] = 10,
    ) -> dict[str, Any]:
        """Pretend to work for ``seconds``, in ``steps`` steps, reporting progress."""
        for step in range(steps):
            taskward.progress(step, steps, f"step {step + 1} of {steps}")
            await asyncio.sleep(seconds / steps)
        taskward.progress(steps, steps, "done")
        return {"steps": steps, "seconds": seconds}

    @demo.task(name="fail", max_attempts=1)
    async def fail(message: str = "this task always fails") -> None:
        """Fail at once with ``message`` (no retries)."""
        raise RuntimeError(message)

    @demo.task(name="echo")
    async def echo(message: str = "hello", data: Any = None) -> dict[str, Any]:
        """Return the arguments it was given."""
        return {"message": message, "data": data}

    return demo


#: The demo App on the default store, for ``taskward worker taskward.demo:app``.
app = build()
