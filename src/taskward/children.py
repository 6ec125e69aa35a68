"""The worker's pool of child processes, for task functions with ``executor="process"``.

Why children: CPU-bound functions run in parallel instead of sharing one core under the GIL;
a run that must stop (its timeout, a cancel, the end of a graceful stop's grace) can be
stopped for real by stopping its process; and a function that crashes its interpreter
(``os._exit``, a segfault in a C extension, the OOM killer) takes down only its child.

How (the child's side is `taskward._child`):

- A child is a fresh interpreter (``python -m taskward._child``), as multiprocessing's
  ``spawn`` makes them, never a fork of the worker, whose threads and event loop a fork
  would copy in an unknown state. Children start when a process task first needs one, up to
  ``size``, and are reused; each runs one task at a time.
- Arguments go to the child as the JSON text stored with the task, and the result comes back
  as JSON text: the child validates and serialises with the task function, as a thread would.
- Stopping a run: the child is told (`taskward.cancelled` turns true) and gets `COOPERATE`
  seconds to return; then SIGTERM raises `taskward._child.Stopped` in a plain function (or
  cancels an async one) and it gets `TERM_GRACE` seconds more; then SIGKILL. A child that
  had to be signalled is not reused: a fresh one replaces it when next needed.
- A child that dies during a run fails that attempt with `ChildDiedError`, whose message says
  how ("the task's process died: killed by signal 11 (SIGSEGV)"); the worker goes on.
- ``max_tasks_per_child`` and ``max_memory_per_child`` retire a child between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

from taskward import context
from taskward._child import HEADER, decode, encode

if TYPE_CHECKING:
    from taskward.stores.base import TaskRecord
    from taskward.tasks import TaskFunction

__all__ = ["COOPERATE", "TERM_GRACE", "ChildDiedError", "ProcessPool"]

logger = logging.getLogger("taskward.children")

#: Seconds a child's run has to return once told to stop, before SIGTERM.
COOPERATE = 0.2
#: Seconds after SIGTERM before SIGKILL. Together with COOPERATE well under the second
#: the worker gives any run to honour a cancel (`taskward.worker.CANCEL_GRACE`).
TERM_GRACE = 0.4
#: Seconds a new child has to start its interpreter and say it is ready.
START_TIMEOUT = 60.0


class ChildDiedError(Exception):
    """The task's process died."""


