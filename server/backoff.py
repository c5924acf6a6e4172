"""Capped exponential backoff with full jitter (the AWS architecture blog's recommendation)."""

from __future__ import annotations

import random


class Backoff:
    """Delays for successive retries: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads retries of many clients so that they do not return in a herd.
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        return min(self.cap, self.base * 2.0 ** min(self.attempt, 62))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
