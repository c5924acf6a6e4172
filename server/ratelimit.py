"""A token bucket with an injected clock: no I/O, so the poller and the emulator share it.

The Connect quota is "N requests per second with a burst of B": a bucket of capacity B refilled
at N tokens per second is exactly that contract.
"""

from __future__ import annotations

import math


class TokenBucket:
    """Token bucket; `now` is any monotonic clock reading in seconds, passed by the caller.

    Args:
        rate: tokens added per second; `math.inf` disables limiting.
        burst: capacity of the bucket (at least 1).
        now: the clock reading at creation; the bucket starts full.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate)

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take `n` tokens if available; return whether they were taken."""
        if self.unlimited:
            return True
        self._refill(now)
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def wait_time(self, now: float, n: float = 1.0) -> float:
        """Seconds until `n` tokens will be available (0 if they are now)."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def reconfigure(self, rate: float, burst: float, now: float) -> None:
        """Change rate and burst, keeping the tokens already earned (capped at the new burst)."""
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._refill(now)
        self.rate = rate
        self.burst = float(burst)
        self._tokens = min(self._tokens, self.burst)
