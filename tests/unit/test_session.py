"""`ClientSession` with fakes: an in-memory socket and frame writer, the memory bus, the real
fan-out. No subprocess, no network: each test drives one rule of the adapter through the same
calls the gateway makes (`start`, the two loops, `release_all`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.access.policy import AccessPolicy
from server.access.tokens import TokenVerifier, mint
from server.browser.config import GatewayConfig
from server.browser.delivery import Holdup
from server.browser.fanout import SocketFanout
from server.browser.limits import PollQuota
from server.browser.session import ClientSession, SessionContext
from server.bus import Bus, BusUnavailable, Commit, MemoryBackend, contact_channel, queue_channel
from tests.bus.conftest import head
from tests.unit._browser_fakes import INSTANCE, FakeClient, RecordingPoller, contact_id

SECRET = "session-unit-test-secret-0123456789abcdef"
ANONYMOUS = AccessPolicy(TokenVerifier(), allow_anonymous=True)
CONTACT = contact_id(1)


class World:
    """A bus, the fan-out and what a session needs of its gateway."""

    def __init__(self, bus: Bus, config: GatewayConfig) -> None:
        self.bus = bus
        self.fanout = SocketFanout(bus)
        self.watchers = RecordingPoller()
        self.context = SessionContext(config, bus, self.fanout, self.watchers, PollQuota({}))

    async def commit(
        self, contact: str = CONTACT, position: int = 3, *, queue: str | None = None, ended=False
    ) -> None:
        encoded = head(contact, position=position, queue=queue, ended=ended)
        await self.bus.commit(Commit(contact, queue, encoded, ttl=60, ended=ended))

    @contextlib.asynccontextmanager
    async def session(
        self, client: FakeClient, bearer: str | None = None
    ) -> AsyncIterator[ClientSession]:
        """A session running its two loops, as the gateway runs them; released on exit."""
        session = ClientSession(self.context, await client.accepted())
        await session.start(bearer)
        receiving = asyncio.create_task(session.receive_loop())
        receiving.add_done_callback(session.receive_ended)
        sending = asyncio.create_task(session.send_loop())
        try:
            yield session
        finally:
            client.disconnect()
            receiving.cancel()
            await asyncio.gather(receiving, sending, return_exceptions=True)
            session.cancel_deadline()
            await session.release_all()

    @contextlib.asynccontextmanager
    async def streaming(self) -> AsyncIterator[tuple[FakeClient, ClientSession]]:
        """A session subscribed to CONTACT that got its snapshot (seq 1) and an update (seq
        2, written directly), and is attached: the fan-out writes the next ones."""
        await self.commit()
        client = FakeClient()
        async with self.session(client) as session:
            await subscribed(self, client)
            await self.commit()
            await client.wait_for(lambda: session.state.attached_contacts == {CONTACT})
            yield client, session


@contextlib.asynccontextmanager
async def world(backend: MemoryBackend | None = None, **config: Any) -> AsyncIterator[World]:
    config.setdefault("access", ANONYMOUS)
    async with Bus(backend or MemoryBackend(), reconnect_base=0.01) as bus:
        yield World(bus, GatewayConfig(**config))


async def subscribed(w: World, client: FakeClient, contact: str = CONTACT) -> None:
    client.send({"op": "subscribe", "contact": contact, "instance": INSTANCE})
    await client.wait_for(lambda: any(m.get("contact") == contact for m in client.texts()))


async def test_snapshot_then_a_direct_write_then_the_fan_out_writes() -> None:
    async with world() as w:
        await w.commit(position=5)
        client = FakeClient()
        async with w.session(client) as session:
            await subscribed(w, client)
            [snapshot] = client.texts()
            assert (snapshot["type"], snapshot["seq"]) == ("snapshot", 1), "through the outbox"
            await w.commit(position=4)
            await client.wait_for(lambda: len(client.written("frame")) == 1)
            assert client.written("frame")[0]["seq"] == 2, "nothing waited: written directly"
            assert session.state.attached_contacts == {CONTACT}, "and then attached"
            await w.commit(position=3)
            await client.wait_for(lambda: len(client.written("sink")) == 1)
            assert client.written("sink")[0]["seq"] == 3, "the fan-out wrote it"
            assert len(client.texts()) == 1 and len(client.written("frame")) == 1
            assert w.watchers.watching == {CONTACT}
        assert w.watchers.unwatched == [CONTACT]
        assert w.fanout.sessions_of(contact_channel(CONTACT)) == 0
        assert w.bus.listener_count(contact_channel(CONTACT)) == 0


async def test_a_client_message_takes_the_writer_back_and_its_answer_goes_first() -> None:
    async with world() as w:
        async with w.streaming() as (client, session):
            assert client.writer is not None
            client.writer.block()  # what the protocol does when a client message arrives
            assert session.state.attached_contacts == frozenset()
            client.send({"op": "ping"})
            await client.wait_for(lambda: client.texts()[-1] == {"type": "pong"})
            # Idle again: it streams again, with a new sink.
            await client.wait_for(lambda: session.state.attached_contacts == {CONTACT})
            await w.commit()
            await client.wait_for(lambda: len(client.written("sink")) == 1)
            got = client.texts() + client.written("frame") + client.written("sink")
            assert sorted(m["seq"] for m in got if "seq" in m) == [1, 2, 3]


async def test_a_short_send_finishes_the_frame_and_the_next_update_is_delivered() -> None:
    async with world() as w:
        async with w.streaming() as (client, session):
            assert client.writer is not None
            client.writer.sink_takes = 5
            await w.commit()
            await client.wait_for(lambda: session.state.attached_contacts == frozenset())
            kinds = [kind for kind, _ in client.writer.log]
            assert kinds == ["frame", "sink", "rest"], "the rest follows the first bytes"
            assert session.state.holds(CONTACT) == 3, "it holds what the fan-out wrote"
            await w.commit()  # the buffer still holds bytes: written the checked way
            await client.wait_for(lambda: len(client.written("frame")) == 2)
            assert client.written("frame")[-1]["seq"] == 4
            client.writer.takes = False  # and now the socket takes nothing: the outbox does
            await w.commit()
            await client.wait_for(lambda: client.texts()[-1]["seq"] == 5)
            assert session.state.attached_contacts == frozenset()


async def test_a_lost_bus_shows_stale_and_what_the_fan_out_wrote_counts() -> None:
    async with world() as w:
        async with w.streaming() as (client, session):
            await w.commit()
            await client.wait_for(lambda: len(client.written("sink")) == 1)
            assert session.known_seqs() == {CONTACT: 2}, "a query: the writer keeps it"
            session.take_back_writers()
            assert session.known_seqs() == {CONTACT: 3}
            session.mark_stale()
            await client.wait_for(lambda: client.texts()[-1].get("stale") is True)
            assert client.texts()[-1]["seq"] == 3
            assert session.state.holdup() is Holdup.SHOWN_STALE


async def test_an_unreachable_bus_on_subscribe_leaves_nothing_behind() -> None:
    class Unreachable(MemoryBackend):
        async def subscribe(self, channel: str) -> None:
            raise BusUnavailable("down")

    async with world(Unreachable()) as w:
        client = FakeClient()
        async with w.session(client) as session:
            client.send({"op": "subscribe", "contact": CONTACT, "instance": INSTANCE})
            await client.wait_for(lambda: bool(client.texts()))
            assert client.texts()[0]["code"] == "unavailable"
            assert session.state.contacts == {}
            assert w.fanout.sessions_of(contact_channel(CONTACT)) == 0
            assert w.bus.listener_count(contact_channel(CONTACT)) == 0
            assert w.watchers.watching == set()


async def test_unsubscribe_releases_the_channel_and_the_poller() -> None:
    async with world() as w:
        async with w.streaming() as (client, session):
            client.send({"op": "unsubscribe", "contact": CONTACT})
            await client.wait_for(lambda: not session.state.contacts)
            assert w.watchers.unwatched == [CONTACT]
            assert w.fanout.sessions_of(contact_channel(CONTACT)) == 0
            await w.commit()
            await asyncio.sleep(0.05)
            assert len(client.written("sink")) == 0 and len(client.written("frame")) == 1


async def test_ended_ends_the_subscription_after_the_frame() -> None:
    async with world() as w:
        async with w.streaming() as (client, session):
            await w.commit(ended=True)
            await client.wait_for(lambda: not session.state.contacts)
            got = client.texts() + client.written("frame") + client.written("sink")
            assert got[-1]["type"] == "ended"
            assert w.watchers.unwatched == [CONTACT]
            assert w.fanout.sessions_of(contact_channel(CONTACT)) == 0


async def test_a_queue_subscription_never_streams() -> None:
    async with world() as w:
        await w.commit(contact_id(2), queue="q-1")
        client = FakeClient()
        async with w.session(client) as session:
            client.send({"op": "subscribe", "queue": "q-1"})
            await client.wait_for(lambda: bool(client.texts()))
            assert client.texts()[0]["type"] == "snapshot"
            await w.commit(contact_id(2), queue="q-1")
            await client.wait_for(lambda: len(client.texts()) + len(client.written("frame")) == 2)
            assert session.state.holdup() is Holdup.QUEUE_SUBSCRIBED
            assert session.state.attached_contacts == frozenset()
            assert w.fanout.sessions_of(queue_channel("q-1")) == 1


async def test_a_client_that_does_not_read_is_closed_with_1013() -> None:
    async with world(send_timeout=0.05) as w:
        await w.commit()
        client = FakeClient(writer=False)
        stuck = asyncio.Event()

        async def never(message: Any) -> None:
            if message["type"] == "websocket.send":
                await stuck.wait()

        websocket = await client.accepted()
        client._send = never  # type: ignore[method-assign]
        websocket._send = never  # type: ignore[method-assign]
        session = ClientSession(w.context, websocket)
        await session.start(None)
        receiving = asyncio.create_task(session.receive_loop())
        client.send({"op": "subscribe", "contact": CONTACT, "instance": INSTANCE})
        async with asyncio.timeout(2):
            await session.send_loop()
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
        await session.release_all()
        assert (session.close_code, session.close_reason) == (1013, "client too slow to read")


async def test_an_unauthenticated_client_is_refused_and_gets_no_event() -> None:
    async with world(access=AccessPolicy(TokenVerifier({None: SECRET}))) as w:
        await w.commit()
        client = FakeClient()
        async with w.session(client) as session:
            client.send({"op": "subscribe", "contact": CONTACT, "instance": INSTANCE})
            await client.wait_for(lambda: bool(client.texts()))
            assert client.texts()[0]["code"] == "unauthorized"
            assert session.close_code == 1008


async def test_an_expired_token_stops_the_stream_and_a_new_one_resumes_it() -> None:
    verifier = TokenVerifier({None: SECRET}, leeway=0)
    async with world(access=AccessPolicy(verifier), reauth_timeout=5) as w:
        await w.commit()
        client = FakeClient()
        short = mint(SECRET, scope="service", ttl=1)
        async with w.session(client, bearer=short) as session:
            await subscribed(w, client)
            async with asyncio.timeout(3):
                while not any(m.get("code") == "token_expired" for m in client.texts()):
                    await asyncio.sleep(0.01)
            assert not session.state.authorized
            await w.commit()
            await asyncio.sleep(0.05)
            assert [m["seq"] for m in client.texts() if "seq" in m] == [1], "nothing after expiry"
            client.send({"op": "auth", "token": mint(SECRET, scope="service")})
            await client.wait_for(lambda: client.texts()[-1].get("seq") == 2)
            assert client.texts()[-1]["type"] == "snapshot", "resumed with a snapshot"
            assert session.close_code is None


@pytest.mark.parametrize("kind", ["frame_writer", "plain"])
async def test_no_update_is_repeated_or_goes_back_and_the_last_one_arrives(kind: str) -> None:
    """Whichever path each update takes (outbox, direct write, fan-out; the sink lost now and
    then), none comes twice or after a newer one, and the latest always arrives (a socket that
    falls behind may skip states in between: latest per contact wins)."""
    async with world() as w:
        await w.commit()
        client = FakeClient(writer=kind == "frame_writer")

        def got() -> list[dict[str, Any]]:
            frames = client.texts()
            if client.writer is not None:
                frames += client.written("frame") + client.written("sink")
            return [m for m in frames if "seq" in m]

        async with w.session(client):
            await subscribed(w, client)
            for position in range(50, 0, -1):
                await w.commit(position=position)
                if position % 7 == 0 and client.writer is not None:
                    client.writer.block()
            await client.wait_for(lambda: any(m["seq"] == 51 for m in got()))
            await asyncio.sleep(0.05)
            seqs = [m["seq"] for m in got()]
            assert len(seqs) == len(set(seqs)), "nothing twice"
            for path in (
                client.texts(),
                *((client.written("frame"), client.written("sink")) if client.writer else ()),
            ):
                on_path = [m["seq"] for m in path if "seq" in m]
                assert on_path == sorted(on_path), "nothing after a newer one"


async def test_known_seqs_is_a_query() -> None:
    async with world() as w:
        async with w.streaming() as (_client, session):
            assert session.known_seqs() == session.known_seqs() == {CONTACT: 2}
            assert session.state.attached_contacts == {CONTACT}, "nothing was detached"
