"""The app of the secrets end-to-end tests: tasks that fail with their secret in the error.

Each writes the value it received to the file named by ``SEEN``: the proof that the worker
got the real value, not the stars shown everywhere else.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from taskward.app import App
from taskward.retry import Backoff

app = App()  # TASKWARD_DB chooses the store


def _seen(task: str, value: str) -> None:
    with open(os.environ["SEEN"], "a", encoding="utf-8") as out:
        out.write(f"{task} {value}\n")


@app.task(name="call", max_attempts=2, retry=Backoff(base=0.05, cap=0.05))
async def call(url: str, api_key: SecretStr) -> None:
    """Call an API with a key it refuses (the key ends up in the error)."""
    key = api_key.get_secret_value()
    _seen("call", key)
    raise RuntimeError(f"401 for {url} with key {key}")


@app.task(name="login", max_attempts=1)
def login(user: str, password: str) -> None:
    """Log in with a wrong password (the password ends up in the error)."""
    _seen("login", password)
    raise PermissionError(f"login failed for {user}:{password}")
