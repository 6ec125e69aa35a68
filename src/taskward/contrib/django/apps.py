"""The Django app that brings the ``taskward_worker`` management command."""

from __future__ import annotations

from django.apps import AppConfig


class TaskwardConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """``"taskward.contrib.django"`` in ``INSTALLED_APPS``."""

    name = "taskward.contrib.django"
    label = "taskward"
    verbose_name = "taskward"
