"""Positions inferred from what Amazon Connect tells about a queue, end to end with real parts:
the emulator posting its contact events to `queuecast serve` over HTTP (as an EventBridge API
destination), the service reading the emulator through aioboto3, a real redis-server and real
WebSocket clients. The rules themselves are unit-tested in tests/unit/test_queue_book.py; here
each is seen through the whole path, against the emulator's truth.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.test_contact_events import WAIT, emulator_posting_to_service
from tests.support.wsclient import WsClient, ws_client

pytestmark = pytest.mark.e2e


class Shown:
    """Everything one socket was told, by contact, read as it comes."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.events: dict[str, list[dict]] = {}

    async def until(self, contact: str, wanted: Any, timeout: float = WAIT) -> dict:
        """The first event of `contact`, told before or after this call, that `wanted`."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events.get(contact, []):
                    if wanted(event):
                        return event
                message = await self.ws.next()
                if "contact" in message:
                    self.events.setdefault(message["contact"], []).append(message)


async def watched_in_line(ws: WsClient, contacts: list[str]) -> Shown:
    """Subscribe to `contacts` (queued in that order) and read until the last is shown at its
    place."""
    shown = Shown(ws)
    for contact in contacts:
        await ws.subscribe(contact)
    await shown.until(contacts[-1], lambda e: e.get("position") == len(contacts))
    return shown


async def test_events_move_everyone_at_once_and_say_how_the_wait_ended(redis_server):
    """Events delivered twice and out of order: CONNECTED_TO_AGENT of the head moves everyone
    behind up at once (inferred), ends the head with its reason, and no late QUEUED revives it."""
    async with emulator_posting_to_service(redis_server.url) as (emulator, service):
        await emulator.put_config(eventDelivery={"duplication": 1.0, "maxDelay": 0.3})
        contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(4)]
        async with ws_client(service.ws_url) as ws:
            shown = Shown(ws)
            for contact in contacts:
                await ws.subscribe(contact)
            last = await shown.until(contacts[3], lambda e: e.get("position") == 4)
            await emulator.connect(contacts[0])
            ended = await shown.until(contacts[0], lambda e: e["type"] == "ended")
            assert ended["reason"] == "connected_to_agent"
            moved = await shown.until(contacts[3], lambda e: e.get("position") == 3)
            assert moved["seq"] > last["seq"]
            truth = await emulator.contact_truth(contacts[3])
            assert truth["position"] == 3
            await emulator.abandon(contacts[1])
            gone = await shown.until(contacts[1], lambda e: e["type"] == "ended")
            assert gone["reason"] == "disconnected"
            await shown.until(contacts[3], lambda e: e.get("position") == 2)
            # Duplicated, reordered copies of the ended contacts' events changed nothing.
            await asyncio.sleep(1.0)
            status = await service.status()
            assert status["queues"]["waiting"] == 2


async def test_a_contact_queuecast_never_heard_of_is_counted_by_a_read(redis_server):
    """A caller whose QUEUED event was lost waits ahead of a watched contact: the book first
    says 1, and the read of the watched contact (or the queue-level count) corrects it."""
    async with emulator_posting_to_service(redis_server.url) as (emulator, service):
        await emulator.put_config(eventDelivery={"loss": 1.0})
        await emulator.create_contact("sales")  # nobody hears of this one
        await emulator.put_config(eventDelivery={"loss": 0.0})
        mine = (await emulator.create_contact("sales"))["contactId"]
        async with ws_client(service.ws_url) as ws:
            shown = Shown(ws)
            await ws.subscribe(mine)
            right = await shown.until(mine, lambda e: e.get("position") == 2)
            assert (await emulator.contact_truth(mine))["position"] == 2
            assert right["type"] in ("snapshot", "update")


async def test_a_priority_contact_jumps_ahead_and_everyone_behind_moves_back(redis_server):
    """Events carry no priority: DescribeContact (or a read) places a priority 1 arrival ahead
    of the watched contacts, whose positions then move back by one, as Connect routes."""
    async with emulator_posting_to_service(redis_server.url) as (emulator, service):
        contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
        async with ws_client(service.ws_url) as ws:
            shown = await watched_in_line(ws, contacts)
            vip = (await emulator.create_contact("sales", priority=1))["contactId"]
            await ws.subscribe(vip)
            await shown.until(vip, lambda e: e.get("position") == 1)
            behind = await shown.until(contacts[2], lambda e: e.get("position") == 4)
            assert behind["basis"] in ("inferred", "read")
            assert (await emulator.contact_truth(contacts[2]))["position"] == 4


async def test_a_priority_caller_nobody_watches_is_described_and_moves_the_watched_back(
    redis_server,
):
    """A caller with no widget comes in at priority 1: its QUEUED event puts it last (events
    carry no priority), so every watched contact would go on being shown one place too far
    ahead. Its QUEUED event made it wanted, so it is described like a watched one: it moves
    first and everyone moves back, with GetContactMetrics all but switched off (no read can
    do it instead)."""
    async with emulator_posting_to_service(
        redis_server.url, service_flags=("--rps", "0.001", "--burst", "1")
    ) as (emulator, service):
        contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
        async with ws_client(service.ws_url) as ws:
            shown = await watched_in_line(ws, contacts)
            reads = (await emulator.sim_stats())["getContactMetrics"]["total"]
            await emulator.create_contact("sales", priority=1)  # nobody subscribes to it
            for n, contact in enumerate(contacts, start=2):
                moved = await shown.until(contact, lambda e, n=n: e.get("position") == n)
                assert moved["basis"] == "inferred"
                assert (await emulator.contact_truth(contact))["position"] == n
            assert (await emulator.sim_stats())["getContactMetrics"]["total"] == reads
