"""The submitting process of the tracing end-to-end tests: inside a span of its own (as a
web request's), it submits one task that completes and one that fails, then prints
their ids and the request span's ids as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

from opentelemetry import trace
from traceapp import app


async def main() -> None:
    with trace.get_tracer("trace_submit").start_as_current_span("request") as request:
        greet = await app.submit("greet", "world")
        fail = await app.submit("fail", "on purpose")
    await app.close()
    context = request.get_span_context()
    sys.stdout.write(
        json.dumps(
            {
                "greet": str(greet.id),
                "fail": str(fail.id),
                "trace_id": f"{context.trace_id:032x}",
                "span_id": f"{context.span_id:016x}",
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
