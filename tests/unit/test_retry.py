"""Backoff: exact delays with fixed randomness, validation, and properties over all inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskward.errors import ConfigurationError
from taskward.retry import Backoff, retry_delay


def test_defaults_double_from_one_second_up_to_five_minutes() -> None:
    b = Backoff(jitter=0)
    assert [b.next_delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert b.next_delay(9) == 256.0
    assert b.next_delay(10) == 300.0
    assert b.next_delay(10_000) == 300.0


def test_jitter_spreads_around_the_delay() -> None:
    b = Backoff(base=10, cap=100, jitter=0.5)
    assert b.next_delay(1, rand=0.0) == pytest.approx(5.0)
    assert b.next_delay(1, rand=0.5) == pytest.approx(10.0)
    assert b.next_delay(1, rand=0.999999) == pytest.approx(15.0, rel=1e-5)


def test_factor_one_is_a_constant_delay() -> None:
    b = Backoff(base=3, cap=3, factor=1, jitter=0)
    assert b.next_delay(1) == b.next_delay(50) == 3.0


def test_random_jitter_stays_in_its_band() -> None:
    b = Backoff(base=2, cap=60, jitter=0.25)
    for _ in range(200):
        assert 1.5 <= b.next_delay(1) < 2.5


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"base": 0}, "base must be > 0"),
        ({"base": -1}, "base must be > 0"),
        ({"base": 10, "cap": 5}, "cap must be >= base"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"jitter": -0.1}, "jitter must be in [0, 1]"),
        ({"jitter": 1.5}, "jitter must be in [0, 1]"),
        ({"cap": float("inf")}, "cap must be finite"),
        ({"base": "1"}, "base must be a number"),
    ],
)
def test_invalid_settings_are_refused_clearly(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_attempt_and_rand_out_of_range_are_errors() -> None:
    b = Backoff()
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        b.next_delay(0)
    with pytest.raises(ValueError, match=r"rand must be in \[0, 1\)"):
        b.next_delay(1, rand=1.0)


backoffs = st.builds(
    lambda base, span, factor, jitter: Backoff(
        base=base, cap=base * span, factor=factor, jitter=jitter
    ),
    base=st.floats(min_value=1e-3, max_value=1e3),
    span=st.floats(min_value=1, max_value=1e4),
    factor=st.floats(min_value=1, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
)
rands = st.floats(min_value=0, max_value=1, exclude_max=True)


@given(b=backoffs, attempt=st.integers(min_value=1, max_value=10_000), rand=rands)
def test_delay_is_never_negative_nor_above_the_jittered_cap(
    b: Backoff, attempt: int, rand: float
) -> None:
    delay = b.next_delay(attempt, rand=rand)
    assert 0 <= delay <= b.cap * (1 + b.jitter)


@given(b=backoffs, attempt=st.integers(min_value=1, max_value=10_000), rand=rands)
def test_delay_never_shrinks_as_attempts_grow(b: Backoff, attempt: int, rand: float) -> None:
    assert b.next_delay(attempt, rand=rand) <= b.next_delay(attempt + 1, rand=rand)


def test_retry_delay_doubles_from_first_up_to_the_cap() -> None:
    delays = [retry_delay(n, first=0.1, cap=1.0) for n in range(1, 7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert retry_delay(10_000, first=0.1, cap=5.0) == 5.0  # no overflow however many
    assert retry_delay(1, first=1.0, cap=9.0, jitter=0.5, rand=0.0) == 0.5
    assert retry_delay(1, first=1.0, cap=9.0, jitter=0.5, rand=0.999) == pytest.approx(1.499)
    with pytest.raises(ValueError, match="failures must be >= 1"):
        retry_delay(0, first=0.1, cap=1.0)
