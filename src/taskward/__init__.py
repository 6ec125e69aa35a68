"""taskward: background tasks for Python, in process, durable, and as a service."""

from taskward.errors import TaskwardError
from taskward.models import Status, TaskInfo

__version__ = "0.1.0"

__all__ = [
    "Status",
    "TaskInfo",
    "TaskwardError",
    "__version__",
]
