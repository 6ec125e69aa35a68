"""The test project's app, with its tasks in tasks.py."""
