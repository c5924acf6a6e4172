"""The shared budget's Lua bucket (RedisCoordinator) on a real redis-server and a cluster:
it follows the rules of server/connect/budget_rules.py, the same functions the local budget
calls, with their numbers given to the script as arguments."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.app import redis_client
from server.connect.budget_rules import (
    FLOOR_FRACTION,
    recovered_rate,
    throttled_rate,
    usable_burst,
)
from server.connect.coordination import RedisCoordinator

RATE, BURST, RECOVERY = 2.0, 5, 0.4


@pytest.fixture
async def coordinator(listener_harness):
    client = redis_client(listener_harness.url)
    shared = RedisCoordinator(
        client, None, budgets={"metrics": (RATE, BURST)}, recovery=RECOVERY, replica_id="r-1"
    )
    try:
        yield shared
    finally:
        await shared.close()
        await client.aclose()


async def test_the_burst_less_the_reserve_goes_at_once(coordinator) -> None:
    granted = [await coordinator.acquire("metrics", wait=False) for _ in range(BURST)]
    assert granted.count(True) == usable_burst(BURST) == BURST - 1
    assert granted[-1] is False


async def test_throttling_halves_down_to_the_floor_then_climbs_back_linearly(coordinator) -> None:
    assert await coordinator.throttled("metrics") == throttled_rate(RATE, RATE) == RATE / 2
    for _ in range(6):
        rate = await coordinator.throttled("metrics")
    assert rate == RATE * FLOOR_FRACTION  # a sixteenth of the configured rate

    started = time.monotonic()
    await asyncio.sleep(RECOVERY / 2)
    await coordinator.acquire("metrics", wait=False)  # every call brings the rate up to date
    elapsed = time.monotonic() - started
    climbed = coordinator.shared_rate()
    assert recovered_rate(rate, RATE, RECOVERY / 2, RECOVERY) <= climbed
    assert climbed <= recovered_rate(rate, RATE, elapsed + 0.05, RECOVERY)

    await asyncio.sleep(2 * RECOVERY)  # from the floor: longer than from half
    await coordinator.acquire("metrics", wait=False)
    assert coordinator.shared_rate() == RATE  # and no higher
