"""The ``taskward`` command, run as a real subprocess against a SQLite file.

Each call is ``python -m taskward ...`` with TASKWARD_DB and TASKWARD_APP in its environment,
as a user's shell would have them; tasks are seeded in-process where the CLI is not the point.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from e2e_helpers import APPS, Cluster, new_task

from taskward.app import App
from taskward.models import Status
from waiting import eventually

pytestmark = [pytest.mark.slow]

APP = "cliapp:app"
NO_SUCH_ID = "00000000-0000-0000-0000-000000000000"
#: The fields of a task in ``--json`` output (the HTTP API's shape).
FIELDS = {
    "id",
    "name",
    "task",
    "args",
    "priority",
    "queue",
    "status",
    "error",
    "traceback",
    "result",
    "progress",
    "attempts",
    "max_attempts",
    "created_at",
    "run_at",
    "started_at",
    "finished_at",
}


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def fields(self) -> dict[str, str]:
        """The ``key  value`` lines that ``status``, ``cancel`` and ``retry`` print."""
        rows = {}
        for line in self.out.splitlines():
            if line.startswith("traceback:"):
                break
            key, value = re.split(r"\s{2,}", line, maxsplit=1)
            rows[key] = value
        return rows


@dataclass(frozen=True)
class Cli:
    db: str
    cwd: Path

    def environment(self, *, app: bool = True, db: bool = True, **env: str) -> dict[str, str]:
        """A user's shell: TASKWARD_DB (unless ``db`` is False) and TASKWARD_APP set."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}
        clean["PYTHONPATH"] = str(APPS)
        if db:
            clean["TASKWARD_DB"] = self.db
        if app:
            clean["TASKWARD_APP"] = APP
        clean.update(env)
        return clean

    def __call__(self, *args: str, app: bool = True, db: bool = True, **env: str) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "taskward", *args],
            env=self.environment(app=app, db=db, **env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def submit(self, task: str, **args: Any) -> str:
        result = self("submit", task, "--args", json.dumps(args))
        assert result.code == 0, result.err
        return result.out.strip()


@pytest.fixture
def cli(cluster: Cluster) -> Cli:
    return Cli(cluster.db, cluster.tmp)


async def status_of(app: App, task_id: str | UUID | None) -> Status | None:
    assert task_id is not None
    info = await app.get(task_id)
    return None if info is None else info.status


# ----------------------------------------------------------------- submit, status, list


def test_submit_prints_the_id_and_status_shows_it_pending(cli: Cli) -> None:
    submitted = cli("submit", "hold", "--args", '{"seconds": 5}')
    assert submitted.code == 0, submitted.err
    task_id = submitted.out.strip()
    assert str(UUID(task_id)) == task_id  # only the id, so `ID=$(taskward submit ...)` works

    shown = cli("status", task_id)
    assert shown.code == 0, shown.err
    rows = shown.fields()
    assert rows["id"] == task_id
    assert rows["task"] == "hold"
    assert rows["status"] == "Pending"
    assert json.loads(rows["args"]) == {"seconds": 5.0, "label": ""}  # defaults filled in
    assert rows["attempts"] == "0"
    assert "started_at" not in rows  # empty fields are left out

    data = cli("status", task_id, "--json").json()
    assert set(data) == FIELDS
    assert data["id"] == task_id
    assert (data["status"], data["attempts"], data["max_attempts"]) == ("Pending", 0, 3)
    assert data["started_at"] is None


def test_submit_json_shows_the_options_given(cli: Cli) -> None:
    options = ["--name", "nightly", "--priority", "-3", "--queue", "slow", "--max-attempts", "7"]
    args = ["--args", '{"seconds": 1, "label": "x"}', "--timeout", "9.5", "--delay", "60"]
    first = cli("submit", "hold", *args, *options, "--json")
    assert first.code == 0, first.err
    data = first.json()
    assert set(data) == FIELDS
    UUID(data["id"])
    assert data["args"] == {"seconds": 1.0, "label": "x"}
    assert (data["name"], data["priority"], data["queue"]) == ("nightly", -3, "slow")
    assert (data["status"], data["max_attempts"]) == ("Pending", 7)
    waited = datetime.fromisoformat(data["run_at"]) - datetime.fromisoformat(data["created_at"])
    assert waited.total_seconds() == pytest.approx(60, abs=1)

    # The name is a de-duplication key while the first task is active.
    second = cli("submit", "hold", *args, *options)
    assert second.code == 1
    assert "a task named 'nightly' is already Pending or Running" in second.err
    assert second.out == ""


async def test_list_as_table_and_json_with_status_filter_and_cursor(
    cli: Cli, store_app: App
) -> None:
    seeded = await store_app.submit_many(
        [new_task("hold", {"seconds": 1}, name=f"t{i}") for i in range(5)]
    )
    ids = [str(info.id) for info in seeded]
    newest_first = ids[::-1]
    await store_app.cancel(ids[1])

    everything = cli("list", "--json")
    assert everything.code == 0, everything.err
    page = everything.json()
    assert [item["id"] for item in page["items"]] == newest_first
    assert page["cursor"] is None
    assert all(set(item) == FIELDS for item in page["items"])

    pending = cli("list", "--json", "--status", "Pending").json()
    assert [item["id"] for item in pending["items"]] == [i for i in newest_first if i != ids[1]]
    cancelled = cli("list", "--json", "--status", "cancelled").json()  # any letter case
    assert [item["id"] for item in cancelled["items"]] == [ids[1]]

    # Paging: the table ends with the cursor of the next page; --json carries it as a field.
    table = cli("list", "--limit", "2")
    assert table.code == 0, table.err
    assert [i for i in newest_first if i in table.out] == newest_first[:2]
    assert "Cancelled" not in table.out
    assert "t4" in table.out
    assert "Pending" in table.out
    more = re.search(r"^more: --cursor (\S+)$", table.out, re.MULTILINE)
    assert more is not None
    second = cli("list", "--json", "--limit", "2", "--cursor", more.group(1)).json()
    assert [item["id"] for item in second["items"]] == newest_first[2:4]
    assert "Cancelled" in [item["status"] for item in second["items"]]
    last = cli("list", "--json", "--limit", "2", "--cursor", second["cursor"]).json()
    assert [item["id"] for item in last["items"]] == newest_first[4:]
    assert last["cursor"] is None


async def test_db_works_with_the_apps_task_functions_on_another_store(
    cli: Cli, store_app: App
) -> None:
    other = f"sqlite:///{cli.cwd / 'other.db'}"
    submitted = cli("--db", other, "submit", "hold", "--args", '{"seconds": 1}')
    assert submitted.code == 0, submitted.err
    task_id = submitted.out.strip()
    shown = cli("--db", other, "status", task_id)
    assert shown.code == 0, shown.err
    assert (shown.fields()["task"], shown.fields()["status"]) == ("hold", "Pending")
    assert await store_app.get(task_id) is None  # not on the app's own store (TASKWARD_DB)


# ----------------------------------------------------------------- cancel, retry, prune


def test_cancel_a_pending_task_then_retry_it(cli: Cli) -> None:
    task_id = cli.submit("hold", seconds=5)

    cancelled = cli("cancel", task_id)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.fields()["status"] == "Cancelled"
    assert cli("status", task_id, "--json").json()["status"] == "Cancelled"

    again = cli("cancel", task_id)  # harmless, as over HTTP: the wish is met
    assert again.code == 0, again.err
    assert again.fields()["status"] == "Cancelled"
    assert f"task {task_id} was already cancelled" in again.err
    assert "Error" not in again.err

    retried = cli("retry", task_id, "--json")
    assert retried.code == 0, retried.err
    data = retried.json()
    assert (data["status"], data["attempts"], data["finished_at"]) == ("Pending", 0, None)

    refused = cli("retry", task_id)
    assert refused.code == 1
    assert "only a Failed or Cancelled task can be retried, not Pending" in refused.err


async def test_prune_deletes_finished_tasks_past_their_age(cli: Cli, store_app: App) -> None:
    kept, old = await store_app.submit_many(
        [new_task("hold", {"seconds": 1}), new_task("hold", {"seconds": 1})]
    )
    await store_app.cancel(old.id)  # type: ignore[arg-type]

    by_default = cli("prune")  # Cancelled tasks are kept for 7 days by default
    assert (by_default.code, by_default.out) == (0, "pruned 0 finished tasks\n")
    now = cli("prune", "--cancelled", "0", "--json")
    assert now.code == 0, now.err
    assert now.json() == {"pruned": 1}
    assert await store_app.get(old.id) is None  # type: ignore[arg-type]
    assert await status_of(store_app, kept.id) is Status.PENDING  # active tasks are never pruned


# ----------------------------------------------------------------- with a worker


async def test_wait_exit_codes_tell_how_the_task_ended(
    cli: Cli, cluster: Cluster, store_app: App
) -> None:
    counted, failed, held = (
        str(info.id)
        for info in await store_app.submit_many(
            [
                new_task("count", {"n": 5}),
                new_task("boom", {"message": "kaput"}, max_attempts=1),
                new_task("hold", {"seconds": 60}),
            ]
        )
    )
    cluster.start_worker(app=APP)

    done = cli("wait", counted)
    assert (done.code, done.out, done.err) == (0, '{"counted": 5}\n', "")  # no bar on a pipe
    data = cli("wait", counted, "--json").json()
    assert (data["status"], data["result"]) == ("Completed", {"counted": 5})
    assert data["progress"] == {"done": 5, "total": 5, "message": "step 5"}

    bad = cli("wait", failed)
    assert (bad.code, bad.out) == (1, "")
    assert "Failed: RuntimeError: kaput" in bad.err

    slow = cli("wait", held, "--timeout", "0.5")
    assert slow.code == 4
    assert f"timed out after 0.5 s: task {held} is still Running" in slow.err

    async def progress_stored() -> bool:
        info = await store_app.get(held)
        return info is not None and info.progress is not None

    await eventually(progress_stored, timeout=5)
    shown = cli("status", held)
    assert shown.fields()["progress"] == "1/3 holding"

    finished = cli("cancel", counted)
    assert finished.code == 1
    assert f"task {counted} had already ended (Completed); nothing to cancel" in finished.err
    assert await status_of(store_app, counted) is Status.COMPLETED

    assert cli("cancel", held).code == 0
    gone = cli("wait", held)
    assert gone.code == 3
    assert "Cancelled" in gone.err


async def test_cancel_stops_a_task_running_in_a_worker_process(
    cli: Cli, cluster: Cluster, store_app: App
) -> None:
    worker = cluster.start_worker(app=APP)
    task_id = cli.submit("hold", seconds=60)

    async def running() -> bool:
        return await status_of(store_app, task_id) is Status.RUNNING

    await eventually(running, timeout=15)
    asked = cli("cancel", task_id)
    returned = time.monotonic()
    assert asked.code == 0, asked.err
    assert asked.fields()["status"] == "Running"  # the worker has yet to stop it...
    assert "cancel requested" in asked.err  # ...and the user is told so

    async def cancelled() -> bool:
        return await status_of(store_app, task_id) is Status.CANCELLED

    await eventually(cancelled, timeout=10, interval=0.02)
    assert time.monotonic() - returned < 1.5

    # The worker goes on serving; the cancelled task is not retried.
    after = cli.submit("count", n=2)
    assert cli("wait", after, "--timeout", "15").code == 0
    info = await store_app.get(task_id)
    assert info is not None
    assert (info.status, info.attempts) == (Status.CANCELLED, 1)
    assert worker.proc.poll() is None
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


# ----------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("status", NO_SUCH_ID), 1, f"no task with id {NO_SUCH_ID}"),
        (("cancel", NO_SUCH_ID), 1, f"no task with id {NO_SUCH_ID}"),
        (("retry", NO_SUCH_ID), 1, f"no task with id {NO_SUCH_ID}"),
        (("wait", NO_SUCH_ID), 1, f"no task with id {NO_SUCH_ID}"),
        (("status", "not-an-id"), 2, "'not-an-id' is not a task id (a UUID)"),
        (("cancel", "42"), 2, "'42' is not a task id (a UUID)"),
        (("submit", "hold", "--args", "{seconds: 1}"), 2, "--args is not valid JSON"),
        (("submit", "hold", "--args", "[1]"), 2, "--args must be a JSON object"),
        (("submit", "nosuch"), 2, "unknown task 'nosuch'; known: boom, count, hold"),
        (
            ("submit", "hold", "--args", '{"seconds": "soon"}'),
            2,
            "invalid arguments for task 'hold': seconds: Input should be a valid number",
        ),
        (
            ("submit", "hold", "--args", '{"label": "x"}'),
            2,
            "invalid arguments for task 'hold': seconds: missing required argument",
        ),
        (("submit", "hold", "--args", '{"seconds": 1}', "--delay", "-1"), 2, "delay must be"),
        (("list", "--cursor", "garbage"), 2, "invalid cursor"),
        # --args is strict JSON: never NaN, Infinity, a repeated key, nor nesting past 64.
        (
            ("submit", "hold", "--args", '{"seconds": NaN}'),
            2,
            "--args is not valid JSON: seconds: NaN is not valid JSON",
        ),
        (
            ("submit", "hold", "--args", '{"seconds": 1, "label": -Infinity}'),
            2,
            "--args is not valid JSON: label: -Infinity is not valid JSON",
        ),
        (
            ("submit", "hold", "--args", '{"seconds": 1, "seconds": 2}'),
            2,
            "--args is not valid JSON: the key 'seconds' appears more than once",
        ),
        (
            ("submit", "hold", "--args", '{"seconds": 1, "label": ' + "[" * 64 + "]" * 64 + "}"),
            2,
            "--args is not valid JSON: nested deeper than 64 levels",
        ),
        (
            ("schedules", "add", "s", "hold", "--every", "60", "--args", '{"seconds": Infinity}'),
            2,
            "--args is not valid JSON: seconds: Infinity is not valid JSON",
        ),
        # Text no store can hold: argv bytes that are not UTF-8 reach Python as lone surrogates.
        (
            ("submit", "hold", "--args", '{"seconds": 1}', "--name", "job-\udcff"),
            2,
            "name must be Unicode text, without lone surrogates",
        ),
        (
            ("submit", "hold", "--args", '{"seconds": 1, "label": "\udcff"}'),
            2,
            "--args is not valid JSON: label: a string with a lone surrogate",
        ),
        (("list", "--queue", "q\udcff"), 2, "queue must be Unicode text"),
        # Cron: five fields, each checked.
        (
            ("schedules", "add", "s", "hold", "--cron", "0 0 3 * * *", "--args", '{"seconds": 1}'),
            2,
            "but it has 6 (seconds and years are not supported)",
        ),
        (
            ("schedules", "add", "s", "hold", "--cron", "*/0 * * * *", "--args", '{"seconds": 1}'),
            2,
            "minute field '*/0': a step must be at least 1",
        ),
    ],
)
def test_mistakes_get_a_message_and_an_exit_code(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    result = cli(*args)
    assert result.code == code, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


def test_a_nul_inside_args_is_kept(cli: Cli) -> None:
    task_id = cli.submit("hold", seconds=1, label="a\x00b")  # sent as the escape \u0000
    shown = cli("status", task_id, "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["args"] == {"seconds": 1, "label": "a\x00b"}


@pytest.mark.postgres
def test_text_postgres_cannot_hold_is_a_usage_error_not_a_store_failure(
    cluster: Cluster, pg_url: str
) -> None:
    cli = Cli(pg_url, cluster.tmp)
    for args, message in [
        (("list", "--name", "x\udcff"), "name must be Unicode text"),
        (("submit", "hold", "--args", '{"seconds": 1}', "--queue", "\udcff"), "queue must be"),
        (("schedules", "remove", "s\udcff"), "schedule name must be Unicode text"),
    ]:
        result = cli(*args)
        assert (result.code, result.out) == (2, ""), result.err
        assert message in result.err
        assert "PostgreSQL" not in result.err
    assert cli("list", "--json").json()["items"] == []


def test_submit_without_an_app_says_how_to_give_one(cli: Cli) -> None:
    result = cli("submit", "hold", "--args", '{"seconds": 1}', app=False)
    assert result.code == 2
    assert "give --app module:app or set TASKWARD_APP" in result.err


def test_worker_with_a_bad_lease_setting_exits_2(cli: Cli) -> None:
    result = cli("worker", TASKWARD_LEASE="soon")
    assert result.code == 2
    assert "TASKWARD_LEASE" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ("emails:0", "the limit of queue 'emails' must be an integer >= 1, not '0'"),
        ("emails:many", "the limit of queue 'emails' must be an integer >= 1, not 'many'"),
        ("emails,emails:2", "queue 'emails' is listed twice"),
    ],
)
def test_worker_with_a_bad_queue_limit_exits_2(cli: Cli, queues: str, message: str) -> None:
    result = cli("worker", "--queues", queues)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


