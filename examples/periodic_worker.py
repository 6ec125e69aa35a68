"""A periodic worker that runs until SIGINT/SIGTERM (Ctrl-C, ``kill``) or a time limit.

    python examples/periodic_worker.py --seconds 3 --interval 0.5

Each tick refreshes a (pretend) cache. The stop signal only sets an `asyncio.Event`; leaving
``async with TaskManager()`` then cancels the periodic task, waits up to the grace for it and
logs how it ended. The process exits 0 after a clean stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import taskward
from taskward import TaskManager


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, reasons: list[str]) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while inside; the usual handlers come back after."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(sig: signal.Signals) -> None:
        reasons.append(sig.name)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


class Cache:
    """What the periodic task keeps fresh."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def refresh(self) -> int:
        await asyncio.sleep(0.01)  # stands for fetching the data
        self.refreshes += 1
        print(f"refresh {self.refreshes} by task {taskward.current_task()!r}", flush=True)
        return self.refreshes


async def run(seconds: float, interval: float) -> int:
    stop = asyncio.Event()
    reasons: list[str] = []
    cache = Cache()
    with stop_on_signals(stop, reasons):
        async with TaskManager(grace=2.0) as tm:
            tm.every(interval, "refresh-cache", cache.refresh)
            print(f"started: refreshing every {interval}s for up to {seconds}s", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
            info = tm.status("refresh-cache")
            assert info is not None
            assert info.progress is not None
            print(f"stopping ({reasons[0] if reasons else 'time is up'}); {info.progress.message}")
        # Leaving the block shut the manager down: the periodic task is Cancelled.
    final = tm.status("refresh-cache")
    assert final is not None
    print(f"stopped after {cache.refreshes} refreshes; refresh-cache is {final.status}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between runs")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(opts.seconds, opts.interval))


if __name__ == "__main__":
    raise SystemExit(main())
