"""The account's request budget for one Connect API: asked before every call. One interface,
two homes: in this process, or shared by every replica through Redis.

Both follow the same rules (server/connect/budget_rules.py: a token bucket with one request of
the burst held in reserve, and AIMD on throttling: halve at once, climb back linearly); the
shared one runs them in a Lua script on Redis' clock (server/connect/coordination.py), this
module's local one in Python.
"""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import Callable

from server.bus import BusUnavailable
from server.connect.budget_rules import (
    RECOVERY_SECONDS,
    recovered_rate,
    throttled_rate,
    usable_burst,
)
from server.connect.coordination import BudgetName, Coordinator
from server.ratelimit import TokenBucket

SHARED_RETRY = 0.25  # seconds before asking Redis again after a refusal or an outage


class Budget(abc.ABC):
    """Requests per second for one API, for the whole AWS account."""

    configured_rate: float

    @abc.abstractmethod
    async def take(self, now: float) -> float:
        """Take one request. Returns 0.0 when it may go now, else seconds to wait first."""

    @abc.abstractmethod
    async def throttled(self, now: float) -> None:
        """AWS answered ThrottlingException: slow down."""

    @abc.abstractmethod
    def rate(self, now: float) -> float:
        """The rate allowed now (below the configured one after throttling)."""

    def not_before(self, now: float) -> float:
        """Seconds until a `take` could succeed, without taking: 0.0 when it may, or when
        only asking would tell (a shared budget). Lets a caller skip costly work (ranking
        every contact) that a refusal would waste."""
        return 0.0

    @property
    def shared(self) -> bool:
        return False


class LocalBudget(Budget):
    """A token bucket in this process (one replica, or the in-process bus)."""

    def __init__(
        self, rate: float, burst: int, now: float, recovery: float = RECOVERY_SECONDS
    ) -> None:
        self.configured_rate = rate
        self.recovery = recovery
        self._bucket = TokenBucket(rate, usable_burst(burst), now)
        self._rate_stamp = now

    async def take(self, now: float) -> float:
        return self.take_now(now)

    def take_now(self, now: float) -> float:
        """`take`, for callers without an event loop (the same rules)."""
        self._recover(now)
        wait = self._bucket.wait_time(now)
        if wait > 0:
            return wait
        self._bucket.try_take(now)
        return 0.0

    def not_before(self, now: float) -> float:
        self._recover(now)
        return self._bucket.wait_time(now)

    async def throttled(self, now: float) -> None:
        self.throttle_now(now)

    def throttle_now(self, now: float) -> None:
        """`throttled`, for callers without an event loop."""
        self._recover(now)
        new_rate = throttled_rate(self._bucket.rate, self.configured_rate)
        self._bucket.reconfigure(new_rate, self._bucket.burst, now)
        self._bucket.try_take(now, self._bucket.tokens(now))
        self._rate_stamp = now

    def rate(self, now: float) -> float:
        self._recover(now)
        return self._bucket.rate

    def _recover(self, now: float) -> None:
        rate = self._bucket.rate
        if rate >= self.configured_rate or math.isinf(rate):
            self._rate_stamp = now
            return
        elapsed, self._rate_stamp = now - self._rate_stamp, now
        new_rate = recovered_rate(rate, self.configured_rate, elapsed, self.recovery)
        self._bucket.reconfigure(new_rate, self._bucket.burst, now)


class SharedBudget(Budget):
    """The budget every replica on one Redis shares (the coordinator's Lua bucket)."""

    def __init__(self, coordinator: Coordinator, name: BudgetName, rate: float) -> None:
        self.configured_rate = rate
        self._coordinator = coordinator
        self._name = name

    @property
    def shared(self) -> bool:
        return True

    async def take(self, now: float) -> float:
        try:
            granted = await self._coordinator.acquire(self._name, wait=False)
        except BusUnavailable:
            return SHARED_RETRY  # nothing a call learns could be published now
        if granted:
            return 0.0
        return min(SHARED_RETRY, 1.0 / max(self.rate(now), 1e-3))

    async def throttled(self, now: float) -> None:
        try:
            await self._coordinator.throttled(self._name)
        except BusUnavailable:
            return

    def rate(self, now: float) -> float:
        shared = self._coordinator.shared_rate(self._name)
        return self.configured_rate if shared is None else shared


async def granted(budget: Budget, clock: Callable[[], float]) -> None:
    """Wait until `budget` grants one request (for a loop with nothing else to do meanwhile)."""
    while True:
        wait = await budget.take(clock())
        if not wait:
            return
        await asyncio.sleep(wait)