class _Child:
    """One child process, with a task that reads its frames into ``inbox``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.runs = 0
        self.signalled = False
        # Frames from the child; None once its stdout ended (it exited or is exiting).
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._pump(), name=f"taskward-child-{proc.pid}")

    async def _pump(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
                self.inbox.put_nowait(decode(await stdout.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self.inbox.put_nowait(None)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self._reader.done()

    async def send(self, message: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(encode(message))
        await stdin.drain()

    def signal(self, signum: int) -> None:
        self.signalled = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    async def end(self, wait: float) -> None:
        """Close its stdin (it exits), wait up to ``wait`` seconds, then kill it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), wait)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()
        await self._reader

    async def death(self) -> str:
        """How it died, once its stdout ended."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:  # stdout closed but still running: finish it
            self.signal(signal.SIGKILL)
            code = await self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "unknown signal"
            return f"killed by signal {-code} ({name})"
        return f"exited with code {code}"


class ProcessPool:
    """Up to ``size`` child processes; `run` runs one task in one of them."""

    def __init__(
        self,
        size: int,
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: float | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"processes must be >= 1, not {size}")
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be >= 1, not {max_tasks_per_child}")
        if max_memory_per_child is not None and not max_memory_per_child > 0:
            raise ValueError(f"max_memory_per_child must be > 0 MB, not {max_memory_per_child}")
        self.size = size
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child  # MB
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._starting = 0
        self._changed = asyncio.Condition()
        self._ending: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the children alive now."""
        return sorted(child.pid for child in self._children if child.alive)

    async def run(self, fn: TaskFunction[Any, Any], record: TaskRecord) -> dict[str, Any]:
        """Run ``record`` in a child; return the child's ``done`` frame.

        ``record.timeout`` counts from when a child took the run, not while it waited for
        one. Raises `ChildDiedError`, or the cancellation or TimeoutError that stopped the run
        (after stopping the child's run).
        """
        child = await self._acquire()
        keep = False
        rss = 0
        try:
            await child.send(_run_frame(fn, record))
            async with asyncio.timeout(record.timeout):
                ended = await self._until_done(child, None)
            if ended is None:
                raise ChildDiedError(f"the task's process died: {await child.death()}")
            keep = True
            rss = ended["rss"] if isinstance(ended.get("rss"), int) else 0
            return ended
        except (asyncio.CancelledError, TimeoutError):
            keep = await asyncio.shield(self._interrupt(child))
            raise
        finally:
            self._release(child, keep, rss)

    async def _until_done(self, child: _Child, timeout: float | None) -> dict[str, Any] | None:
        """Relay the child's progress and logs until its ``done`` frame (None: it died, or
        ``timeout`` passed)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if deadline is None:
                message = await child.inbox.get()
            else:
                try:
                    message = await asyncio.wait_for(
                        child.inbox.get(), max(deadline - loop.time(), 0)
                    )
                except TimeoutError:
                    return None
            if message is None:
                return None
            op = message.get("op")
            if op == "done":
                return message
            if op == "progress":
                with contextlib.suppress(ValueError, TypeError):
                    context.progress(message["done"], message.get("total"), message.get("message"))
            elif op == "log":
                _relay_log(message, child)

    async def _interrupt(self, child: _Child) -> bool:
        """Stop the child's run; whether the child can run again."""
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            await child.send({"op": "cancel"})
        if await self._until_done(child, COOPERATE) is not None:
            return True  # it returned when told: reusable
        child.signal(signal.SIGTERM)
        if await self._until_done(child, TERM_GRACE) is None and child.alive:
            child.signal(signal.SIGKILL)
        await child.end(1.0)
        return False

    async def _acquire(self) -> _Child:
        async with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the worker's process pool is closed")
                while self._idle:
                    child = self._idle.pop()
                    if child.alive:
                        return child
                    self._forget(child)
                if len(self._children) + self._starting < self.size:
                    break
                await self._changed.wait()
            self._starting += 1
        try:
            return await self._new_child()
        except BaseException:
            self._notify()  # its place is free again: a waiter may start one
            raise

    async def _new_child(self) -> _Child:
        """Start a child for a place already counted in ``_starting``."""
        try:
            child = await self._start()
        finally:
            self._starting -= 1
        if self._closed:
            await child.end(0)
            raise RuntimeError("the worker's process pool is closed")
        self._children.add(child)
        return child

    async def warm(self) -> None:
        """Start every child now, so the first runs do not wait for an interpreter to start
        (a worker whose app has process tasks calls it as it starts)."""

        async def one() -> None:
            async with self._changed:
                if self._closed or len(self._children) + self._starting >= self.size:
                    return
                self._starting += 1
            try:
                child = await self._new_child()
            except (ChildDiedError, RuntimeError, OSError) as exc:
                logger.warning("a child process did not start: %s", exc)
            else:
                self._idle.append(child)
            self._notify()

        await asyncio.gather(*(one() for _ in range(self.size)))

    async def _start(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskward._child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = _Child(proc)
        try:
            await child.send(
                {
                    "op": "init",
                    "sys_path": [entry for entry in sys.path if isinstance(entry, str)],
                    "log_level": logging.getLogger().getEffectiveLevel(),
                }
            )
            ready = await asyncio.wait_for(child.inbox.get(), START_TIMEOUT)
        except (TimeoutError, ConnectionError, OSError) as exc:
            await child.end(0)
            raise ChildDiedError(f"the task's process did not start: {exc!r}") from None
        except BaseException:
            await asyncio.shield(child.end(0))
            raise
        if ready is None or ready.get("op") != "ready":
            raise ChildDiedError(f"the task's process did not start: {await child.death()}")
        logger.debug("child process %d started", child.pid)
        return child

    def _release(self, child: _Child, keep: bool, rss: int) -> None:
        """Back to the idle list, or retired: signalled, dead, or past a recycling limit."""
        child.runs += 1
        limit = self.max_memory_per_child
        why = None
        if not keep or child.signalled or not child.alive:
            why = "stopped"
        elif self.max_tasks_per_child is not None and child.runs >= self.max_tasks_per_child:
            why = f"ran {child.runs} tasks (--max-tasks-per-child)"
        elif limit is not None and rss > limit * 1024 * 1024:
            why = f"uses {rss / 2**20:.0f} MB, above {limit:g} MB (--max-memory-per-child)"
        if why is None and not self._closed:
            self._idle.append(child)
        else:
            self._retire(child, why or "the pool closed")
        self._notify()

    def _retire(self, child: _Child, why: str) -> None:
        log = logger.info if why.startswith("uses") else logger.debug
        log("child process %d retired: %s", child.pid, why)
        self._forget(child)
        task = asyncio.create_task(child.end(2.0))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _forget(self, child: _Child) -> None:
        self._children.discard(child)
        with contextlib.suppress(ValueError):
            self._idle.remove(child)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.create_task(notify())
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        """End every child (idle ones get a second to exit, then are killed)."""
        self._closed = True
        for child in list(self._children):
            self._retire(child, "the worker stops")
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)


def _run_frame(fn: TaskFunction[Any, Any], record: TaskRecord) -> dict[str, Any]:
    target = fn.fn
    frame: dict[str, Any] = {
        "op": "run",
        "id": str(record.id),
        "module": target.__module__,
        "qualname": target.__qualname__,
        "args": record.args,
    }
    if target.__module__ == "__main__":  # a script: the child loads it without running it
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        frame["main_spec"] = getattr(spec, "name", None)
        frame["main_path"] = getattr(main, "__file__", None)
    return frame


def _relay_log(message: dict[str, Any], child: _Child) -> None:
    """Log a child's record in the worker, with the running task's id."""
    level = message.get("level")
    task_id = context.current_task()
    logging.getLogger(str(message.get("logger") or "taskward.child")).log(
        level if isinstance(level, int) else logging.INFO,
        "task %s (child %d): %s",
        task_id,
        child.pid,
        message.get("message"),
    )
