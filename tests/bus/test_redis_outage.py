"""What only the Redis backend can suffer: the server going away, and a listener gone deaf."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from server.bus import BusUnavailable, Commit, contact_channel
from server.bus.keys import CONTROL_CHANNEL
from tests.bus.conftest import PING_INTERVAL, Recorder, eventually, head

CONTACT = "c-1"


def reconnects() -> float:
    return REGISTRY.get_sample_value("queuecast_bus_reconnects_total") or 0.0


async def test_kill_and_restart_reconnects_and_resubscribes(redis_harness) -> None:
    server = redis_harness.server
    async with redis_harness.bus() as bus:
        hook_runs: list[bool] = []

        async def on_reconnect() -> None:
            hook_runs.append(bus.connected)

        bus.on_reconnect(on_reconnect)
        listener = Recorder()
        await bus.subscribe(contact_channel(CONTACT), listener)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await listener.wait_for(1)

        await server.kill()
        await eventually(lambda: not bus.connected)
        assert bus.last_error
        with pytest.raises(BusUnavailable):
            await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        with pytest.raises(BusUnavailable):
            await bus.ping()

        await server.start()  # same port, empty: no persistence
        await eventually(lambda: bus.connected)
        assert bus.last_error is None
        await eventually(lambda: hook_runs == [True])

        after = await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        (_, delivery) = await listener.wait_for(2)
        assert delivery.text.encode() == after
        assert list(bus.channels) == [contact_channel(CONTACT)]
        assert await redis_harness.backend_subscribers(bus.backend, contact_channel(CONTACT)) == 1


async def test_long_outage_keeps_retrying_and_unsubscribe_meanwhile_is_honoured(
    redis_harness,
) -> None:
    server = redis_harness.server
    async with redis_harness.bus() as bus:
        kept, dropped = Recorder("kept"), Recorder("dropped")
        await bus.subscribe(contact_channel("kept"), kept)
        await bus.subscribe(contact_channel("dropped"), dropped)
        await server.kill()
        await eventually(lambda: not bus.connected)
        before = reconnects()
        await eventually(lambda: reconnects() >= before + 3)  # attempts go on, with backoff
        await bus.unsubscribe(contact_channel("dropped"), dropped)  # must not raise
        with pytest.raises(BusUnavailable):
            await bus.subscribe(contact_channel("new"), Recorder())
        assert bus.listener_count(contact_channel("new")) == 0

        await server.start()
        await eventually(lambda: bus.connected)
        assert sorted(bus.channels) == [contact_channel("kept")]
        for name in ("kept", "dropped"):
            await bus.commit(Commit(name, None, head(name), ttl=60, ended=False))
        await kept.wait_for(1)
        assert await redis_harness.backend_subscribers(bus.backend, contact_channel("dropped")) == 0
        assert dropped.deliveries == []


async def test_bus_started_while_redis_is_down_connects_when_it_comes_up(redis_harness) -> None:
    server = redis_harness.server
    await server.kill()
    async with redis_harness.bus() as bus:
        assert not bus.connected
        assert bus.last_error
        await server.start()
        await eventually(lambda: bus.connected)
        listener = Recorder()
        await bus.subscribe(contact_channel(CONTACT), listener)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await listener.wait_for(1)


async def test_killed_pubsub_connection_reconnects(listener_harness) -> None:
    async with listener_harness.bus() as bus:
        hook_runs = 0

        async def on_reconnect() -> None:
            nonlocal hook_runs
            hook_runs += 1

        bus.on_reconnect(on_reconnect)
        listener = Recorder()
        await bus.subscribe(contact_channel(CONTACT), listener)
        assert await listener_harness.kill_listeners(contact_channel(CONTACT)) >= 1
        await eventually(lambda: hook_runs == 1)
        assert bus.connected
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await listener.wait_for(1)


async def test_deaf_listener_is_detected_and_reconnects(listener_harness) -> None:
    """Redis stops answering (CLIENT PAUSE) while the socket stays open: PING finds it. On a
    cluster the paused node is one the subscribed channel does not live on."""
    async with listener_harness.bus() as bus:
        listener = Recorder()
        await bus.subscribe(contact_channel(CONTACT), listener)
        before = reconnects()
        pause_ms = int(PING_INTERVAL * 6 * 1000)
        await listener_harness.pause(pause_ms, contact_channel(CONTACT))
        await eventually(lambda: not bus.connected, timeout=PING_INTERVAL * 6)
        assert "PING" in (bus.last_error or "")
        await eventually(lambda: bus.connected)
        assert reconnects() > before
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await listener.wait_for(1)


async def test_control_channel_keeps_the_listener_connection_open(redis_harness) -> None:
    async with redis_harness.bus():
        count = await redis_harness.backend_subscribers(None, CONTROL_CHANNEL)
        assert count == 1


async def test_failed_subscribe_command_leaves_no_stale_confirmation(
    redis_harness, monkeypatch
) -> None:
    """A SUBSCRIBE that errors must not make the next subscribe wait for a reply never sent."""
    async with redis_harness.bus() as bus:
        connection = bus.backend._listeners[""].connection
        real = connection.send_command
        calls = 0

        async def subscribe_once_failing(*command, **options):
            nonlocal calls
            if command[0] == "SUBSCRIBE":
                calls += 1
                if calls == 1:
                    raise RedisConnectionError("injected")
            return await real(*command, **options)

        monkeypatch.setattr(connection, "send_command", subscribe_once_failing)
        listener = Recorder()
        channel = contact_channel(CONTACT)
        with pytest.raises(BusUnavailable):
            await bus.subscribe(channel, listener)
        assert bus.listener_count(channel) == 0

        await asyncio.wait_for(bus.subscribe(channel, listener), 0.8)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await listener.wait_for(1)
