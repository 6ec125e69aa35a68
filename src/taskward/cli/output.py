"""How the CLI prints: one task as aligned fields, tables of tasks, counts and schedules
(rich, for people), or JSON (``--json``, for scripts). Secret arguments show as ``***``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from taskward.app import App
from taskward.models import Status, TaskInfo
from taskward.scheduler import ScheduleInfo
from taskward.stores.base import Counts

if TYPE_CHECKING:
    from rich.console import Console


def _task_json(app: App, info: TaskInfo) -> dict[str, Any]:
    """A task as the CLI prints it: secret arguments as "***" (by type with the app's task
    functions, by name always)."""
    return info.to_json(app.secrets(info.task))


def _show(app: App, info: TaskInfo, as_json: bool) -> None:
    """One task: a field a line (none empty), its traceback last."""
    if as_json:
        click.echo(json.dumps(_task_json(app, info)))
        return
    data = _task_json(app, info)
    progress = info.progress
    data["progress"] = (
        None
        if progress is None
        else f"{progress.done:g}"
        + (f"/{progress.total:g}" if progress.total is not None else "")
        + (f" {progress.message}" if progress.message else "")
    )
    data["args"] = json.dumps(data["args"]) if data["args"] is not None else None
    data["result"] = json.dumps(data["result"]) if info.result is not None else None
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value is None or key == "traceback":
            continue
        click.echo(f"{key:<{width}}  {value}")
    if info.traceback:
        click.echo("traceback:\n" + info.traceback.rstrip())


def _console() -> Console:
    """Where tables go: stdout, as wide as a terminal's, or 200 columns on a pipe."""
    from rich.console import Console  # rich only when a table is drawn: a quicker start

    # Piped output keeps whole ids and names instead of folding them to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


def _show_page(app: App, items: list[TaskInfo], cursor: str | None, as_json: bool) -> None:
    """A page of ``taskward list``, and the option that shows the next one."""
    if as_json:
        click.echo(json.dumps({"items": [_task_json(app, i) for i in items], "cursor": cursor}))
        return
    from rich.table import Table

    table = Table("id", "name", "task", "queue", "prio", "status", "attempts", "created")
    for i in items:
        table.add_row(
            str(i.id),
            i.name or "",
            i.task or "",
            i.queue or "",
            str(i.priority),
            i.status.value,
            f"{i.attempts}/{i.max_attempts}",
            i.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    _console().print(table)
    if cursor:
        click.echo(f"more: --cursor {cursor}")


def _show_stats(counts: Counts, workers: list[dict[str, Any]], as_json: bool) -> None:
    """``taskward stats``: counts by status and queue, and the workers alive."""
    by_status = {s.value: n for s, n in counts.by_status().items()}
    by_queue = {
        queue: {s.value: per.get(s, 0) for s in Status}
        for queue, per in sorted(counts.by_queue.items())
    }
    if as_json:
        alive = [
            {**w, "started_at": _iso(w["started_at"]), "last_seen": _iso(w["last_seen"])}
            for w in workers
        ]
        click.echo(json.dumps({"by_status": by_status, "by_queue": by_queue, "workers": alive}))
        return
    from rich.table import Table

    table = Table("queue", *(s.value for s in Status))
    for queue, per in by_queue.items():
        table.add_row(queue, *(str(per[s.value]) for s in Status))
    table.add_row("all", *(str(by_status[s.value]) for s in Status), style="bold")
    console = _console()
    console.print(table)
    console.print(f"{len(workers)} worker(s) alive")
    for w in workers:
        limits = w.get("queue_limits") or {}
        queues = (
            ",".join(f"{q}:{limits[q]}" if q in limits else q for q in w["queues"])
            if w["queues"]
            else "all queues"
        )
        console.print(
            f"  {w['id']}  {w['running']}/{w['concurrency']} slots busy  {queues}",
            highlight=False,
        )


def _iso(value: Any) -> str | None:
    """A datetime as ISO 8601 text for JSON (None stays None)."""
    return None if value is None else str(value.isoformat())


def _show_schedules(app: App, infos: list[ScheduleInfo], as_json: bool) -> None:
    """Schedules, with their ticks (UTC) and whether they are paused."""
    if as_json:
        click.echo(json.dumps([i.to_json(app.secrets(i.schedule.task)) for i in infos]))
        return
    from rich.table import Table

    table = Table("name", "when", "task", "args", "state", "last tick", "next tick")
    for i in infos:
        s = i.schedule
        table.add_row(
            s.name,
            s.describe() + (" catch-up" if s.catch_up else ""),
            s.task,
            json.dumps(i.to_json(app.secrets(s.task))["args"]),
            "paused" if i.paused else "active",
            i.last_tick.strftime("%Y-%m-%d %H:%M:%S") if i.last_tick else "",
            i.next_tick.strftime("%Y-%m-%d %H:%M:%S") if i.next_tick else "",
        )
    _console().print(table)
