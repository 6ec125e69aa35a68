"""Task functions run in child processes (``executor="process"``) by the process tests.

Each body appends ``start KEY PID`` / ``done KEY PID`` lines to the ledger ($LEDGER), so a
test knows which child ran it and can check that a stopped child is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from ledger import record

import taskward
from taskward.app import App

app = App()  # TASKWARD_DB chooses the store

_kept: list[bytes] = []  # what grow() holds on to, so the child's memory stays up


@app.task(executor="process", max_attempts=1)
def spin(key: str, seconds: float) -> int:
    """Burn CPU in pure Python for ``seconds``: nothing in it checks for a cancel."""
    record(f"start {key} {os.getpid()}")
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    record(f"done {key} {os.getpid()}")
    return os.getpid()


@app.task(executor="process")
def crash(key: str, how: str) -> None:
    """Take the child down: ``exit`` (os._exit(1)) or ``segv`` (SIGSEGV)."""
    record(f"start {key} {os.getpid()}")
    if how == "exit":
        os._exit(1)
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)  # the signal is delivered first


@app.task(executor="process")
def pid() -> int:
    """The child's process id."""
    return os.getpid()


@app.task(executor="process")
def grow(megabytes: int) -> int:
    """Keep ``megabytes`` of memory in the child, past the end of the task."""
    _kept.append(os.urandom(megabytes * 1024 * 1024))
    return os.getpid()


@app.task(executor="process")
def steps(key: str, count: int, pause: float) -> int:
    """Report progress at each of ``count`` steps; stop early once cancelled."""
    record(f"start {key} {os.getpid()}")
    for step in range(count):
        if taskward.cancelled():
            record(f"cooperated {key} {os.getpid()}")
            return step
        taskward.progress(step + 1, count, f"step {step + 1}")
        time.sleep(pause)
    return count


@app.task(executor="process")
def chatty(word: str) -> str:
    """Log from the child and print to its stdout."""
    logging.getLogger("procapp").warning("the child says %s", word)
    print("printed by the child", flush=True)  # noqa: T201 (the test looks for it)
    return word


@app.task(executor="process")
async def async_pid(delay: float) -> int:
    """An async function in a child."""
    await asyncio.sleep(delay)
    return os.getpid()


@app.task(executor="process", max_attempts=2)
def failing(password: str) -> None:
    """Raise an error that quotes a secret argument."""
    raise ValueError(f"login refused for {password}")
