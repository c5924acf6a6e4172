"""What one replica learns by its own calls reaches the others' queue books (book news), end to
end: two `queuecast serve` processes on one redis-server, the emulator read through aioboto3,
real WebSocket clients, no contact events.

GetContactMetrics is all but switched off (one call per 1,000 s), so positions can only come
from DescribeContact (each replica describes the contacts it polls) and the queue's figures
(one replica reads them for all). Without book news a replica would know only the contacts it
described itself and never see the figures: it could show nobody a position.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.scaleout.conftest import replicas
from tests.support import TIMEOUT_SCALE
from tests.support.wsclient import WsClient, ws_client

pytestmark = pytest.mark.e2e

WAIT = 20 * TIMEOUT_SCALE
FLAGS = ("--rps", "0.001", "--burst", "1", "--queue-figures-interval", "0.5")


async def shown_as(client: WsClient, latest: dict[str, int], wanted: dict[str, int]) -> None:
    """Read `client` until the latest position it was told of each contact is `wanted`."""
    async with asyncio.timeout(WAIT):
        while any(latest.get(contact) != position for contact, position in wanted.items()):
            message = await client.next()
            if message.get("type") in ("snapshot", "update") and message.get("position"):
                latest[message["contact"]] = message["position"]


async def test_each_replica_shows_what_the_other_described_and_the_figures_lead_counted(
    emulator, redis_server
):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(6)]
    async with (
        replicas(emulator, redis_server.url, 2, *FLAGS) as services,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [await stack.enter_async_context(ws_client(s.ws_url)) for s in services]
        latest: list[dict[str, int]] = [{}, {}]
        for client in clients:
            for contact in contacts:
                await client.subscribe(contact)
        truth = {c: (await emulator.contact_truth(c))["position"] for c in contacts}
        assert sorted(truth.values()) == [1, 2, 3, 4, 5, 6]
        for client, seen in zip(clients, latest, strict=True):
            await shown_as(client, seen, truth)
        statuses = [await s.status() for s in services]
        assert sorted(s["tracked"] for s in statuses) == [3, 3]  # each polls its half
        for status in statuses:
            assert status["bookNews"]["shared"] and status["bookNews"]["connected"]
            assert status["bookNews"]["appliedByKind"].get("described", 0) >= 3
        non_lead = next(s for s in statuses if not s["queueFigures"]["leader"])
        assert non_lead["bookNews"]["appliedByKind"].get("figures", 0) >= 1

        # The head is answered: the figures lead sees one fewer waiting, and both replicas move
        # everyone behind up, still without a read of any of them.
        before = (await emulator.sim_stats())["getContactMetrics"]["total"]
        head = min(contacts, key=truth.__getitem__)
        await emulator.connect(head)
        moved = {c: p - 1 for c, p in truth.items() if c != head}
        assert moved == {c: (await emulator.contact_truth(c))["position"] for c in moved}
        for client, seen in zip(clients, latest, strict=True):
            await shown_as(client, seen, moved)
        assert (await emulator.sim_stats())["getContactMetrics"]["total"] - before <= 1
