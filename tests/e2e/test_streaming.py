"""The streaming state: once a socket holds a contact's newest update the bus writes the next
ones to it directly (`Bus.attach`). Real service process, real Redis, real WebSocket clients:
what a client receives must be what the ordinary path would give it, and a client that stops
reading must still be cut off rather than buffered without end. Each test runs through the
fast paths and through the public ones (`ws_paths`), where nothing is attached and every frame
goes the ordinary way: the client must not be able to tell."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis.asyncio as aioredis

from server.bus import Commit
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


def assert_delivered(seen: list[int], committed: range, ws_paths: str) -> None:
    """Streamed, a socket gets every update; the ordinary way a socket that falls behind gets
    the latest state of each contact instead of older ones (the outbox coalesces): in order,
    none twice, ending with the last."""
    if ws_paths == "fast":
        assert seen == list(committed), "every update, in order, none twice"
    else:
        assert seen == sorted(set(seen)), "in order, none twice"
        assert set(seen) <= set(committed) and seen[-1] == committed[-1]


async def sockets_drop_to(service: ServiceHandle, count: int, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            while (await service.status())["sockets"] != count:
                await asyncio.sleep(0.2)
    except TimeoutError:
        return False
    return True


async def streaming(service: ServiceHandle, sockets: int, ws_paths: str) -> None:
    """Wait until the bus writes to `sockets` sockets itself; through the public paths it
    never does (uvicorn's own protocol lends no socket)."""
    if ws_paths == "public":
        assert await bus_writers(service) == 0
        return
    async with asyncio.timeout(5):
        while await bus_writers(service) < sockets:
            await asyncio.sleep(0.05)


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
            await backend.commit(Commit(contact, None, head, ttl=60, ended=False))
            if position % 50 == 0:
                await asyncio.sleep(0)
    finally:
        await client.aclose()


async def test_streamed_updates_arrive_in_order_and_pings_are_still_answered(
    emulator, redis_server, ws_paths
):
    contact = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(contact)
            assert (await ws.next())["type"] == "snapshot"
            await commit_updates(redis_server.url, emulator.instance_id, contact, range(1000, 1003))
            assert await ws.next_matching(lambda m: m.get("position") == 1002)
            await streaming(service, 1, ws_paths)

            await ws.send({"op": "ping"})
            flood = asyncio.create_task(
                commit_updates(redis_server.url, emulator.instance_id, contact, range(2000, 2300))
            )
            seen: list[int] = []
            seqs: list[int] = []
            pongs = 0
            try:
                async with asyncio.timeout(20):
                    while 2299 not in seen:
                        message = await ws.next()
                        if message["type"] == "pong":
                            pongs += 1
                        elif message.get("position", 0) >= 2000:
                            seen.append(message["position"])
                            seqs.append(message["seq"])
            finally:
                await flood
            assert pongs == 1
            assert_delivered(seen, range(2000, 2300), ws_paths)
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            # After the ping the socket streams again.
            await streaming(service, 1, ws_paths)


async def test_a_streamed_client_that_stops_reading_is_cut_off(emulator, redis_server, ws_paths):
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
            await streaming(service, 2, ws_paths)

            # `slow` reads no more; its buffers fill, the bus stops writing to it, and the
            # send timeout ends it. `fast` gets everything meanwhile. The ordinary way writes
            # `slow` only what its buffers take and coalesces the rest, so filling them may take
            # more than one flood.
            for round_ in range(4):
                committed = range(10 + 4000 * round_, 4010 + 4000 * round_)
                flood = asyncio.create_task(
                    commit_updates(redis_server.url, emulator.instance_id, contact, committed)
                )
                positions: list[int] = []
                try:
                    async with asyncio.timeout(30):
                        while committed[-1] not in positions:
                            position = (await fast.next()).get("position", 0)
                            if position >= committed[0]:
                                positions.append(position)
                finally:
                    await flood
                assert_delivered(positions, committed, ws_paths)
                if await sockets_drop_to(service, 1, within=10):
                    break
            else:
                pytest.fail("the client that stopped reading was never cut off")
            metrics = (await service.http.get("/metrics")).text
            assert 'queuecast_websocket_closed_total{reason="1013"} 1.0' in metrics
            await fast.send({"op": "ping"})
            assert (await fast.next_matching(lambda m: m["type"] == "pong"))["type"] == "pong"
