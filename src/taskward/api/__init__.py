"""The HTTP API (FastAPI): ``create_api(app)`` for a whole app, `TaskwardAPI` to mount it.

Needs ``taskward[server]``. The core package never imports this one.
"""

from taskward.api.limits import MAX_BODY
from taskward.api.service import TaskwardAPI, create_api

__all__ = ["MAX_BODY", "TaskwardAPI", "create_api"]
