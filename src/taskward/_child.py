"""The program a worker's child process runs (``python -m taskward._child``): it receives
runs over its stdin, calls the task function and sends back how each ended.

It is a fresh interpreter, not a fork of the worker: a fork of a process with threads and
an event loop may inherit a lock held by a thread that does not exist in the child, so the
pool starts children the way ``spawn`` does (see `taskward.children`).

Wire: both ways, frames of a 4-byte big-endian length and a JSON object. The protocol uses
the child's original stdout; fd 1 is pointed at stderr at start, so a task's ``print`` goes
to the worker's stderr and cannot corrupt a frame. A thread reads stdin: a ``run`` frame goes
to the main thread, a ``cancel`` frame makes `taskward.cancelled` true for the run, and the
end of stdin (the worker closed it, or died) ends the child at once.

SIGTERM from the worker stops the run: a plain function gets `Stopped` raised where it is
(so ``finally`` blocks run), an async one is cancelled; a SIGTERM between runs ends the
child. A child that got SIGTERM runs nothing more.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import queue
import runpy
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, BinaryIO

__all__ = ["HEADER", "Stopped", "decode", "encode", "main"]

#: A frame's length prefix (then that many bytes of JSON).
HEADER = struct.Struct(">I")


class Stopped(BaseException):
    """The worker stopped this run (cancel, timeout or graceful stop).

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in a task does
    not swallow it."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame: the length, then the JSON of ``message``."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """A frame's message; ValueError when it is not a JSON object."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a frame is not a JSON object")
    return message


def _read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    try:
        return decode(body)
    except ValueError:
        return None


class _Wire:
    """The child's side of the pipes: frames out (any thread), frames in (a reader thread)."""

    def __init__(self, out: BinaryIO, inp: BinaryIO) -> None:
        self._out = out
        self._inp = inp
        self._lock = threading.Lock()
        self.runs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.cancel = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        frame = encode(message)
        with self._lock:
            self._out.write(frame)
            self._out.flush()

    def read_forever(self) -> None:
        while True:
            message = _read_frame(self._inp)
            if message is None:
                os._exit(0)  # the worker closed our stdin or is gone: nothing left to do
            if message.get("op") == "cancel":
                self.cancel.set()
            else:
                self.runs.put(message)


class _Running:
    """What `taskward.context` sees of the run in this child."""

    def __init__(self, name: str, wire: _Wire) -> None:
        self.name = name
        self._wire = wire

    @property
    def cancel_requested(self) -> bool:
        return self._wire.cancel.is_set()

    def report(self, progress: Any) -> None:
        self._wire.send(
            {
                "op": "progress",
                "done": progress.done,
                "total": progress.total,
                "message": progress.message,
            }
        )


class _LogForwarder(logging.Handler):
    """Sends the child's log records to the worker, which logs them with the task's id."""

    def __init__(self, wire: _Wire) -> None:
        super().__init__()
        self._wire = wire

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self._wire.send(
                {"op": "log", "level": record.levelno, "logger": record.name, "message": text}
            )
        except Exception:
            self.handleError(record)


class _State:
    in_sync_run = False
    stopped = False
    loop_task: asyncio.Task[Any] | None = None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _State.stopped = True
    if _State.in_sync_run:
        raise Stopped("stopped by the worker")
    if _State.loop_task is not None:
        _State.loop_task.get_loop().call_soon_threadsafe(_State.loop_task.cancel)
        return
    os._exit(0)  # between runs: nothing to finish


_functions: dict[tuple[str, str, str | None], Any] = {}
_mains: dict[str, dict[str, Any]] = {}


