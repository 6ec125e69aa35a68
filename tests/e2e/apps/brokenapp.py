"""An app whose module fails to import: a task function with a bad option (for the CLI tests)."""

from __future__ import annotations

from taskward.app import App

app = App()


@app.task(max_attempts=0)
async def never(n: int) -> None:
    """Never registered: max_attempts must be at least 1."""
