"""Wake-ups between processes: a LISTEN connection on the channel the triggers NOTIFY.

Triggers NOTIFY the channel ``taskward`` when tasks are inserted, become Pending again, or
are asked to cancel. A `Listener` keeps one dedicated connection LISTENing while its store
is open, reconnecting with backoff, and turns each notification into a `ChangeSignal`
notify. Lost notifications (a transaction-mode pooler, a dropped connection) only make
waiters slower: they still return at their timeout, and after a reconnect they look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskward.errors import StoreError
from taskward.retry import retry_delay
from taskward.stores.base import ChangeSignal
from taskward.stores.postgres.runner import DB_ERRORS, Runner, close_conn

__all__ = ["CHANNEL", "Listener"]

logger = logging.getLogger("taskward.stores.postgres")

#: The NOTIFY channel of task changes.
CHANNEL = "taskward"

# How often an idle LISTEN connection checks that its peer is still there.
_PING_EVERY = 10.0


class Listener:
    """One store's LISTEN connection, started on first need and kept up while it is open."""

    def __init__(self, runner: Runner, change: ChangeSignal) -> None:
        self._runner = runner
        self._change = change
        self._task: asyncio.Task[None] | None = None

    def ensure(self) -> None:
        """Start listening unless a listener is already running."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._listen(), name="taskward-pg-listen"
            )

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        """Keep a LISTEN connection up while the store is open; reconnect with backoff."""
        runner = self._runner
        failures = 0
        reconnect = False
        while runner.pool is not None:
            try:
                conn = await runner.connect()
            except StoreError as e:
                logger.warning("%s: cannot listen for changes (%s)", runner.where, e)
                failures += 1
                await asyncio.sleep(retry_delay(failures, first=0.1, cap=5.0))
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                if reconnect:
                    # Changes made while nobody listened are not lost: waiters look again.
                    self._change.notify()
                reconnect = True
                failures = 0
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), _PING_EVERY)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1")  # notices a silently dead peer
            except DB_ERRORS as e:
                logger.warning("%s: the LISTEN connection failed (%s)", runner.where, e)
                failures += 1  # a connection that fails at once must not spin
                await asyncio.sleep(retry_delay(failures, first=0.1, cap=5.0))
            finally:
                await close_conn(conn)

    def _on_notify(self, *_: object) -> None:
        self._change.notify()
