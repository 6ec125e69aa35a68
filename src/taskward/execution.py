"""One run of a task function in the worker: its arguments read back from the store and
validated, the function called (an async one on the event loop, a plain one in a thread),
and the way it ended turned into a `RunOutcome` for the worker to write.

`call` never raises for anything the task did: a bad row, an unknown task, a timeout, an
exception or a result that cannot be stored are all outcomes; only a cancellation that is
not the worker's own goes through. Error texts are made storable and secret values masked
here, before anything is written or logged.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskward.children import ChildDiedError
from taskward.errors import TaskwardError, UnknownTaskError
from taskward.models import Progress, Status, read_json
from taskward.redact import mask, secret_values
from taskward.stores.base import TaskRecord

if TYPE_CHECKING:
    from taskward.app import App
    from taskward.children import ProcessPool
    from taskward.tasks import TaskFunction

__all__ = ["Run", "RunOutcome", "call"]


class Run:
    """A claimed task this worker is running."""

    __slots__ = ("cancel", "done", "lease_until", "progress", "record", "writing")

    def __init__(self, record: TaskRecord, lease_until: float) -> None:
        self.record = record
        self.cancel: str | None = None  # why we cancel it: "cancel", "lost", "stop"
        self.progress: Progress | None = None  # as last written to the store
        self.writing = False  # the function has returned; its outcome is being written
        self.done = asyncio.Event()
        # On time.monotonic(): when the lease surely still held runs out. Counted from when
        # the claim or the last renewal was *sent*, so never later than the store's expiry.
        self.lease_until = lease_until


async def call(app: App, run: Run, children: ProcessPool | None = None) -> RunOutcome:
    """Run the task function; return what happened, never raise (but a stop).

    ``children``: the worker's pool, for functions with ``executor="process"``."""
    record = run.record
    try:
        fn = app.get_task(record.task)
    except UnknownTaskError:
        return RunOutcome.fatal(
            f"unknown task {record.task!r}: no task function of that name is registered "
            "in this worker's app"
        )
    args: Any = None
    try:
        args = read_json(record.args)
        if not isinstance(args, dict):
            raise TypeError(f"arguments must be a JSON object, not {type(args).__name__}")
        kwargs = fn.validate_json_args(args)
    except Exception as exc:  # any row at all: RecursionError for a too deeply nested one
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, RecursionError):
            reason = "nested too deeply to be decoded"
        elif isinstance(args, dict):  # a validation error may quote a secret's value
            reason = mask(reason, secret_values(args, fn.secrets))
        return RunOutcome.fatal(f"the stored arguments cannot be used: {reason}")
    ended: dict[str, Any] | None = None
    try:
        if fn.in_child:  # the pool applies the timeout, once a child has the run
            if children is None:
                return RunOutcome.fatal(f"task {fn.name!r} runs in a child process: no pool")
            ended = await children.run(fn, record)
        elif record.timeout is None:  # most tasks: no timeout context to set up
            result = await _invoke(fn, kwargs)
        else:
            async with asyncio.timeout(record.timeout):
                result = await _invoke(fn, kwargs)
    except asyncio.CancelledError:
        if run.cancel is None:
            raise  # not ours: let it stop the worker
        return RunOutcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
    except TimeoutError as exc:
        if run.cancel is not None:
            return RunOutcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
        secrets = secret_values(args, fn.secrets)
        return RunOutcome.failure(exc, f"timed out after {record.timeout}s", secrets)
    except ChildDiedError as exc:
        if run.cancel is not None:
            return RunOutcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
        return RunOutcome(Status.FAILED, error=_storable(str(exc)), retry=True)
    except Exception as exc:
        if run.cancel is not None:
            return RunOutcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
        # The error and traceback are stored and logged: the secrets' values go.
        return RunOutcome.failure(exc, secrets=secret_values(args, fn.secrets))
    if run.cancel is not None:
        # It swallowed our cancellation and returned: a cancel asked for stays a cancel
        # (as in TaskManager), rather than turning into Completed.
        return RunOutcome(Status.CANCELLED, error=f"cancelled ({run.cancel})")
    if ended is not None:
        return _child_outcome(ended, secret_values(args, fn.secrets))
    try:
        return RunOutcome(Status.COMPLETED, result=fn.dump_result(result))
    except (ValueError, TypeError, TaskwardError) as exc:
        message = f"the result cannot be stored as JSON: {exc}"
        return RunOutcome.fatal(mask(message, secret_values(args, fn.secrets)))


def _child_outcome(ended: dict[str, Any], secrets: list[str]) -> RunOutcome:
    """The outcome of a child's ``done`` frame (see `taskward._child`), checked like any
    input: a frame of another shape is a failure of the run, not of the worker."""
    status, result = ended.get("status"), ended.get("result")
    error, tb = ended.get("error"), ended.get("traceback")
    if status == "completed" and (result is None or isinstance(result, str)):
        return RunOutcome(Status.COMPLETED, result=result)
    if status == "failed" and isinstance(error, str):
        text, tb = mask(error, secrets), mask(tb, secrets) if isinstance(tb, str) else None
        tb = None if tb is None else _storable(tb)
        return RunOutcome(Status.FAILED, error=_storable(text), traceback=tb, retry=True)
    if status == "fatal" and isinstance(error, str):
        return RunOutcome.fatal(mask(error, secrets))
    if status == "stopped":  # a SIGTERM that was not the worker's
        return RunOutcome(
            Status.FAILED, error="the task's process was stopped from outside", retry=True
        )
    return RunOutcome(Status.FAILED, error=f"the task's process answered {ended!r}", retry=True)


def _invoke(fn: TaskFunction[Any, Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
    """The task function's call: a coroutine, or a thread for a plain function."""
    if fn.is_async:
        return fn.fn(**kwargs)  # type: ignore[no-any-return]
    return asyncio.to_thread(fn.fn, **kwargs)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended, ready to be written."""

    status: Status
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    retry: bool = False

    @classmethod
    def failure(
        cls, exc: BaseException, message: str | None = None, secrets: list[str] | None = None
    ) -> RunOutcome:
        """A failed attempt that may be retried; ``secrets``' values masked in its texts."""
        text = message or (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        tb = "".join(traceback.format_exception(exc))
        if secrets:
            text, tb = mask(text, secrets), mask(tb, secrets)
        return cls(Status.FAILED, error=_storable(text), traceback=_storable(tb), retry=True)

    @classmethod
    def fatal(cls, message: str) -> RunOutcome:
        """A failure no retry can mend (bad row, unknown task, unstorable result)."""
        return cls(Status.FAILED, error=_storable(message), retry=False)


def _storable(text: str) -> str:
    """Text every store can hold: a NUL written as the four characters ``\\x00``, and lone
    surrogates escaped (an error message may quote any bytes a task met)."""
    text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