async def test_a_worker_started_with_queue_limits_shows_them(cluster: Cluster, cli: Cli) -> None:
    worker = cluster.start_worker("--queues", "default:2,slow", app=APP)
    await eventually(lambda: "serving" in worker.output(), timeout=15)

    async def registered() -> Any:
        workers = cli("stats", "--json").json()["workers"]
        return workers[0] if workers else None

    shown = await eventually(registered, timeout=10)
    assert (shown["queues"], shown["queue_limits"]) == (["default", "slow"], {"default": 2})
    assert "default:2,slow" in cli("stats").out
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


@pytest.mark.parametrize(
    ("flags", "pruned"),
    [(["--keep-failed", "0"], True), (["--keep-failed", "0", "--no-prune"], False)],
)
async def test_worker_prunes_by_its_retention_flags(
    cluster: Cluster, store_app: App, flags: list[str], pruned: bool
) -> None:
    [old] = await store_app.submit_many([new_task("hold", {"seconds": 1})])
    await store_app.cancel(old.id)  # type: ignore[arg-type]  # finished: Cancelled
    worker = cluster.start_worker(*flags, app=APP)
    await eventually(lambda: "serving" in worker.output(), timeout=15)  # it has started
    if pruned:
        await eventually(lambda: _gone(store_app, old.id), timeout=10)
    else:
        # A task run to the end shows the worker is well past its first maintenance pass.
        [probe] = await store_app.submit_many([new_task("count", {"n": 1})])
        await store_app.wait(probe.id, timeout=15)  # type: ignore[arg-type]
        assert await store_app.get(old.id) is not None  # type: ignore[arg-type]
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


