"""A small Django project that runs its tasks with taskward."""
