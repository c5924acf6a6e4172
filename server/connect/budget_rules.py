"""The rules every account budget follows, local or shared: the one place they are written.

- One request of the burst is held in reserve: AWS's bucket counts arrivals, ours counts
  departures, and network jitter between the two would otherwise now and then spend a token
  AWS has not refilled yet.
- AIMD on throttling: a ThrottlingException cuts the allowed rate to `DECREASE` of itself at
  once (never below `FLOOR_FRACTION` of the configured rate); the rate then climbs back
  linearly, from half the configured rate to all of it in `RECOVERY_SECONDS`, so a quota lower
  than configured is found instead of hammered.

`LocalBudget` (server/connect/budget.py) calls these functions. The shared budget runs the
same rules in a Lua script on Redis' clock (`RedisCoordinator`, server/connect/coordination.py),
which is given these numbers as arguments. No I/O.
"""

from __future__ import annotations

RESERVE = 1  # requests of the burst held back
DECREASE = 0.5  # multiplicative decrease on throttling
FLOOR_FRACTION = 1 / 16  # the lowest rate, as a share of the configured one
RECOVERY_SECONDS = 10.0  # from half the configured rate back to all of it


def usable_burst(burst: int) -> int:
    """The bucket's capacity for a quota's burst: the burst less the reserve, at least 1."""
    return max(1, burst - RESERVE)


def throttled_rate(rate: float, configured: float) -> float:
    """The rate right after a ThrottlingException at `rate`."""
    return max(configured * FLOOR_FRACTION, rate * DECREASE)


def recovered_rate(
    rate: float, configured: float, elapsed: float, recovery: float = RECOVERY_SECONDS
) -> float:
    """The rate `elapsed` seconds after it was `rate`, climbing linearly back to `configured`.

    Args:
        recovery: seconds the climb from half the configured rate to all of it takes.
    """
    step = configured * (1 - DECREASE) / recovery * max(0.0, elapsed)
    return min(configured, rate + step)
