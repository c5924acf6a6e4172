"""The streaming state: once a socket holds a contact's newest update the bus writes the next
ones to it directly (`Bus.attach`). Real service process, real Redis, real WebSocket clients:
what a client receives must be what the ordinary path would give it, and a client that stops
reading must still be cut off rather than buffered without end."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis.asyncio as aioredis

from server.bus.redis import RedisBackend
from server.events import encode_head
from tests.e2e.test_gateway import _small_buffer_socket
from tests.support.service import ServiceHandle, start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


async def bus_writers(service: ServiceHandle) -> float:
    text = (await service.http.get("/metrics")).text
    found = re.search(r"^queuecast_bus_writers (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


async def commit_updates(redis_url: str, instance: str, contact: str, positions: range) -> None:
    """Commit states through the service's own Lua commit, so seqs follow the poller's."""
    client = aioredis.from_url(redis_url)
    try:
        backend = RedisBackend(client)
        for position in positions:
            head = encode_head(
                "update",
                instance=instance,
                contact=contact,
                queue=None,
                position=position,
                ewt=position,
                at="2026-01-01T00:00:00.000Z",
                stale=False,
                reason="x" * 1000 if position > 5 else None,  # big frames fill buffers sooner
            )
            await backend.commit(contact, None, head, ttl=60, ended=False)
            if position % 50 == 0:
                await asyncio.sleep(0)
    finally:
        await client.aclose()


async def test_streamed_updates_arrive_in_order_and_pings_are_still_answered(
    emulator, redis_server
):
    contact = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(contact)
            assert (await ws.next())["type"] == "snapshot"
            await commit_updates(redis_server.url, emulator.instance_id, contact, range(1000, 1003))
            for _ in range(3):
                assert await ws.next_matching(lambda m: m.get("position", 0) >= 1000)
            async with asyncio.timeout(5):
                while await bus_writers(service) < 1:
                    await asyncio.sleep(0.05)

            await ws.send({"op": "ping"})
            flood = asyncio.create_task(
                commit_updates(redis_server.url, emulator.instance_id, contact, range(2000, 2300))
            )
            seen: list[int] = []
            seqs: list[int] = []
            pongs = 0
            try:
                async with asyncio.timeout(20):
                    while len(seen) < 300:
                        message = await ws.next()
                        if message["type"] == "pong":
                            pongs += 1
                        elif message.get("position", 0) >= 2000:
                            seen.append(message["position"])
                            seqs.append(message["seq"])
            finally:
                await flood
            assert pongs == 1
            assert seen == list(range(2000, 2300)), "every update, in order, none twice"
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            # After the ping the socket streams again.
            async with asyncio.timeout(5):
                while await bus_writers(service) < 1:
                    await asyncio.sleep(0.05)


async def test_a_streamed_client_that_stops_reading_is_cut_off(emulator, redis_server):
    contact = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url, "--send-timeout", "1") as service:
        async with (
            ws_client(service.ws_url) as fast,
            ws_client(service.ws_url, max_queue=1, sock=_small_buffer_socket(service.url)) as slow,
        ):
            for client in (fast, slow):
                await client.subscribe(contact)
                assert (await client.next())["type"] == "snapshot"
            await commit_updates(redis_server.url, emulator.instance_id, contact, range(1, 3))
            for client in (fast, slow):
                await client.next_matching(lambda m: m.get("position") == 2)
            async with asyncio.timeout(5):
                while await bus_writers(service) < 2:
                    await asyncio.sleep(0.05)

            # `slow` reads no more; its buffers fill, the bus stops writing to it, and the
            # send timeout ends it. `fast` gets everything meanwhile.
            flood = asyncio.create_task(
                commit_updates(redis_server.url, emulator.instance_id, contact, range(10, 4010))
            )
            positions: set[int] = set()
            try:
                async with asyncio.timeout(30):
                    while 4009 not in positions:
                        positions.add((await fast.next()).get("position", 0))
            finally:
                await flood
            assert set(range(10, 4010)) <= positions
            async with asyncio.timeout(20):
                while (await service.status())["sockets"] != 1:
                    await asyncio.sleep(0.2)
            metrics = (await service.http.get("/metrics")).text
            assert 'queuecast_websocket_closed_total{reason="1013"} 1.0' in metrics
            await fast.send({"op": "ping"})
            assert (await fast.next_matching(lambda m: m["type"] == "pong"))["type"] == "pong"