def _resolve(message: dict[str, Any]) -> Any:
    """The task function (a TaskFunction, or the plain function) named by a run frame."""
    module_name, qualname = message["module"], message["qualname"]
    main_path = message.get("main_path")
    if module_name == "__main__":
        # The worker runs a script: load it under another name, so its
        # ``if __name__ == "__main__"`` part (which starts the worker) does not run here.
        spec_name = message.get("main_spec")
        if spec_name:
            target: Any = importlib.import_module(spec_name)
        elif main_path:
            if main_path not in _mains:
                _mains[main_path] = runpy.run_path(main_path, run_name="__taskward_main__")
            target = _mains[main_path]
        else:
            raise ImportError("the worker's __main__ has neither a module name nor a file")
    else:
        target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = target[part] if isinstance(target, dict) else getattr(target, part)
    return target


def _arguments(target: Any) -> Any:
    """What validates arguments and writes results: the TaskFunction itself, or one built
    for a plain function registered without replacing its module attribute."""
    from taskward.arguments import TaskArguments

    if isinstance(target, TaskArguments):
        return target

    class _Plain(TaskArguments):
        pass

    plain = _Plain()
    plain.name = getattr(target, "__qualname__", "task")
    plain._init_arguments(target)
    plain.fn = target  # type: ignore[attr-defined]
    return plain


def _run(wire: _Wire, message: dict[str, Any]) -> dict[str, Any]:
    from taskward.context import _current
    from taskward.models import read_json

    key = (message["module"], message["qualname"], message.get("main_path"))
    try:
        task = _functions.get(key)
        if task is None:
            task = _functions[key] = _arguments(_resolve(message))
    except BaseException as exc:
        where = f"{message['module']}.{message['qualname']}"
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return {"status": "fatal", "error": f"cannot import {where} in the child: {detail}"}
    try:
        kwargs = task.validate_json_args(read_json(message["args"]))
    except Exception as exc:
        return {"status": "fatal", "error": f"the arguments cannot be used: {exc}"}
    fn = task.fn
    token = _current.set(_Running(message["id"], wire))
    try:
        if asyncio.iscoroutinefunction(fn):
            result = asyncio.run(_run_async(fn, kwargs))
        else:
            _State.in_sync_run = True
            try:
                result = fn(**kwargs)
            finally:
                _State.in_sync_run = False
    except (Stopped, asyncio.CancelledError, KeyboardInterrupt):
        return {"status": "stopped"}
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {
            "status": "failed",
            "error": text,
            "traceback": "".join(traceback.format_exception(exc)),
        }
    finally:
        _current.reset(token)
    if wire.cancel.is_set():
        return {"status": "stopped"}  # returned after a cancel: still a cancel
    try:
        return {"status": "completed", "result": task.dump_result(result)}
    except (ValueError, TypeError) as exc:
        return {"status": "fatal", "error": f"the result cannot be stored as JSON: {exc}"}


async def _run_async(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    _State.loop_task = asyncio.current_task()
    try:
        return await fn(**kwargs)
    finally:
        _State.loop_task = None


def _rss() -> int:
    """This process's resident memory in bytes (peak where the current is not known)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)


def main() -> None:
    """Serve runs until stdin ends or a SIGTERM."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a task's print goes to the worker's stderr, not into the wire
    # Ctrl-C in a terminal reaches the whole process group: the worker decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    wire = _Wire(out, sys.stdin.buffer)
    init = _read_frame(sys.stdin.buffer)
    if init is None:
        return
    for entry in reversed(init.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    root = logging.getLogger()
    root.handlers[:] = [_LogForwarder(wire)]
    root.setLevel(init.get("log_level", logging.INFO))
    threading.Thread(target=wire.read_forever, name="taskward-child-wire", daemon=True).start()
    wire.send({"op": "ready", "pid": os.getpid()})
    while True:
        message = wire.runs.get()
        wire.cancel.clear()
        try:
            ended = _run(wire, message)
        except Stopped:  # the SIGTERM came just outside the task function
            ended = {"status": "stopped"}
        ended.update(op="done", rss=_rss())
        wire.send(ended)
        if _State.stopped:
            # Not a plain return: the wire's reader thread is blocked in a read of stdin,
            # which the interpreter's shutdown would wait on.
            os._exit(0)


if __name__ == "__main__":
    main()
