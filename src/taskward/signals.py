"""Signal handling for the worker and the server, installed and restored in a context manager.

SIGTERM (what Kubernetes, Docker and systemd send) and SIGINT (Ctrl-C) ask for a graceful
stop; the handler is called again on a second signal, which the worker takes as "stop now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

__all__ = ["on_stop_signals"]

logger = logging.getLogger("taskward.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on each SIGTERM/SIGINT while inside the block; restore after."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in STOP_SIGNALS:

        def handler(sig: signal.Signals = sig) -> None:
            logger.info("received %s", sig.name)
            callback()

        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no support
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
