"""PollScheduler: which tracked contact to read next, and why. No I/O.

Polling each contact in turn cannot keep positions right under Amazon Connect's quota (200
contacts at 2 requests/s is one read each every 100 s, while every dequeue moves everyone
behind). Reads are therefore spent where they buy the most correctness, by purpose:

1. `first_read`: a new contact nothing has placed yet (no event, no DescribeContact, no read):
   its subscriber sees nothing until it is read.
2. `confirm`: a contact the queue book presumes gone (a count or a read behind it said so):
   one read settles it. The book already leaves it out of everyone's count, so only its own
   subscriber waits for this read; one who sees nothing at all waits first.
3. `probe`: everything else, scored by how much a read could correct. A read of a contact
   checks the count of everyone ahead of it, so a contact far back whose last read is old
   scores highest; the wait estimate is refreshed on the way.

Within one purpose the best score goes first, then the earliest eligible. The scheduler also
keeps each contact's earliest next read: `interval` after its last one (a contact is never read
more often), or a failed read's backoff. The account's request budget is not here: the caller
asks it (server/connect/budget.py) before taking a contact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from enum import IntEnum


class Purpose(IntEnum):
    """Why a contact is read; lower goes first."""

    FIRST_READ = 0
    CONFIRM = 1
    PROBE = 2

    @property
    def label(self) -> str:
        return self.name.lower()


#: For one contact: its purpose and a score (higher goes first within the purpose).
Rank = Callable[[str], tuple[Purpose, float]]


def _fifo(_key: str) -> tuple[Purpose, float]:
    return Purpose.PROBE, 0.0


class PollScheduler:
    """Tracked contacts, each with the earliest time it may be read again.

    Args:
        interval: seconds between two reads of one contact, at the most often.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        # Keys waiting: when each is eligible, and a counter that breaks ties first come,
        # first served (so that, all else equal, every key gets its turn).
        self._not_before: dict[str, tuple[float, int]] = {}
        self._in_flight: dict[str, tuple[float, int]] = {}  # with the entry it was taken from
        self._removed_in_flight: set[str] = set()
        self._counter = itertools.count()

    # -- membership ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._not_before) + len(self._in_flight) - len(self._removed_in_flight)

    def __contains__(self, key: str) -> bool:
        return key in self._not_before or (
            key in self._in_flight and key not in self._removed_in_flight
        )

    def add(self, key: str, now: float) -> None:
        """Make `key` eligible now (no-op if already scheduled)."""
        if key in self._removed_in_flight:
            self._removed_in_flight.discard(key)
            return
        if key in self._not_before or key in self._in_flight:
            return
        self._not_before[key] = (now, next(self._counter))

    def add_at(self, key: str, not_before: float) -> None:
        """Schedule `key` to be eligible from `not_before` (e.g. taken over mid-rhythm)."""
        self.add(key, not_before)

    def remove(self, key: str) -> None:
        if key in self._in_flight:
            self._removed_in_flight.add(key)
        self._not_before.pop(key, None)

    # -- decisions -------------------------------------------------------------------------

    def effective_interval(self, rate: float) -> float:
        """Seconds between two reads of one contact if every contact were read in turn."""
        n = len(self)
        return max(self.interval, n / rate) if n and rate > 0 else self.interval

    def next_due(self, now: float, rank: Rank = _fifo) -> tuple[str | None, float]:
        """Take the contact to read now, or say how long until one is eligible.

        Returns:
            `(key, 0.0)`: the key is in flight until `done`. `(None, seconds)` otherwise
            (`math.inf` with nothing scheduled).
        """
        best: tuple[Purpose, float, float, int] | None = None
        best_key: str | None = None
        soonest = math.inf
        for key, (not_before, turn) in self._not_before.items():
            if not_before > now:
                soonest = min(soonest, not_before)
                continue
            purpose, score = rank(key)
            candidate = (purpose, -score, not_before, turn)
            if best is None or candidate < best:
                best, best_key = candidate, key
        if best_key is None:
            return None, soonest - now if soonest < math.inf else math.inf
        self._in_flight[best_key] = self._not_before.pop(best_key)
        return best_key, 0.0

    def done(self, key: str, now: float, retry_in: float | None = None) -> None:
        """The read of `key` ended; it is eligible again `interval` (or `retry_in`) later."""
        self._in_flight.pop(key, None)
        if key in self._removed_in_flight:
            self._removed_in_flight.discard(key)
            return
        due = now + (self.interval if retry_in is None else retry_in)
        self._not_before[key] = (due, next(self._counter))

    def give_back(self, key: str) -> None:
        """`key` was taken but not read (no budget): back in its place in line."""
        entry = self._in_flight.pop(key, None)
        if key in self._removed_in_flight:
            self._removed_in_flight.discard(key)
            return
        if entry is not None:
            self._not_before[key] = entry
