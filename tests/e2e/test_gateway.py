"""The WebSocket gateway under bad clients, slow clients, outages and shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import uuid

import pytest
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from server.bus.keys import queue_channel
from server.events import ContactEvent
from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

# Every test twice: through the fast paths and through the public ones (server/_internals.py).
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ws_paths")]

FOREIGN_CONTACT = "00000000-0000-4000-8000-000000000000"


async def test_malformed_frames_get_errors_and_the_socket_stays(emulator, redis_server):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            cases = [
                ("not json", "bad_json"),
                ("[1, 2]", "bad_message"),
                ('{"op": 5}', "bad_message"),
                ('{"op": "dance"}', "unknown_op"),
                ('{"op": "subscribe"}', "bad_message"),
                ('{"op": "subscribe", "contact": "abc"}', "bad_id"),
                (json.dumps({"op": "subscribe", "contact": mine, "since": -1}), "bad_message"),
                ("[" * 2000 + "]" * 2000, "bad_json"),
            ]
            for frame, code in cases:
                await ws.send(frame)
                reply = await ws.next()
                assert reply["type"] == "error", frame
                assert reply["code"] == code, frame
            await ws.conn.send(b"\x00\x01binary")
            assert (await ws.next())["code"] == "bad_message"
            await ws.send({"op": "ping"})
            assert await ws.next() == {"type": "pong"}
            # still serving
            await ws.subscribe(mine)
            assert (await ws.next())["type"] == "snapshot"


async def test_oversized_frame_closes_with_1009(emulator, redis_server):
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.send("x" * 10_000)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.next()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009


async def test_sigterm_closes_sockets_with_1001_and_exits_0(emulator, redis_server):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            await ws.next()
            service.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.next(timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
            assert await asyncio.wait_for(service.proc.wait(), 5) == 0


async def test_redis_killed_and_restarted_mid_stream(emulator, redis_server):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(2)]
    mine = contacts[1]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            first = await ws.next()
            assert first["position"] == 2
            await redis_server.kill()
            async with asyncio.timeout(10):
                while (await service.http.get("/readyz")).status_code == 200:
                    await asyncio.sleep(0.1)
            # While Redis is down the queue moves; nothing can be published yet.
            await emulator.connect(contacts[0])
            await asyncio.sleep(1.0)
            await redis_server.start()  # same port, empty
            fresh = await ws.next_matching(lambda m: m.get("position") == 1, timeout=15)
            assert fresh["type"] in ("snapshot", "update")
            async with asyncio.timeout(10):
                while (await service.http.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.1)
            # and the stream goes on after the outage
            await emulator.connect(mine)
            ended = await ws.next_matching(lambda m: m["type"] == "ended")
            assert ended["reason"] == "connected_to_agent"


async def test_slow_reader_is_closed_and_others_unaffected(emulator, redis_server):
    """Flood a queue channel straight through Redis with states of many contacts: a client
    that never reads is cut off (1013) after --send-timeout, a reading client gets them all."""
    queue = "flood-queue"
    async with start_service_process(emulator, redis_server.url, "--send-timeout", "1") as service:
        async with (
            ws_client(service.ws_url) as fast,
            ws_client(service.ws_url, max_queue=1, sock=_small_buffer_socket(service.url)) as slow,
        ):
            for client in (fast, slow):
                await client.subscribe(queue=queue)
                await client.send({"op": "ping"})
                assert (await client.next())["type"] == "pong"
            redis = aioredis.from_url(redis_server.url)
            total = 8000
            try:
                for batch in range(total // 500):
                    pipe = redis.pipeline(transaction=False)
                    for i in range(500):
                        n = batch * 500 + i
                        event = ContactEvent(
                            type="update",
                            instance=emulator.instance_id,
                            contact=str(uuid.UUID(int=n + 1, version=4)),
                            queue=queue,
                            position=n + 1,
                            ewt=n,
                            at="2026-01-01T00:00:00.000Z",
                            stale=False,
                            reason="x" * 1000,  # big frames back the kernel buffers up sooner
                            seq=1,
                        )
                        pipe.publish(queue_channel(queue), event.encode())
                    await pipe.execute()
                    await asyncio.sleep(0)
            finally:
                await redis.aclose()
            positions = set()
            async with asyncio.timeout(30):
                while len(positions) < total:
                    positions.add((await fast.next())["position"])
            # The server gave up on the slow reader: its session, subscriptions and outbox
            # are gone (its close frame waits behind the bytes it never read).
            async with asyncio.timeout(20):
                while (await service.status())["sockets"] != 1:
                    await asyncio.sleep(0.2)
            metrics = (await service.http.get("/metrics")).text
            assert 'queuecast_websocket_closed_total{reason="1013"} 1.0' in metrics
            await fast.send({"op": "ping"})
            # The queue's own figures (`queue` events) may come first on a queue channel.
            reply = await fast.next_matching(lambda m: m["type"] != "queue")
            assert reply["type"] == "pong"


def _small_buffer_socket(url: str) -> socket.socket:
    """A connected socket with a tiny receive buffer, so an unread stream backs up quickly
    (loopback would otherwise buffer tens of megabytes)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return sock


async def test_queue_subscription_snapshots_and_streams(emulator, redis_server):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
    queue = emulator.queues["sales"]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as customer:
            for contact in contacts:
                await customer.subscribe(contact)
            for _ in contacts:
                await customer.next()
            async with ws_client(service.ws_url) as board:
                await board.subscribe(queue=queue)
                snapshots = [
                    await board.next_matching(lambda m: m["type"] != "queue") for _ in contacts
                ]
                assert {s["contact"] for s in snapshots} == set(contacts)
                assert all(s["type"] == "snapshot" for s in snapshots)
                assert sorted(s["position"] for s in snapshots) == [1, 2, 3]
                await emulator.connect(contacts[0])
                # Both arrive, in either order: the queue-level read that shows one contact
                # fewer moves the others up before the poll of the head confirms its end.
                ended = moved = None
                while ended is None or moved is None:
                    message = await board.next_matching(lambda m: m["type"] != "queue")
                    if message["type"] == "ended":
                        ended = message
                    elif message["contact"] == contacts[2]:
                        moved = message
                assert ended["contact"] == contacts[0]
                assert moved["position"] == 2


async def test_unknown_contact_on_subscribe_ends_not_found(emulator, redis_server):
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(FOREIGN_CONTACT)
            ended = await ws.next()
            assert ended["type"] == "ended"
            assert ended["reason"] == "not_found"
            assert json.dumps(ended)
