"""What queue listings (SearchContacts) add, end to end and without contact events: the
emulator over HTTP through aioboto3, `queuecast serve` with a real redis-server, real
WebSocket clients, everything checked against the emulator's truth.

GetContactMetrics and DescribeContact are held to their first burst (then one call per 100 s),
so what a subscriber is shown beyond that comes from the listings and the queue figures. The
rules themselves are unit-tested in tests/unit/test_queue_listing.py.
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
    *("--rps", "0.01", "--burst", "5"),
    *("--describe-rps", "0.01", "--describe-burst", "5"),
    *("--queue-listing-interval", "0.3", "--search-lag", "0.5"),
    *("--search-rps", "5", "--search-burst", "5"),
)


async def listing_status(service) -> dict:
    return (await service.status())["queueListing"]


async def until(check, timeout: float = WAIT):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
    return result


async def test_a_listing_tells_how_a_wait_ended(emulator):
    """Every call of both per-contact quotas is spent placing the three contacts (the
    in-process bus: its budgets grant exactly their usable burst, one below the quota's, where
    Redis's shared bucket may grant one more), so only the listing can tell that one hung up
    and one was connected."""
    await emulator.put_config(searchLagSeconds=0.2, quotas=SEARCH_QUOTA)
    first = (await emulator.create_contact("sales"))["contactId"]
    second = (await emulator.create_contact("sales"))["contactId"]
    third = (await emulator.create_contact("sales"))["contactId"]
    exact = (
        *("--rps", "0.001", "--burst", "4"),
        *("--describe-rps", "0.001", "--describe-burst", "4"),
        *SCARCE[8:],
    )
    async with (
        start_service_process(emulator, None, *exact) as service,
        ws_client(service.ws_url) as ws,
    ):
        shown = Shown(ws)
        for contact in (first, second, third):
            await ws.subscribe(contact)
        await shown.until(third, lambda e: e.get("position") == 3)
        await emulator.abandon(second)
        gone = await shown.until(second, lambda e: e["type"] == "ended")
        assert gone["reason"] == "disconnected"
        await emulator.connect(first)
        ended = await shown.until(first, lambda e: e["type"] == "ended")
        assert ended["reason"] == "connected_to_agent"
        await shown.until(third, lambda e: e.get("position") == 1)
        stats = await emulator.sim_stats()
        assert stats["getContactMetrics"]["total"] == 3
        assert stats["describeContact"]["total"] == 3
        assert stats["searchContacts"]["total"] >= 2


async def test_how_a_wait_ended_is_told_without_events(emulator, redis_server):
    """Without contact events the subscriber still learns why the wait ended (connected to an
    agent, or hung up): from the listing (the read that would see the contact leave is far
    off, the quota), or from the DescribeContact that follows a read seeing it leave."""
    await emulator.put_config(searchLagSeconds=0.2, quotas=SEARCH_QUOTA)
    first = (await emulator.create_contact("sales"))["contactId"]
    second = (await emulator.create_contact("sales"))["contactId"]
    third = (await emulator.create_contact("sales"))["contactId"]
    async with (
        start_service_process(emulator, redis_server.url, *SCARCE) as service,
        ws_client(service.ws_url) as ws,
    ):
        shown = Shown(ws)
        for contact in (first, second, third):
            await ws.subscribe(contact)
        await shown.until(third, lambda e: e.get("position") == 3)
        await emulator.abandon(second)
        gone = await shown.until(second, lambda e: e["type"] == "ended")
        assert gone["reason"] == "disconnected"
        await shown.until(third, lambda e: e.get("position") == 2)
        await emulator.connect(first)
        ended = await shown.until(first, lambda e: e["type"] == "ended")
        assert ended["reason"] == "connected_to_agent"
        await shown.until(third, lambda e: e.get("position") == 1)
        assert (await emulator.contact_truth(third))["position"] == 1


async def test_listed_waiting_chats_fill_the_wallboard_without_events(emulator, redis_server):
    """Where Connect lists queued contacts (chat, tasks, email; the emulator's
    `searchIncludesQueued`), the listing names every caller of the queue: the wallboard's
    queue read shows them all, in the emulator's order, none read one by one."""
    await emulator.put_config(searchLagSeconds=0.2, searchIncludesQueued=True, quotas=SEARCH_QUOTA)
    created = [await emulator.create_contact("sales") for _ in range(10)]
    contacts = [c["contactId"] for c in created]
    async with (
        start_service_process(emulator, redis_server.url, *SCARCE) as service,
        ws_client(service.ws_url) as ws,
    ):
        await ws.subscribe(contacts[-1])
        queue = (await emulator.contact_truth(contacts[-1]))["queueId"]

        async def board() -> dict | None:
            body = (await service.http.get(f"/v1/queues/{queue}")).json()
            listed = {c["contact"]: c.get("position") for c in body.get("contacts", [])}
            return body if len(listed) == len(contacts) and None not in listed.values() else None

        body = await until(board, 3 * WAIT)
        for entry in body["contacts"]:
            truth = await emulator.contact_truth(entry["contact"])
            assert entry["position"] == truth["position"], entry
        assert (await emulator.sim_stats())["getContactMetrics"]["total"] <= 5  # the burst


async def test_listing_throttled_is_reported_and_recovers(emulator, redis_server):
    """The account's SearchContacts quota is below what the service was told: throttled, the
    status says so, nothing crashes, and listings resume once the quota allows."""
    await emulator.put_config(
        searchLagSeconds=0.2, quotas={"searchContacts": {"rps": 0.01, "burst": 1}}
    )
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with (
        start_service_process(emulator, redis_server.url, *SCARCE) as service,
        ws_client(service.ws_url) as ws,
    ):
        await ws.subscribe(mine)

        async def failing() -> str | None:
            return (await listing_status(service))["lastError"]

        assert "throttled" in await until(failing)
        await emulator.put_config(quotas=SEARCH_QUOTA)

        async def recovered() -> bool:
            status = await listing_status(service)
            return status["lastError"] is None and status["calls"].get("ok", 0) >= 2

        await until(recovered, 3 * WAIT)
