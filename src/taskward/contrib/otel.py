"""OpenTelemetry spans for taskward: every import of OpenTelemetry is in this module, which
`taskward.tracing` imports at its first use while tracing is on.

Spans follow OpenTelemetry's messaging conventions, through the global tracer provider
(``opentelemetry.trace.get_tracer``, so a provider set up after the App was made is used):

- ``send {task}`` (PRODUCER), one per submitted task, around the insert that stores it.
  One span per task rather than one per batch: a batch may mix task functions and queues,
  and the HTTP API's batches mix requests, each with a trace of its own. Its parent is the
  task's given ``traceparent``, else the current span. The task stores the span's context.
- ``process {task}`` (CONSUMER), one per attempt, around the call of the task function
  (which sees it as the current span, for spans of its own). Its parent is the stored
  context, so one trace id covers the request that submitted the task and every run of it.

Attributes: ``messaging.system`` (``taskward``), ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the task id), ``messaging.operation.type`` (``send`` or
``process``), ``taskward.task.name`` (the task function) and, on a run,
``taskward.task.attempt``. Never arguments or results. A Failed or Cancelled run sets the
status ERROR with its stored error text, in which secret values are already masked; a run
that raised also gets an ``exception`` event built from that masked text and traceback
(recording the exception object itself would put its unmasked text on the span).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)

import taskward
from taskward.models import Status
from taskward.stores.records import NewTask
from taskward.tracing import check_traceparents, is_traceparent

if TYPE_CHECKING:
    from taskward.execution import Run, RunOutcome
    from taskward.models import TaskInfo
    from taskward.tracing import Call, Insert

__all__ = ["OtelTracing", "format_traceparent", "notice_provider", "parent_context"]

logger = logging.getLogger("taskward.tracing")

SYSTEM = "taskward"
# "ValueError: boom" -> ValueError: how `RunOutcome.failure` writes an exception's text.
_EXCEPTION_TYPE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


#: Seconds a "no provider yet" answer of `_provider_set` is kept.
RECHECK = 1.0
_known_set = False
_checked_at = -math.inf


def _provider_set() -> bool:
    """Whether a tracer provider was set up (an SDK's, or any other real one).

    Until one is, every span would be a no-op: the hooks skip them, so that an installed
    OpenTelemetry API that nothing configures (a dependency of a dependency, say) costs a
    task next to nothing. Once set, a provider stays (OpenTelemetry sets it once per
    process), so a yes is kept; a no is looked at again at most every `RECHECK` seconds
    (`get_tracer_provider` reads the environment each time: microseconds a task)."""
    global _known_set, _checked_at
    if _known_set:
        return True
    now = time.monotonic()
    if now - _checked_at < RECHECK:
        return False
    _checked_at = now
    provider = trace.get_tracer_provider()
    _known_set = not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    return _known_set


def notice_provider() -> None:
    """Look for a tracer provider at the next submit or run, not up to `RECHECK` seconds
    later: for a provider set up after tasks were already submitted or run."""
    global _checked_at
    _checked_at = -math.inf


def format_traceparent(context: SpanContext) -> str | None:
    """The W3C ``traceparent`` of a span context; None for an invalid one (no span)."""
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def parent_context(traceparent: str) -> otel_context.Context | None:
    """A context whose current span is the remote one ``traceparent`` names; None when the
    text is malformed."""
    if not is_traceparent(traceparent):
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    remote = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote), otel_context.Context())


class OtelTracing:
    """The spans of one process, made by the global tracer provider's ``taskward`` tracer."""

    def __init__(self) -> None:
        # A proxy until a provider is set: spans go to whichever provider is set later.
        self._tracer = trace.get_tracer(SYSTEM, taskward.__version__)

    @staticmethod
    def active() -> bool:
        """Whether a tracer provider was set up (see `_provider_set`)."""
        return _provider_set()

    async def send(self, batch: list[NewTask], insert: Insert) -> list[TaskInfo]:
        """Insert the batch inside a ``send`` span per task (see the module doc)."""
        if not batch or not _provider_set() or not all(isinstance(n, NewTask) for n in batch):
            return await insert(batch)  # nothing to trace, or refused there as untraced
        check_traceparents(batch)  # before any span: the caller's mistake is no send
        spans: list[Span] = []
        stamped: list[NewTask] = []
        for new in batch:
            parent = None if new.traceparent is None else parent_context(new.traceparent)
            span = self._tracer.start_span(
                f"send {new.task}",
                context=parent,  # None: the current context
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": SYSTEM,
                    "messaging.operation.type": "send",
                    "messaging.destination.name": new.queue,
                    "messaging.message.id": str(new.id),
                    "taskward.task.name": new.task,
                },
            )
            spans.append(span)
            # Without a recording provider the span is its parent's (or none): the task
            # then keeps what it was given.
            traceparent = format_traceparent(span.get_span_context())
            if traceparent is not None and traceparent != new.traceparent:
                new = dataclasses.replace(new, traceparent=traceparent)
            stamped.append(new)
        try:
            infos = await insert(stamped)
        except BaseException as exc:
            for span in spans:
                if isinstance(exc, Exception):
                    span.record_exception(exc)
                span.set_status(StatusCode.ERROR, _describe(exc))
                span.set_attribute("error.type", type(exc).__qualname__)
                span.end()
            raise
        for span in spans:
            span.end()
        return infos

    async def process(self, run: Run, call: Call) -> RunOutcome:
        """Run ``call()``, the run of ``run``, inside a ``process`` span (see the module
        doc)."""
        if not _provider_set():
            return await call()
        record = run.record
        parent = otel_context.Context()  # no stored context: a trace of its own
        if record.traceparent is not None:
            stored = parent_context(record.traceparent)
            if stored is None:
                logger.debug(
                    "task %s: its stored traceparent %r is malformed; its run starts a new trace",
                    record.id,
                    record.traceparent[:80],
                )
            else:
                parent = stored
        span = self._tracer.start_span(
            f"process {record.task}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.destination.name": record.queue,
                "messaging.message.id": str(record.id),
                "taskward.task.name": record.task,
                "taskward.task.attempt": record.attempts,
            },
        )
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                outcome = await call()
            except BaseException as exc:  # a stop that is not the run's own: no outcome
                span.set_status(StatusCode.ERROR, f"the run was interrupted: {_describe(exc)}")
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            _set_outcome(span, outcome)
        return outcome

    def continue_from(
        self, batch: Sequence[NewTask], headers: Mapping[str, str] | None
    ) -> list[NewTask]:
        """The tasks, each without a ``traceparent`` given the current span's context, or
        else the one ``headers`` carry (read by the global propagator); unchanged when
        there is neither. A server span (FastAPI's own, an instrumentation's) is current
        when there is one, and already a child of the headers' context."""
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid and headers is not None:
            span_context = trace.get_current_span(propagate.extract(headers)).get_span_context()
        traceparent = format_traceparent(span_context)
        if traceparent is None:
            return list(batch)
        return [
            dataclasses.replace(new, traceparent=traceparent)
            if isinstance(new, NewTask) and new.traceparent is None
            else new  # not a NewTask: submit_many refuses it with its own error
            for new in batch
        ]


def _set_outcome(span: Span, outcome: RunOutcome) -> None:
    """A Failed or Cancelled run: status ERROR with its (masked) error text, and the
    exception event of a run that raised."""
    if outcome.status is Status.COMPLETED:
        return
    error = outcome.error or f"the task ended {outcome.status.value}"
    kind = None
    if outcome.traceback is not None:
        match = _EXCEPTION_TYPE.match(error)
        kind = match.group(1) if match else None
        attributes = {"exception.message": error, "exception.stacktrace": outcome.traceback}
        if kind is not None:
            attributes["exception.type"] = kind
        span.add_event("exception", attributes)
    span.set_attribute("error.type", kind or outcome.status.value)
    span.set_status(StatusCode.ERROR, error)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
