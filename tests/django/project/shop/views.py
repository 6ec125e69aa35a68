"""A plain (sync) Django view that enqueues a task once its transaction commits."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from shop import tasks


def add(request: HttpRequest) -> JsonResponse:
    """Enqueue add(a, b) on commit; answer the result's id."""
    a, b = int(request.GET["a"]), int(request.GET["b"])
    ids: list[str] = []
    with transaction.atomic():
        # Work on the database would go here; the task exists only if it commits.
        transaction.on_commit(lambda: ids.append(tasks.add.enqueue(a, b).id))
    return JsonResponse({"id": ids[0]}, status=202)
