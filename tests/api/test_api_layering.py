"""The core never imports FastAPI: only taskward.api and taskward.serve do; and serve does
not import the CLI (what both use lives in taskward.loading)."""

from __future__ import annotations

import subprocess
import sys


def test_core_modules_do_not_import_fastapi() -> None:
    code = (
        "import sys, taskward, taskward.app, taskward.worker, taskward.cli, taskward.demo\n"
        "loaded = [m for m in ('fastapi', 'starlette', 'uvicorn', 'prometheus_client')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_serve_does_not_import_the_cli() -> None:
    code = (
        "import sys, taskward.serve\n"
        "loaded = [m for m in sys.modules if m.split('.')[:2] == ['taskward', 'cli']]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
