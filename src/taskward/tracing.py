"""The tracing hooks of the core, and the switch that turns them on; no OpenTelemetry here.

- **The switch.** ``App(..., tracing=None)`` (the default) traces when the OpenTelemetry
  API (``pip install 'taskward[otel]'``) can be imported, found once per process without
  importing it; ``tracing=True`` insists (a `ConfigurationError` without it) and
  ``tracing=False`` never traces. Off, an App's ``_tracing`` is None: the submit path and
  the worker pay one attribute check per task, and nothing of OpenTelemetry is imported.
- **On**, `Tracing` imports `taskward.contrib.otel` at its first use and hands it every
  call: a ``send`` span per submitted task, a ``process`` span per run, and the trace
  context a task continues from, carried to the insert in `NewTask.traceparent`.
- **traceparent** is the W3C text ``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``
  (55 characters, lowercase, ids not all zeros). A malformed one given to ``submit_many``
  is the caller's mistake (`InvalidArgumentsError`); a malformed one read back from a store
  is ignored by the worker, with a debug log.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from taskward.errors import ConfigurationError, InvalidArgumentsError
from taskward.stores.records import NewTask

if TYPE_CHECKING:
    from taskward.contrib.otel import OtelTracing
    from taskward.execution import Run, RunOutcome
    from taskward.models import TaskInfo

__all__ = ["Tracing", "check_traceparents", "is_traceparent", "otel_installed", "tracing_for"]

_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

Insert = Callable[[list[NewTask]], Awaitable[list["TaskInfo"]]]
Call = Callable[[], Awaitable["RunOutcome"]]


def is_traceparent(value: object) -> bool:
    """True for a well-formed W3C ``traceparent`` of version 00 (see the module doc)."""
    return isinstance(value, str) and len(value) == 55 and _TRACEPARENT.fullmatch(value) is not None


def check_traceparents(batch: Iterable[NewTask]) -> None:
    """Refuse, before anything is stored, a task whose ``traceparent`` is malformed."""
    for new in batch:
        if new.traceparent is not None and not is_traceparent(new.traceparent):
            raise InvalidArgumentsError(
                "traceparent must be a W3C trace context,"
                f" 00-<32 hex>-<16 hex>-<2 hex>, got {new.traceparent[:80]!r}",
                field="traceparent",
            )


@functools.cache
def otel_installed() -> bool:
    """Whether the OpenTelemetry API can be imported, found without importing it (finding
    ``opentelemetry.trace`` would import its parent package)."""
    spec = importlib.util.find_spec("opentelemetry")
    if spec is None or spec.submodule_search_locations is None:
        return False
    return any(os.path.isdir(os.path.join(p, "trace")) for p in spec.submodule_search_locations)


def tracing_for(setting: object) -> Tracing | None:
    """The hooks for ``App(tracing=setting)``: None when tracing is off."""
    if setting is not None and not isinstance(setting, bool):
        raise ConfigurationError(f"tracing must be True, False or None, got {setting!r}")
    if setting is False:
        return None
    if not otel_installed():
        if setting:
            raise ConfigurationError(
                "tracing=True needs the OpenTelemetry API: pip install 'taskward[otel]'"
            )
        return None
    return _TRACING


class Tracing:
    """The hooks `App`, `Worker`, the sync facade and the HTTP API call while tracing is
    on. Each forwards to `taskward.contrib.otel`, imported at the first call."""

    __slots__ = ("_otel",)

    def __init__(self) -> None:
        self._otel: OtelTracing | None = None

    def _impl(self) -> OtelTracing:
        otel = self._otel
        if otel is None:
            from taskward.contrib.otel import OtelTracing

            otel = self._otel = OtelTracing()
        return otel

    def active(self) -> bool:
        """Whether spans are made now: a tracer provider was set up. Until then `App` keeps
        its fast path for a single submit, as with tracing off."""
        return self._impl().active()

    async def send(self, batch: list[NewTask], insert: Insert) -> list[TaskInfo]:
        """``insert(batch)`` inside one ``send`` span per task, each task stamped with its
        span's context; a task's own ``traceparent`` is its span's parent."""
        return await self._impl().send(batch, insert)

    async def process(self, run: Run, call: Call) -> RunOutcome:
        """``call()`` (the run of ``run``) inside a ``process`` span, a child of the task's
        stored context; its outcome sets the span's status."""
        return await self._impl().process(run, call)

    def continue_current(self, batch: Sequence[NewTask]) -> list[NewTask]:
        """The tasks, each without a ``traceparent`` given the current span's (for a submit
        that is carried to another thread, where the caller's context is not current)."""
        return self._impl().continue_from(batch, None)

    def continue_headers(
        self, batch: Sequence[NewTask], headers: Mapping[str, str]
    ) -> list[NewTask]:
        """The tasks, each without a ``traceparent`` given the current span's context (a
        server span), else the one a request's ``headers`` carry (by the global propagator)."""
        return self._impl().continue_from(batch, headers)


_TRACING = Tracing()  # one per process: it holds no state but the module it loaded
