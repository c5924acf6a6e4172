"""Positions without contact events, from queue listings (SearchContacts), end to end: the
emulator over HTTP through aioboto3, `queuecast serve` with a real redis-server, real
WebSocket clients, everything checked against the emulator's truth.

GetContactMetrics and DescribeContact are held to one call each (a quota far below one per
contact): whatever the subscriber is shown beyond that comes from the listings and the queue
figures. The rules themselves are unit-tested in tests/unit/test_queue_listing.py.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_contact_events import WAIT
from tests.e2e.test_queue_inference import Shown
from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

SEARCH_QUOTA = {"searchContacts": {"rps": 5, "burst": 5}}
SCARCE = (
    *("--rps", "0.01", "--burst", "1"),
    *("--describe-rps", "0.01", "--describe-burst", "1"),
    *("--queue-listing-interval", "0.3", "--search-lag", "0.5"),
    *("--search-rps", "5", "--search-burst", "5"),
)


async def listing_status(service) -> dict:
    return (await service.status())["queueListing"]


async def test_a_listing_places_a_contact_behind_callers_nobody_watches(emulator, redis_server):
    await emulator.put_config(searchLagSeconds=0.2, quotas=SEARCH_QUOTA)
    others = [(await emulator.create_contact("sales"))["contactId"] for _ in range(12)]
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with (
        start_service_process(emulator, redis_server.url, *SCARCE) as service,
        ws_client(service.ws_url) as ws,
    ):
        shown = Shown(ws)
        await ws.subscribe(mine)
        await shown.until(mine, lambda e: e.get("position") == 13)
        assert (await emulator.contact_truth(mine))["position"] == 13
        assert (await listing_status(service))["listings"]["complete"] >= 1
        # A caller nobody watches hangs up in the middle of the line, then the head is served:
        # the count and the next listings move the watched contact, still without a read.
        await emulator.abandon(others[5])
        await shown.until(mine, lambda e: e.get("position") == 12)
        await emulator.connect(others[0])
        await shown.until(mine, lambda e: e.get("position") == 11)
        assert (await emulator.contact_truth(mine))["position"] == 11
        stats = await emulator.sim_stats()
        assert stats["getContactMetrics"]["total"] <= 2
        assert stats["searchContacts"]["total"] >= 2


async def test_a_listing_tells_how_a_wait_ended(emulator, redis_server):
    """The read that would see the contact leave is far off (the quota): the listing shows it
    connected to an agent, and the subscriber is told so, with that reason."""
    await emulator.put_config(searchLagSeconds=0.2, quotas=SEARCH_QUOTA)
    first = (await emulator.create_contact("sales"))["contactId"]
    second = (await emulator.create_contact("sales"))["contactId"]
    async with (
        start_service_process(emulator, redis_server.url, *SCARCE) as service,
        ws_client(service.ws_url) as ws,
    ):
        shown = Shown(ws)
        await ws.subscribe(first)
        await ws.subscribe(second)
        await shown.until(second, lambda e: e.get("position") == 2)
        await shown.until(first, lambda e: e.get("position") == 1)
        await emulator.connect(first)
        ended = await shown.until(first, lambda e: e["type"] == "ended")
        assert ended["reason"] == "connected_to_agent"
        await shown.until(second, lambda e: e.get("position") == 1)


async def test_listing_throttled_is_reported_and_positions_recover(emulator, redis_server):
    """The account's SearchContacts quota is below what the service was told: throttled, the
    status says so, nothing crashes, and once the quota allows the contact is placed."""
    await emulator.put_config(
        searchLagSeconds=0.2, quotas={"searchContacts": {"rps": 0.01, "burst": 1}}
    )
    for _ in range(3):
        await emulator.create_contact("sales")
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with (
        start_service_process(emulator, redis_server.url, *SCARCE) as service,
        ws_client(service.ws_url) as ws,
    ):
        shown = Shown(ws)
        await ws.subscribe(mine)

        async def last_error() -> str | None:
            return (await listing_status(service))["lastError"]

        async with asyncio.timeout(WAIT):
            while not await last_error():
                await asyncio.sleep(0.1)
        assert "throttled" in (await last_error() or "")
        await emulator.put_config(quotas={"searchContacts": {"rps": 5, "burst": 5}})
        await shown.until(mine, lambda e: e.get("position") == 4, timeout=3 * WAIT)
        async with asyncio.timeout(3 * WAIT):
            while await last_error():
                await asyncio.sleep(0.1)
