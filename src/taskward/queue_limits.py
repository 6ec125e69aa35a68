"""A worker's per-queue limits (``--queues reports:2,emails:5,default``): which claims to
make within its free slots. Pure functions of their arguments.

A queue with a limit of its own is claimed on its own, up to its room (its limit less its
runs); the queues without one share what is left, in one claim. The limits are per worker
process, within its ``concurrency``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["Ask", "check_queue_limits", "plan_claims"]

#: One claim to make: the queues it covers (None: every queue), and how many tasks at most.
Ask = tuple[list[str] | None, int]


def plan_claims(
    free: int, queues: list[str] | None, limits: Mapping[str, int], running: Mapping[str, int]
) -> tuple[list[Ask], bool]:
    """The claims to make with ``free`` slots, given the runs of each queue now; and whether
    a queue is at its own limit (then a freed slot of that queue does not wake the store:
    the worker looks again soon)."""
    asks: list[Ask] = []
    at_limit = False
    for queue, limit in limits.items():
        room = limit - running.get(queue, 0)
        at_limit = at_limit or room <= 0
        if room > 0 and free > 0:
            asks.append(([queue], min(free, room)))
            free -= min(free, room)
    others = [q for q in queues or () if q not in limits]
    if others and free > 0:
        asks.append((others, free))
    return asks, at_limit


def check_queue_limits(
    queues: list[str] | None, limits: Mapping[str, int] | None
) -> dict[str, int]:
    """The per-queue limits, checked: each names a served queue and is a positive int."""
    if not limits:
        return {}
    if queues is None:
        raise ValueError(
            "per-queue limits need the queues listed: a worker that serves every queue"
            " cannot leave the limited ones out of its other claims"
        )
    out: dict[str, int] = {}
    for queue, limit in limits.items():
        if queue not in queues:
            raise ValueError(f"queue {queue!r} has a limit but is not among the served {queues}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the limit of queue {queue!r} must be an integer >= 1, not {limit!r}")
        out[queue] = limit
    return out
