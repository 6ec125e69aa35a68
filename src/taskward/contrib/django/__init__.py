"""taskward as the backend of Django's Tasks framework (``pip install taskward[django]``).

Add ``"taskward.contrib.django"`` to ``INSTALLED_APPS`` (for the ``taskward_worker``
command) and name `TaskwardBackend` in ``TASKS``; see docs/django.md.

Importing this package loads nothing of Django: the backend loads when Django asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskward.contrib.django.backend import TaskwardBackend

__all__ = ["TaskwardBackend"]


def __getattr__(name: str) -> Any:
    # Django imports this package while it loads its apps, before settings are all read:
    # the backend (and Django's Tasks framework with it) loads on first use instead.
    if name == "TaskwardBackend":
        from taskward.contrib.django.backend import TaskwardBackend

        return TaskwardBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
