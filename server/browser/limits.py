"""Per-client limits: message rate with strikes, sockets per address. No I/O.

The clock is passed in by the caller (any monotonic reading in seconds), as in `TokenBucket`.
"""

from __future__ import annotations

import enum
from collections import Counter

from server.ratelimit import TokenBucket

STRIKE_FORGIVENESS_PER_SECOND = 1.0


class Admission(enum.Enum):
    ADMIT = "admit"
    DROP_AND_TELL = "drop_and_tell"  # the first dropped message of a run: answer `rate_limited`
    DROP = "drop"  # further drops in the same run: answered by silence
    CLOSE = "close"  # persistent abuse


class MessageRate:
    """Messages per second of one socket, with a burst of twice the rate.

    A message over the rate is dropped and counts a strike; strikes are forgiven at one per
    second, and a socket with more than `strikes` of them is to be closed. So a client that
    briefly bursts is only told `rate_limited`, while one that keeps flooding is cut off.
    """

    def __init__(self, rate: float, strikes: int, now: float) -> None:
        self._bucket = TokenBucket(rate, max(1.0, 2 * rate), now)
        self._max_strikes = strikes
        self._strikes = 0.0
        self._stamp = now
        self._dropping = False

    def admit(self, now: float) -> Admission:
        if now > self._stamp:
            forgiven = (now - self._stamp) * STRIKE_FORGIVENESS_PER_SECOND
            self._strikes = max(0.0, self._strikes - forgiven)
            self._stamp = now
        if self._bucket.try_take(now):
            self._dropping = False
            return Admission.ADMIT
        self._strikes += 1
        if self._strikes > self._max_strikes:
            return Admission.CLOSE
        if self._dropping:
            return Admission.DROP
        self._dropping = True
        return Admission.DROP_AND_TELL


class SocketsPerAddress:
    """Open sockets by client address, refusing more than `limit` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def try_open(self, address: str) -> bool:
        if self.limit and self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def close(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def __len__(self) -> int:
        return len(self._open)
