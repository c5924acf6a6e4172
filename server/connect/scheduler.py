"""PollScheduler: which contact to poll next under the account's request budget. No I/O.

Each contact is due `interval` seconds after its last poll ended. A token bucket holds the
account rate. When more contacts are due than the rate allows, they are served earliest-due
first, so every contact is still polled and the effective interval stretches evenly to
`n / rate`. One request of the burst is held in reserve: AWS's bucket counts arrivals, ours
counts departures, and network jitter between the two would otherwise now and then spend a
token AWS has not refilled yet. Throttling halves the allowed rate at once and it recovers
linearly (AIMD), so a quota lower than configured is found instead of hammered.
"""

from __future__ import annotations

import heapq
import itertools
import math

from server.ratelimit import TokenBucket


class PollScheduler:
    """Earliest-due-first scheduling of keys under a token bucket, with AIMD on throttling.

    Args:
        rate: requests per second configured for the account.
        burst: bucket capacity.
        interval: seconds between two polls of one key, at the most often.
        now: monotonic clock reading.
        recovery: seconds for the rate to climb back from half to the configured rate.
    """

    def __init__(
        self, rate: float, burst: int, interval: float, now: float, recovery: float = 10.0
    ) -> None:
        self.configured_rate = rate
        self.interval = interval
        self.recovery = recovery
        self._bucket = TokenBucket(rate, max(1, burst - 1), now)
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # key -> due time, for keys waiting in the heap
        self._in_flight: set[str] = set()
        self._removed_in_flight: set[str] = set()
        self._counter = itertools.count()
        self._rate_stamp = now
        self.throttles = 0

    # -- membership ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._due) + len(self._in_flight) - len(self._removed_in_flight)

    def __contains__(self, key: str) -> bool:
        return key in self._due or (key in self._in_flight and key not in self._removed_in_flight)

    def add(self, key: str, now: float) -> None:
        """Schedule `key` to be polled now (no-op if already scheduled)."""
        if key in self._removed_in_flight:
            self._removed_in_flight.discard(key)
            return
        if key in self._due or key in self._in_flight:
            return
        self._push(key, now)

    def remove(self, key: str) -> None:
        if key in self._in_flight:
            self._removed_in_flight.add(key)
        self._due.pop(key, None)  # its heap entry is skipped lazily

    def _push(self, key: str, due: float) -> None:
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._counter), key))

    # -- decisions -------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        return self._bucket.rate

    def effective_interval(self) -> float:
        """Seconds between two polls of one key with the current number of keys and rate."""
        n = len(self)
        return max(self.interval, n / self.rate) if n else self.interval

    def next_due(self, now: float) -> tuple[str | None, float]:
        """Take the key to poll now, or say how long to wait.

        Returns:
            `(key, 0.0)` when a key is due and a request token was taken; the key is then in
            flight until `done`. `(None, seconds)` otherwise (`math.inf` with nothing scheduled).
        """
        self._recover(now)
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # removed or rescheduled since
                continue
            if due > now:
                return None, due - now
            wait = self._bucket.wait_time(now)
            if wait > 0:
                return None, wait
            self._bucket.try_take(now)
            heapq.heappop(self._heap)
            del self._due[key]
            self._in_flight.add(key)
            return key, 0.0
        return None, math.inf

    def done(self, key: str, now: float, retry_in: float | None = None) -> None:
        """The poll of `key` ended; schedule the next one.

        Args:
            retry_in: for a failed poll, the backoff delay, used instead of the interval.
        """
        self._in_flight.discard(key)
        if key in self._removed_in_flight:
            self._removed_in_flight.discard(key)
            return
        self._push(key, now + (self.interval if retry_in is None else retry_in))

    def throttled(self, now: float) -> None:
        """The API said ThrottlingException: halve the rate and empty the bucket."""
        self._recover(now)
        self.throttles += 1
        new_rate = max(self.configured_rate / 16, self._bucket.rate / 2)
        self._bucket.reconfigure(new_rate, self._bucket.burst, now)
        self._bucket.try_take(now, self._bucket.tokens(now))
        self._rate_stamp = now

    def _recover(self, now: float) -> None:
        rate = self._bucket.rate
        if rate >= self.configured_rate:
            self._rate_stamp = now
            return
        step = self.configured_rate / 2 / self.recovery * max(0.0, now - self._rate_stamp)
        self._rate_stamp = now
        self._bucket.reconfigure(min(self.configured_rate, rate + step), self._bucket.burst, now)
