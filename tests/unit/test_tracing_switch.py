"""The tracing switch and the traceparent check (taskward.tracing), and the promise that a
core without tracing imports nothing of OpenTelemetry (checked in fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from taskward.app import App
from taskward.errors import ConfigurationError
from taskward.tracing import Tracing, is_traceparent, otel_installed, tracing_for

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize(
    "text", [f"00-{TRACE}-{SPAN}-01", f"00-{TRACE}-{SPAN}-00", f"00-{TRACE}-{SPAN}-03"]
)
def test_well_formed_traceparents(text: str) -> None:
    assert is_traceparent(text)


@pytest.mark.parametrize(
    "value",
    [
        None,
        55,
        "",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE}-{SPAN}-01-",  # more than version 00 has
        f"01-{TRACE}-{SPAN}-01",  # another version: not what taskward writes
        f"00-{'0' * 32}-{SPAN}-01",  # the invalid trace id
        f"00-{TRACE}-{'0' * 16}-01",  # the invalid span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # W3C: lowercase only
        f"00-{TRACE}-{SPAN}-0g",
        f"00-{TRACE}-{SPAN}-01\n",
        f"00_{TRACE}_{SPAN}_01",
    ],
)
def test_malformed_traceparents(value: object) -> None:
    assert not is_traceparent(value)


def test_the_switch() -> None:
    assert otel_installed()  # the dev extra installs it
    assert tracing_for(False) is None
    assert isinstance(tracing_for(None), Tracing)
    assert tracing_for(True) is tracing_for(None)  # one per process
    with pytest.raises(ConfigurationError, match="tracing must be True, False or None"):
        tracing_for("yes")
    with pytest.raises(ConfigurationError, match="tracing must be"):
        App("memory://", tracing=1)  # type: ignore[arg-type]


def test_a_twin_app_keeps_the_setting() -> None:
    assert App("memory://", tracing=False).with_store("memory://")._tracing is None
    assert App("memory://").with_store("memory://")._tracing is not None


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (a failure shows its stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# Submits and runs one task on memory, then prints the OpenTelemetry modules imported.
_SUBMIT_AND_RUN = """
    import asyncio, sys
    {prelude}
    from taskward.app import App
    from taskward.worker import Worker

    app = App("memory://"{tracing})

    @app.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    async def main() -> None:
        info = await app.submit("add", 1, 2)
        worker = Worker(app, poll_interval=0.01)
        await worker.run(until_idle=True)
        assert (await app.wait(info.id, timeout=10)) == 3
        print("tracing", app._tracing is not None)

    asyncio.run(main())
    print(sorted(m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v))
"""


@pytest.mark.slow
def test_tracing_off_imports_no_opentelemetry() -> None:
    out = run_python(_SUBMIT_AND_RUN.format(prelude="", tracing=", tracing=False"))
    assert out.splitlines() == ["tracing False", "[]"]


@pytest.mark.slow
def test_without_opentelemetry_installed_tracing_is_off() -> None:
    # A None in sys.modules is how Python itself says "this package cannot be imported".
    hide = "sys.modules['opentelemetry'] = None"
    out = run_python(_SUBMIT_AND_RUN.format(prelude=hide, tracing=""))
    assert out.splitlines() == ["tracing False", "[]"]
    refused = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; {hide}; from taskward.app import App; App(tracing=True)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "pip install 'taskward[otel]'" in refused.stderr


@pytest.mark.slow
def test_tracing_on_imports_opentelemetry_only_when_first_used() -> None:
    # (Not taskward.api: FastAPI imports OpenTelemetry itself when it is installed.)
    out = run_python(
        """
        import sys
        import taskward, taskward.worker, taskward.cli
        from taskward.app import App
        app = App("memory://")
        assert app._tracing is not None
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert out.strip() == "[]"


def test_an_api_without_a_provider_set_makes_no_spans_and_stores_nothing() -> None:
    # The OpenTelemetry API installed (a dependency of something) but nothing set up: the
    # hooks see the default proxy provider and skip their spans; nothing is stamped.
    out = run_python(
        """
        import asyncio
        from taskward.app import App
        from taskward.worker import Worker

        app = App("memory://")

        @app.task(name="add")
        async def add(a: int, b: int) -> int:
            return a + b

        async def main() -> None:
            info = await app.submit("add", 1, 2)
            await Worker(app, poll_interval=0.01).run(until_idle=True)
            assert (await app.wait(info.id, timeout=10)) == 3
            record = await (await app.connect()).get(info.id)
            print(app._tracing is not None, record.traceparent)

        asyncio.run(main())
        """
    )
    assert out.split() == ["True", "None"]
