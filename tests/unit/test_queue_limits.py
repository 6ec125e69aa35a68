"""Which claims a worker makes within its free slots and its per-queue limits."""

from __future__ import annotations

import pytest

from taskward.queue_limits import check_queue_limits, plan_claims


def test_limited_queues_are_claimed_each_up_to_its_room_then_the_others_share_the_rest() -> None:
    queues = ["reports", "emails", "default"]
    limits = {"reports": 2, "emails": 5}
    assert plan_claims(10, queues, limits, {}) == (
        [(["reports"], 2), (["emails"], 5), (["default"], 3)],
        False,
    )
    assert plan_claims(10, queues, limits, {"reports": 2, "emails": 1}) == (
        [(["emails"], 4), (["default"], 6)],
        True,  # reports is full: its freed slot wakes no store, the worker looks again soon
    )
    assert plan_claims(3, queues, limits, {}) == ([(["reports"], 2), (["emails"], 1)], False)
    assert plan_claims(4, ["a"], {"a": 1}, {"a": 1}) == ([], True)


def test_limits_are_checked_against_the_queues_served() -> None:
    assert check_queue_limits(["a", "b"], {"a": 2}) == {"a": 2}
    assert check_queue_limits(None, None) == {}
    with pytest.raises(ValueError, match="need the queues listed"):
        check_queue_limits(None, {"a": 1})
    with pytest.raises(ValueError, match="not among the served"):
        check_queue_limits(["b"], {"a": 1})
    with pytest.raises(ValueError, match="integer >= 1"):
        check_queue_limits(["a"], {"a": 0})