async def _gone(app: App, task_id: UUID | None) -> bool:
    assert task_id is not None
    return await app.get(task_id) is None


def test_submit_without_a_task_uses_the_apps_default_task(cli: Cli) -> None:
    demo = {"app": False, "TASKWARD_APP": "taskward.demo:app"}
    result = cli("submit", "--args", '{"seconds": 0.1}', "--json", **demo)  # type: ignore[arg-type]
    assert result.code == 0, result.err
    assert (result.json()["task"], result.json()["args"]["seconds"]) == ("work", 0.1)
    no_default = cli("submit")  # cliapp declares no default task
    assert no_default.code == 2
    assert "no task given, and the app has no default task" in no_default.err


async def test_stats_counts_by_status_and_queue_and_lists_workers(cli: Cli, store_app: App) -> None:
    await store_app.submit_many(
        [new_task("hold", {"seconds": 1}), new_task("hold", {"seconds": 1}, queue="slow")]
    )
    store = await store_app.connect()
    await store.worker_beat("elsewhere:1:ab", '{"concurrency": 4, "running": 1}', ttl=30)
    result = cli("stats", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["by_status"]["Pending"] == 2
    assert data["by_queue"]["slow"]["Pending"] == 1
    assert [w["id"] for w in data["workers"]] == ["elsewhere:1:ab"]
    table = cli("stats")
    assert "slow" in table.out
    assert "1 worker(s) alive" in table.out


# ----------------------------------------------------------------- Ctrl-C


def _read_until(fd: int, text: bytes, timeout: float) -> bytes:
    """What a terminal shows until ``text`` appears (bounded), read from its master side."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{text!r} never showed; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"{text!r} never showed; got {seen!r}")
            seen += chunk
    return seen


def _read_rest(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_wait_interrupted_by_ctrl_c_exits_130_and_the_task_goes_on(cli: Cli) -> None:
    task_id = cli.submit("hold", seconds=5)  # no worker: it stays Pending
    # On a terminal, as a user's: its progress bar shows that the wait has begun.
    main, child = pty.openpty()
    env = cli.environment(TERM="xterm", COLUMNS="120")
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskward", "wait", task_id],
        env=env,
        cwd=cli.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
    )
    os.close(child)
    try:
        shown = _read_until(main, b"Pending", timeout=20)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=10) == 130
        shown += _read_rest(main)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(main)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        proc.stdout.close()
    text = shown.decode(errors="replace")
    assert f"Interrupted: stopped waiting; task {task_id} itself goes on." in text
    assert "Traceback" not in text
    assert "Aborted" not in text
    assert out == ""
    assert cli("status", task_id, "--json").json()["status"] == "Pending"


def test_ctrl_c_in_any_command_exits_130(cli: Cli) -> None:
    # The app module tells when its import has begun, then takes its time.
    env = cli.environment(app=False, TASKWARD_APP="slowapp:app")
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskward", "submit", "hold"],
        env=env,
        cwd=cli.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == "slowapp: importing\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert err == "Interrupted.\n"
    assert out == ""


# ----------------------------------------------------------------- a broken app module


def test_an_app_failing_with_a_taskward_error_gets_one_clear_line(cli: Cli) -> None:
    result = cli("submit", "never", app=False, TASKWARD_APP="brokenapp:app")
    assert result.code == 2
    assert result.out == ""
    [line] = result.err.splitlines()  # one line, not a traceback through taskward
    assert line.startswith("Error: cannot load the app 'brokenapp:app': ")
    assert "brokenapp.py:10: " in line  # where, in the user's own file
    assert "task 'never': max_attempts must be an integer >= 1, got 0" in line


def test_list_and_status_work_while_the_app_module_is_broken(cli: Cli) -> None:
    task_id = cli.submit("hold", seconds=1)
    broken = {"app": False, "TASKWARD_APP": "brokenapp:app"}
    # Commands that need no task function read the store named, with one line of warning
    # (the app is loaded only to know which arguments are secret).
    listed = cli("list", "--json", **broken)  # type: ignore[arg-type]
    assert listed.code == 0, listed.err
    assert [i["id"] for i in listed.json()["items"]] == [task_id]
    [warning] = listed.err.splitlines()
    assert warning.startswith("Warning: cannot load the app 'brokenapp:app': ")
    assert "without it (arguments are hidden by name only)" in warning
    shown = cli("status", task_id, **broken)  # type: ignore[arg-type]
    assert (shown.code, shown.fields()["status"]) == (0, "Pending")
    assert len(shown.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("module", "why"),
    [
        ("brokenapp", "brokenapp.py:10: task 'never': max_attempts must be"),
        ("typoapp", "typoapp.py:9: NameError: name 'Ap' is not defined"),
    ],
)
async def test_without_a_store_named_a_broken_app_falls_back_to_the_default_store(
    cli: Cli, module: str, why: str
) -> None:
    (cli.cwd / "typoapp.py").write_text(
        '"""An app module with a typo."""\n\nfrom __future__ import annotations\n\n'
        "from taskward.app import App  # noqa: F401\n\n\n# the typo:\napp = Ap()\n"
    )
    # The default store: sqlite:///taskward.db in the working directory.
    async with App(f"sqlite:///{cli.cwd / 'taskward.db'}") as default:
        [info] = await default.submit_many([new_task("hold", {"seconds": 1})])
    spec = f"{module}:app"
    result = cli("status", str(info.id), "--json", db=False, app=False, TASKWARD_APP=spec)
    assert result.code == 0, result.err
    assert result.json()["id"] == str(info.id)
    [warning] = result.err.splitlines()
    assert warning.startswith(f"Warning: cannot load the app {spec!r}: ")
    assert why in warning
    assert "reading the store sqlite:///taskward.db without it" in warning


# ----------------------------------------------------------------- misplaced options


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (
            ("submit", "--app", APP, "hold"),
            "--app is an option of taskward itself, not of 'submit': put it before the"
            " command, as in `taskward --app module:app submit ...`, or set TASKWARD_APP",
        ),
        (
            ("list", "--db", "sqlite:///other.db"),
            "as in `taskward --db URL list ...`, or set TASKWARD_DB",
        ),
        (
            ("schedules", "add", "--app", APP, "s", "hold", "--every", "60"),
            "as in `taskward --app module:app schedules add ...`",
        ),
        (("worker", "--app", APP), "`taskward worker module:app` also takes the app"),
        (("status", NO_SUCH_ID, "-v"), "-v is an option of taskward itself, not of 'status'"),
    ],
)
def test_a_group_option_after_the_command_says_where_it_goes(
    cli: Cli, args: tuple[str, ...], hint: str
) -> None:
    result = cli(*args)
    assert result.code == 2
    assert hint in result.err
    assert "No such option" not in result.err
