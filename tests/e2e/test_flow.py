"""The core flow, end to end: emulator over HTTP through aioboto3, the service under uvicorn,
a real bus (redis-server or in-process), real WebSocket clients."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.emulator import EmulatorHandle
from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


async def true_state(emulator: EmulatorHandle, contact: str) -> dict:
    for waiting in await emulator.waiting("sales"):
        if waiting["contactId"] == contact:
            return waiting
    raise AssertionError(f"{contact} is not waiting")


async def polls_of(emulator: EmulatorHandle, contact: str) -> int:
    stats = await emulator.sim_stats()
    return int(stats["getContactMetrics"]["byContact"].get(contact, 0))


async def test_subscribe_update_end_then_no_more_polls(emulator, bus_url):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
    mine = contacts[2]
    async with start_service_process(emulator, bus_url) as service, ws_client(service.ws_url) as ws:
        await ws.subscribe(mine)
        snapshot = await ws.next()
        truth = await true_state(emulator, mine)
        assert snapshot["type"] == "snapshot"
        assert snapshot["contact"] == mine
        assert snapshot["instance"] == emulator.instance_id
        assert snapshot["queue"] == emulator.queues["sales"]
        assert snapshot["position"] == truth["position"] == 3
        assert abs(snapshot["ewt"] - truth["ewt"]) <= 5
        assert snapshot["seq"] == 1
        assert snapshot["stale"] is False
        assert snapshot["enqueued"] == truth["enqueuedAt"]  # learned from DescribeContact

        await emulator.connect(contacts[0])
        update = await ws.next()
        assert update["type"] == "update"
        assert update["position"] == 2 == (await true_state(emulator, mine))["position"]
        assert update["seq"] > snapshot["seq"]

        await emulator.connect(mine)
        # The queue-level read that sees one contact fewer may first move `mine` up (the head
        # leaving is likelier than a contact leaving from the middle); its own poll ends it.
        ended = await ws.next()
        while ended["type"] == "update":
            ended = await ws.next()
        assert ended["type"] == "ended"
        # No contact events: the DescribeContact that follows the poll says why it left.
        assert ended["reason"] == "connected_to_agent"
        assert ended["position"] is None

        polls = await polls_of(emulator, mine)
        await asyncio.sleep(2.0)  # four poll intervals
        assert await polls_of(emulator, mine) == polls, "an ended contact was polled again"
        status = await service.status()
        assert status["tracked"] == 0

        # A late subscriber is told `ended` from the tombstone, and no poll restarts.
        async with ws_client(service.ws_url) as late:
            await late.subscribe(mine)
            told = await late.next()
            assert told["type"] == "ended"
            assert told["seq"] == ended["seq"]
        await asyncio.sleep(1.0)
        assert await polls_of(emulator, mine) == polls


async def test_fifty_sockets_share_one_poll(emulator, redis_server):
    ahead = (await emulator.create_contact("sales"))["contactId"]
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        clients = []
        async with asyncio.TaskGroup() as tg:
            opened = [tg.create_task(_open(service.ws_url)) for _ in range(50)]
        clients = [task.result() for task in opened]
        try:
            for client in clients:
                await client[1].subscribe(mine)
            for client in clients:
                assert (await client[1].next())["position"] == 2
            await emulator.reset_stats()
            await asyncio.sleep(3.0)
            polls = await polls_of(emulator, mine)
            # poll interval 0.5 s: 6 polls in 3 s (one more if a poll straddles the edges)
            assert 4 <= polls <= 7, polls
            await emulator.connect(ahead)
            for client in clients:
                update = await client[1].next()
                assert update["position"] == 1
            assert len({c[1].seen[-1]["seq"] for c in clients}) == 1
        finally:
            for manager, _ in clients:
                await manager.__aexit__(None, None, None)


async def _open(url):
    manager = ws_client(url)
    client = await manager.__aenter__()
    return manager, client


async def test_http_track_get_untrack(emulator, redis_server):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        missing = await service.http.get(f"/v1/contacts/{mine}")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"

        put = await service.http.put(
            f"/v1/contacts/{mine}", json={"instanceId": emulator.instance_id}
        )
        assert put.status_code == 202
        assert put.json()["tracked"] is True
        async with asyncio.timeout(5):
            while (got := await service.http.get(f"/v1/contacts/{mine}")).status_code != 200:
                await asyncio.sleep(0.1)
        state = got.json()
        assert state["type"] == "snapshot"
        assert state["position"] == 1

        assert (await service.http.delete(f"/v1/contacts/{mine}")).status_code == 204
        async with asyncio.timeout(3):  # the poller lets go at its next reconcile
            while (await service.status())["tracked"] != 0:
                await asyncio.sleep(0.1)
        polls = await polls_of(emulator, mine)
        await asyncio.sleep(1.5)
        assert await polls_of(emulator, mine) == polls

        bad = await service.http.put("/v1/contacts/not-a-uuid")
        assert bad.status_code == 400 and bad.json()["code"] == "bad_id"
        bad_body = await service.http.put(f"/v1/contacts/{mine}", content=b"{nope")
        assert bad_body.status_code == 400 and bad_body.json()["code"] == "bad_json"
        huge = await service.http.put(f"/v1/contacts/{mine}", content=b"x" * 100_000)
        assert huge.status_code == 413
        for queue in ("", "q\n", "q" * 251, 7):  # the queue-id rule of server/ids.py
            bad_queue = await service.http.put(
                f"/v1/contacts/{mine}", json={"instanceId": emulator.instance_id, "queueId": queue}
            )
            assert bad_queue.status_code == 400 and bad_queue.json()["code"] == "bad_id"


async def test_unsubscribed_contact_stops_after_linger(emulator, bus_url):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, bus_url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            await ws.next()
        # --linger 1: polling stops about a second after the last subscriber left
        await asyncio.sleep(2.0)
        polls = await polls_of(emulator, mine)
        await asyncio.sleep(1.5)
        assert await polls_of(emulator, mine) == polls
        assert (await service.status())["tracked"] == 0
