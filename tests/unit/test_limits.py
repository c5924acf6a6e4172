"""TokenBucket and Backoff: the two pieces of arithmetic the poller's budget rests on."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.backoff import Backoff
from server.ratelimit import TokenBucket

# -- TokenBucket -----------------------------------------------------------------------------


def test_bucket_starts_full_then_refills_at_rate() -> None:
    bucket = TokenBucket(rate=2, burst=5, now=0)
    assert bucket.tokens(0) == 5
    assert all(bucket.try_take(0) for _ in range(5))
    assert not bucket.try_take(0)
    assert bucket.wait_time(0) == pytest.approx(0.5)
    assert not bucket.try_take(0.49)
    assert bucket.try_take(0.5)
    assert bucket.tokens(100) == 5  # capped at the burst


def test_bucket_take_many_and_wait_for_many() -> None:
    bucket = TokenBucket(rate=4, burst=4, now=0)
    assert bucket.try_take(0, 3)
    assert not bucket.try_take(0, 2)
    assert bucket.tokens(0) == 1  # a refused take takes nothing
    assert bucket.wait_time(0, 3) == pytest.approx(0.5)
    assert bucket.wait_time(0, 1) == 0


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=10)
    bucket.try_take(10, 2)
    assert bucket.tokens(5) == 0
    assert bucket.tokens(11) == pytest.approx(1)


def test_unlimited_bucket() -> None:
    bucket = TokenBucket(rate=math.inf, burst=1, now=0)
    assert bucket.unlimited
    assert all(bucket.try_take(0) for _ in range(1000))
    assert bucket.wait_time(0) == 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, 0.5)])
def test_bucket_rejects_bad_config(rate, burst) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0)
    bucket = TokenBucket(1, 1, 0)
    with pytest.raises(ValueError):
        bucket.reconfigure(rate, burst, 0)


def test_reconfigure_keeps_earned_tokens_capped_at_new_burst() -> None:
    bucket = TokenBucket(rate=1, burst=10, now=0)
    bucket.try_take(0, 8)  # 2 left
    bucket.reconfigure(rate=4, burst=10, now=1)  # earned 1 at the old rate → 3
    assert bucket.tokens(1) == pytest.approx(3)
    assert bucket.tokens(1.5) == pytest.approx(5)  # then at the new rate
    bucket.reconfigure(rate=4, burst=2, now=1.5)
    assert bucket.tokens(1.5) == 2


@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.floats(min_value=0, max_value=2), max_size=200),
)
def test_bucket_never_grants_more_than_burst_plus_rate_times_time(rate, burst, steps) -> None:
    bucket = TokenBucket(rate, burst, 0)
    now = 0.0
    granted = 0
    for step in steps:
        now += step
        while bucket.try_take(now):
            granted += 1
        assert granted <= burst + rate * now + 1e-6


# -- Backoff ---------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_up_to_cap() -> None:
    backoff = Backoff(0.5, 30, rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        backoff.next_delay()
    assert ceilings == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_backoff_full_jitter_stays_within_zero_and_ceiling() -> None:
    backoff = Backoff(0.1, 5, rng=random.Random(7))
    for attempt in range(200):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert 0 <= delay <= ceiling
        assert ceiling == min(5, 0.1 * 2**attempt)
    assert backoff.attempt == 200


def test_backoff_jitter_spreads_over_the_whole_range() -> None:
    backoff = Backoff(1, 1, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(2000)]
    assert min(delays) < 0.05
    assert max(delays) > 0.95


def test_backoff_huge_attempt_does_not_overflow() -> None:
    backoff = Backoff(0.5, 30)
    backoff.attempt = 10_000
    assert backoff.ceiling() == 30
    assert 0 <= backoff.next_delay() <= 30


def test_backoff_reset() -> None:
    backoff = Backoff(0.5, 30, rng=random.Random(0))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.ceiling() == 0.5
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_rejects_bad_config(base, cap) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)
