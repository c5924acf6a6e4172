"""Contact events across replicas (real processes on one redis-server): an event posted to one
replica is applied by every replica, once; the same event retried at another replica is a
duplicate; a replica started later replays what is recent, so it knows who is waiting."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.scaleout.conftest import replicas
from tests.support import TIMEOUT_SCALE
from tests.support.contact_events import queued_for
from tests.support.service import ServiceHandle, start_service_process

pytestmark = pytest.mark.e2e

EVENTS_KEY = "scaleout-events-key-0123456789"
KEY = {"X-Queuecast-Events-Key": EVENTS_KEY}
WAIT = 15.0 * TIMEOUT_SCALE


def queued(emulator, n: int) -> dict[str, Any]:
    return queued_for(emulator.region, emulator.instance_id, f"scaleout-{n}-{uuid.uuid4()}")


async def applied_everywhere(services: list[ServiceHandle], count: int) -> list[dict[str, Any]]:
    """Each replica's `contactEvents` once every one has applied `count` events."""
    async with asyncio.timeout(WAIT):
        while True:
            statuses = [(await s.status())["contactEvents"] for s in services]
            if all(status["applied"] >= count for status in statuses):
                return statuses
            await asyncio.sleep(0.1)


async def test_an_event_taken_by_one_replica_is_applied_by_every_replica_once(
    emulator, redis_server
):
    async with replicas(emulator, redis_server.url, 2, "--events-key", EVENTS_KEY) as services:
        a, b = services
        envelopes = [queued(emulator, n) for n in range(5)]
        taken = await a.http.post("/v1/events", json=envelopes, headers=KEY)
        assert taken.json() == {"accepted": 5, "duplicates": 0, "ignored": 0}
        # EventBridge retries one at the other replica: a duplicate there.
        retried = await b.http.post("/v1/events", json=envelopes[2], headers=KEY)
        assert retried.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
        on_a, on_b = await applied_everywhere(services, 5)
        await asyncio.sleep(0.5)  # nothing more comes
        for replica in (a, b):
            later = await replica.status()
            assert later["contactEvents"]["applied"] == 5, later["contactEvents"]
            assert later["contactEvents"]["read"] == 5
            assert later["events"]["QUEUED"] == 5  # what the queue model made of them
        assert on_a["accepted"] == 5 and on_b["accepted"] == 0 and on_b["duplicates"] == 1

        # A replica that starts now replays the recent log: it knows who is waiting.
        async with start_service_process(
            emulator, redis_server.url, "--replica-id", "late", "--events-key", EVENTS_KEY
        ) as late:
            (status,) = await applied_everywhere([late], 5)
            assert status["applied"] == 5 and status["accepted"] == 0
            more = await late.http.post("/v1/events", json=queued(emulator, 9), headers=KEY)
            assert more.json()["accepted"] == 1
            await applied_everywhere([a, b, late], 6)
