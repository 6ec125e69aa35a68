"""``scripts/run`` and ``scripts/test`` install into .venv only when they must: when .venv is
missing or pyproject.toml changed since the last install.

The scripts run for real, in a copy of the repository's scripts and pyproject.toml; the
programs they start (python3, and the tools in .venv/bin) are stand-ins that only write down
how they were called, so that a test sees every install without waiting for pip.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# A stand-in program: it appends its name and arguments to $CALLS; "pip install" fails
# while $FAIL_PIP exists; "python3 -m venv DIR" makes DIR/bin with the venv's stand-ins.
STAND_IN = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"$CALLS"
if [ "$1 $2 $3" = "-m pip install" ] && [ -e "$FAIL_PIP" ]; then exit 1; fi
if [ "$(basename "$0") $1 $2" = "python3 -m venv" ]; then
    mkdir -p "$3/bin"
    for tool in python taskward ruff mypy pytest; do cp "$0" "$3/bin/$tool"; done
fi
exit 0
"""


@dataclass
class Repo:
    root: Path
    env: dict[str, str]

    @property
    def calls_file(self) -> Path:
        return Path(self.env["CALLS"])

    def run(self, script: str, *args: str) -> list[str]:
        """Run scripts/SCRIPT; the calls it made, one "program args" line each."""
        self.calls_file.write_text("")
        done = subprocess.run(
            [str(self.root / "scripts" / script), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [line.rstrip() for line in self.calls_file.read_text().splitlines()]

    def installs(self, calls: list[str]) -> list[str]:
        return [c for c in calls if c.startswith("python -m pip install")]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("python3", "pg_isready"):
        path = tools / name
        path.write_text(STAND_IN)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {
        "PATH": f"{tools}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "FAIL_PIP": str(tmp_path / "fail-pip"),
        "HOME": str(tmp_path),
    }
    return Repo(root, env)


SERVER = "python -m pip install --quiet -e .[server]"
DEV = "python -m pip install --quiet -e .[dev]"


def test_run_installs_once_then_starts_at_once(repo: Repo) -> None:
    first = repo.run("run", "--port", "9000")
    assert first[0] == "python3 -m venv .venv"  # a fresh clone: no .venv yet
    assert repo.installs(first) == ["python -m pip install --quiet --upgrade pip", SERVER]
    assert first[-1] == "taskward serve --port 9000"

    again = repo.run("run")
    assert again == ["taskward serve"]  # nothing changed: no venv, no pip

    with (repo.root / "pyproject.toml").open("a") as f:
        f.write("\n# a change\n")
    changed = repo.run("run")
    assert "python3 -m venv .venv" not in changed  # the venv is kept...
    assert SERVER in repo.installs(changed)  # ...and brought up to date
    assert repo.run("run") == ["taskward serve"]


def test_a_failed_install_is_tried_again_at_the_next_start(repo: Repo) -> None:
    Path(repo.env["FAIL_PIP"]).touch()
    repo.calls_file.write_text("")
    failed = subprocess.run(
        [str(repo.root / "scripts" / "run")],
        env=repo.env,
        cwd=repo.root,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert failed.returncode != 0
    assert "taskward serve" not in repo.calls_file.read_text()
    Path(repo.env["FAIL_PIP"]).unlink()
    retried = repo.run("run")
    assert SERVER in repo.installs(retried)
    assert retried[-1] == "taskward serve"


def test_test_installs_the_dev_extra_once_and_run_accepts_it(repo: Repo) -> None:
    first = repo.run("test", "-q")
    assert DEV in repo.installs(first)
    assert first[-1] == "pytest -q"
    assert [c for c in first if c.startswith(("ruff", "mypy"))] == [
        "ruff check .",
        "ruff format --check .",
        "mypy",
    ]

    again = repo.run("test")
    assert repo.installs(again) == []
    # The dev extra includes the server one: run needs no install of its own.
    assert repo.run("run") == ["taskward serve"]
