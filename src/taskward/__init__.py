"""taskward: background tasks for Python, in process, durable, and as a service."""

from taskward.app import App
from taskward.context import cancelled, current_task, progress
from taskward.errors import TaskwardError
from taskward.manager import TaskManager
from taskward.models import Status, TaskInfo
from taskward.retry import Backoff

__version__ = "0.1.0"

__all__ = [
    "App",
    "Backoff",
    "Status",
    "TaskInfo",
    "TaskManager",
    "TaskwardError",
    "__version__",
    "cancelled",
    "current_task",
    "progress",
]
