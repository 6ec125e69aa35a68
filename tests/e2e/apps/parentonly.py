"""The process tests' app (`procapp`) plus a module that imports in the worker but not in
its child processes, as a module that needs something only the worker's process has would:
its task must fail clearly, not hang. The worker runs ``parentonly:app``."""

from __future__ import annotations

import sys

from procapp import app

__all__ = ["app"]

_main_spec = getattr(sys.modules["__main__"], "__spec__", None)
if getattr(_main_spec, "name", None) == "taskward._child":
    raise ImportError("parentonly cannot be imported in a child process")


@app.task(executor="process", name="parentonly")
def only_in_the_worker() -> str:
    """Never runs: its child cannot import this module."""
    return "ran"
