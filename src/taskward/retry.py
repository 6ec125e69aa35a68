"""Retry backoff: how long a failed task waits before its next attempt.

`Backoff.next_delay` is pure (the randomness can be passed in), so the worker and the tests
agree on exactly the same numbers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from taskward.errors import ConfigurationError

__all__ = ["Backoff", "retry_delay"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap and proportional jitter.

    The delay before attempt ``n + 1`` (after ``n`` attempts) is
    ``min(cap, base * factor ** (n - 1))``, multiplied by a random factor in
    ``[1 - jitter, 1 + jitter)`` so that tasks which failed together do not retry together.
    The default jitter (0.5) spreads them over a window as wide as the delay itself (200 tasks
    failing at once with a 1 s delay: about a tenth of them per 100 ms), while the mean delay
    stays the nominal one; a narrow jitter such as 0.1 would bunch them into a fifth of it.
    """

    base: float = 1.0
    cap: float = 300.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for field_name in ("base", "cap", "factor", "jitter"):
            value = getattr(self, field_name)
            # bool is an int, but Backoff(base=True) is certainly a mistake.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"Backoff {field_name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigurationError(f"Backoff {field_name} must be finite, got {value!r}")
        if self.base <= 0:
            raise ConfigurationError(f"Backoff base must be > 0, got {self.base!r}")
        if self.cap < self.base:
            raise ConfigurationError(
                f"Backoff cap must be >= base ({self.base!r}), got {self.cap!r}"
            )
        if self.factor < 1:
            raise ConfigurationError(f"Backoff factor must be >= 1, got {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"Backoff jitter must be in [0, 1], got {self.jitter!r}")

    def next_delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after ``attempt`` attempts (>= 1); ``rand`` in [0, 1) fixes jitter."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        if rand is None:
            rand = random.random()
        return retry_delay(
            attempt,
            first=self.base,
            cap=self.cap,
            factor=self.factor,
            jitter=self.jitter,
            rand=rand,
        )


def retry_delay(
    failures: int,
    *,
    first: float,
    cap: float,
    factor: float = 2.0,
    jitter: float = 0.0,
    rand: float | None = None,
) -> float:
    """How long to wait after ``failures`` failures in a row (>= 1) of anything retried in a
    loop (a task's attempts, a store call, a reconnect, a locked file): ``first``, times
    ``factor`` after each failure, up to ``cap``.

    ``jitter`` in [0, 1] spreads it to ``[1 - jitter, 1 + jitter)`` of that (``rand`` in
    [0, 1) fixes it), so processes that failed together do not retry in step. The one
    formula of every retry loop in taskward; `Backoff` is the per-task policy built on it.
    """
    if failures < 1:
        raise ValueError(f"failures must be >= 1, got {failures!r}")
    delay = cap
    # Compare exponents in log space: factor ** (failures - 1) overflows a float long
    # before failures reaches any limit a user would set (e.g. 2.0 ** 1100).
    if factor == 1:
        delay = min(cap, first)
    elif failures - 1 < math.log(cap / first, factor):
        delay = min(cap, first * factor ** (failures - 1))
    if jitter:
        if rand is None:
            rand = random.random()
        elif not 0 <= rand < 1:
            raise ValueError(f"rand must be in [0, 1), got {rand!r}")
        delay *= 1 - jitter + 2 * jitter * rand
    return delay
