"""`Gateway` with fakes: Starlette's `WebSocket` over an in-memory ASGI channel, the memory bus
(one whose connection can be lost), a poller that only records. No subprocess: admission, a
socket's life, an outage and the resync after it, and the drain, each checked directly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from server.access.policy import AccessPolicy
from server.access.tokens import TokenVerifier
from server.browser.config import GatewayConfig
from server.browser.gateway import SUBPROTOCOL, Gateway
from server.bus import Bus, Commit, contact_channel
from tests.bus.conftest import head
from tests.unit._browser_fakes import INSTANCE, FakeClient, RecordingPoller, contact_id
from tests.unit._flaky_bus import FlakyMemoryBackend

CONTACT = contact_id(1)


class Served:
    def __init__(self, gateway: Gateway, bus: Bus, backend: FlakyMemoryBackend) -> None:
        self.gateway = gateway
        self.bus = bus
        self.backend = backend
        self.poller: RecordingPoller = gateway.poller  # type: ignore[assignment]
        self.tasks: list[asyncio.Task[None]] = []

    def open(self, client: FakeClient) -> asyncio.Task[None]:
        task = asyncio.create_task(self.gateway.handle(client.websocket))
        self.tasks.append(task)
        return task

    async def commit(self, contact: str = CONTACT) -> None:
        await self.bus.commit(Commit(contact, None, head(contact), ttl=60, ended=False))

    async def streaming_client(self, updates: int = 1) -> FakeClient:
        """A socket subscribed to CONTACT that got its snapshot and `updates` updates."""
        await self.commit()
        client = FakeClient()
        self.open(client)
        await subscribed(client)
        for _ in range(updates):
            await self.commit()
        await client.wait_for(
            lambda: len(client.written("frame") + client.written("sink")) == updates
        )
        return client


@contextlib.asynccontextmanager
async def served(**config: Any) -> AsyncIterator[Served]:
    config.setdefault("access", AccessPolicy(TokenVerifier(), allow_anonymous=True))
    backend = FlakyMemoryBackend()
    async with Bus(backend, reconnect_base=0.01, reconnect_cap=0.02) as bus:
        gateway = Gateway(GatewayConfig(**config), bus, RecordingPoller())  # type: ignore[arg-type]
        world = Served(gateway, bus, backend)
        try:
            yield world
        finally:
            await gateway.drain()
            await asyncio.gather(*world.tasks, return_exceptions=True)


def closed_with(client: FakeClient) -> int | None:
    close = client.closed()
    return None if close is None else int(close["code"])


async def subscribed(client: FakeClient, contact: str = CONTACT) -> None:
    client.send({"op": "subscribe", "contact": contact, "instance": INSTANCE})
    await client.wait_for(lambda: any(m.get("contact") == contact for m in client.texts()))


async def test_a_foreign_origin_is_refused_before_the_accept() -> None:
    async with served() as s:
        client = FakeClient(headers={"origin": "https://evil.example", "host": "qc.example"})
        await s.open(client)
        assert [m["type"] for m in client.sent] == ["websocket.close"]
        assert closed_with(client) == 1008
        assert not s.gateway.sessions


async def test_the_own_origin_is_served_and_the_bearer_subprotocol_never_echoed() -> None:
    async with served() as s:
        client = FakeClient(
            headers={"origin": "http://qc.example", "host": "qc.example"},
            subprotocols=(SUBPROTOCOL, "bearer.secret"),
        )
        s.open(client)
        await client.wait_for(lambda: bool(client.sent))
        assert client.sent[0] == {
            "type": "websocket.accept",
            "subprotocol": SUBPROTOCOL,
            "headers": [],
        }


async def test_sockets_per_address_are_limited() -> None:
    async with served(max_sockets_per_ip=1) as s:
        first, second = FakeClient(), FakeClient()
        s.open(first)
        await first.wait_for(lambda: bool(first.sent))
        await s.open(second)
        assert closed_with(second) == 1008, "a denial (no HTTP response extension here)"
        third = FakeClient(address="10.0.0.2")
        s.open(third)
        await third.wait_for(lambda: bool(third.sent))
        assert third.sent[0]["type"] == "websocket.accept", "another address"


async def test_a_socket_that_goes_away_releases_everything() -> None:
    async with served() as s:
        await s.commit()
        client = FakeClient()
        handled = s.open(client)
        await subscribed(client)
        assert s.poller.watching == {CONTACT}
        assert len(s.gateway.sessions) == 1
        client.disconnect()
        await asyncio.wait_for(handled, 2)
        assert not s.gateway.sessions
        assert s.poller.watching == set()
        assert s.gateway.fanout.sessions_of(contact_channel(CONTACT)) == 0
        assert s.bus.listener_count(contact_channel(CONTACT)) == 0


async def test_an_outage_shows_stale_then_the_fresh_state_with_the_same_seq() -> None:
    async with served() as s:
        client = await s.streaming_client()
        s.backend.lose()
        await client.wait_for(lambda: client.texts()[-1].get("stale") is True)
        assert client.texts()[-1]["seq"] == 2
        await client.wait_for(lambda: client.texts()[-1].get("stale") is False)
        assert client.texts()[-1]["seq"] == 2, "refreshed, same seq"
        assert s.backend.floors == [], "the store kept its seqs: no floor to raise"


async def test_after_a_store_restarted_empty_seqs_rise_above_what_clients_hold() -> None:
    async with served() as s:
        client = await s.streaming_client(updates=3)
        s.backend.lose(restart_empty=True)
        async with asyncio.timeout(2):
            while not s.backend.floors:
                await asyncio.sleep(0.005)
        assert s.backend.floors == [(CONTACT, 4)], "what the fan-out wrote counted"
        await s.commit()
        await client.wait_for(lambda: any(m["seq"] == 5 for m in client.written("frame")))


async def test_drain_closes_every_socket_with_1001() -> None:
    async with served() as s:
        clients = [FakeClient() for _ in range(3)]
        handled = [s.open(c) for c in clients]
        for client in clients:
            await client.wait_for(lambda client=client: bool(client.sent))
        await s.gateway.drain()
        await asyncio.wait_for(asyncio.gather(*handled), 2)
        assert [closed_with(c) for c in clients] == [1001, 1001, 1001]
        late = FakeClient()
        await s.open(late)
        assert closed_with(late) == 1001, "no new socket while draining"


async def test_resync_counts_what_the_fan_out_is_writing() -> None:
    """Called while a socket streams (the writers not taken back by an outage), the floors
    still count what the fan-out wrote to it."""
    async with served() as s:
        await s.streaming_client(updates=3)
        s.backend.forget_everything()
        await s.gateway.resync()
        assert s.backend.floors == [(CONTACT, 4)]
