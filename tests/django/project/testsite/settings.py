"""Settings of the test project: taskward as the default task backend.

The store is ``TASKWARD_DB`` (the backend's default when OPTIONS names no DB); tests that run
in the pytest process give theirs with ``override_settings(TASKS=...)``.
"""

import django

SECRET_KEY = "taskward-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "testsite.urls"
ALLOWED_HOSTS = ["test"]
# A database only for transaction.on_commit in the view (taskward keeps its own store).
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = [
    "taskward.contrib.django",
    "shop",
    # The backport is an app of its own below Django 6 (its checks and signals).
    *(["django_tasks"] if django.VERSION < (6,) else []),
]
TASKS = {
    "default": {
        "BACKEND": "taskward.contrib.django.TaskwardBackend",
        "QUEUES": ["default", "emails"],
    },
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
}
