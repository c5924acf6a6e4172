"""The account budget's rules (server/connect/budget_rules.py): reserve and AIMD. No I/O."""

from __future__ import annotations

import pytest

from server.connect.budget import LocalBudget
from server.connect.budget_rules import (
    FLOOR_FRACTION,
    RECOVERY_SECONDS,
    recovered_rate,
    throttled_rate,
    usable_burst,
)


@pytest.mark.parametrize(("burst", "usable"), [(1, 1), (2, 1), (5, 4), (20, 19)])
def test_one_request_of_the_burst_is_held_back_but_never_the_last(burst, usable) -> None:
    assert usable_burst(burst) == usable


def test_throttling_halves_the_rate_down_to_a_sixteenth_of_the_configured() -> None:
    assert throttled_rate(8.0, 8.0) == 4.0
    assert throttled_rate(3.0, 8.0) == 1.5
    assert throttled_rate(0.6, 8.0) == 0.5 == 8.0 * FLOOR_FRACTION
    assert throttled_rate(0.5, 8.0) == 0.5


def test_the_climb_back_is_linear_from_half_to_all_in_the_recovery_time() -> None:
    assert recovered_rate(4.0, 8.0, 0.0) == 4.0
    assert recovered_rate(4.0, 8.0, RECOVERY_SECONDS / 4) == 5.0
    assert recovered_rate(4.0, 8.0, RECOVERY_SECONDS) == 8.0
    assert recovered_rate(4.0, 8.0, 3 * RECOVERY_SECONDS) == 8.0  # never above the configured
    assert recovered_rate(0.5, 8.0, 1.0, recovery=2.0) == 2.5
    assert recovered_rate(4.0, 8.0, -1.0) == 4.0  # a clock that went back climbs nothing


async def test_not_before_says_when_a_take_could_succeed_without_taking() -> None:
    budget = LocalBudget(2.0, 2, 0.0)  # usable burst: 1
    assert budget.not_before(0.0) == 0.0
    assert budget.not_before(0.0) == 0.0  # asking took nothing
    assert await budget.take(0.0) == 0.0
    assert budget.not_before(0.0) == pytest.approx(0.5)
    assert budget.not_before(0.5) == 0.0
