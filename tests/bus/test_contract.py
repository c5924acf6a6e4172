"""The bus contract, run against every backend (memory and a real redis-server)."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import REGISTRY

from server.bus import BusUnavailable, Commit, contact_channel, queue_channel
from server.events import QueueFiguresEvent, decode_event, encode_queue_head
from tests.bus.conftest import Recorder, eventually, head

CONTACT = "c-1"


def malformed_count() -> float:
    return REGISTRY.get_sample_value("queuecast_bus_malformed_total") or 0.0


async def test_subscribe_then_commit_delivers_the_committed_bytes(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        assert bus.connected
        listener = Recorder()
        channel = contact_channel(CONTACT)
        await bus.subscribe(channel, listener)
        committed = [
            await bus.commit(Commit(CONTACT, None, head(CONTACT, position=p), ttl=60, ended=False))
            for p in (3, 2, 1)
        ]
        deliveries = await listener.wait_for(3)
        assert [d.text.encode() for d in deliveries] == committed
        assert [d.channel for d in deliveries] == [channel] * 3
        assert listener.seqs == [1, 2, 3]
        assert [d.event.position for d in deliveries] == [3, 2, 1]
        assert all(d.event == decode_event(d.text) for d in deliveries)


async def test_commit_returns_head_plus_seq(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        first = await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        second = await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        assert first == head(CONTACT) + b"1}"
        assert second == head(CONTACT) + b"2}"
        # Seqs are per contact.
        assert (
            await bus.commit(Commit("c-2", None, head("c-2"), ttl=60, ended=False))
            == head("c-2") + b"1}"
        )


async def test_nothing_is_delivered_without_a_subscription(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        listener = Recorder()
        await bus.subscribe(contact_channel("other"), listener)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await bus.commit(Commit("other", None, head("other"), ttl=60, ended=False))
        await listener.wait_for(1)
        assert [d.event.contact for d in listener.deliveries] == ["other"]


async def test_two_listeners_share_one_backend_subscription(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        channel = contact_channel(CONTACT)
        a, b = Recorder("a"), Recorder("b")
        await bus.subscribe(channel, a)
        await bus.subscribe(channel, b)
        await bus.subscribe(channel, b)  # the same listener twice counts once
        assert bus.listener_count(channel) == 2
        assert list(bus.channels) == [channel]
        assert await bus_harness.backend_subscribers(bus.backend, channel) == 1

        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        (da,) = await a.wait_for(1)
        (db,) = await b.wait_for(1)
        assert da is db  # one decode, the same text for every listener

        await bus.unsubscribe(channel, a)
        assert bus.listener_count(channel) == 1
        assert await bus_harness.backend_subscribers(bus.backend, channel) == 1
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await b.wait_for(2)
        assert len(a.deliveries) == 1

        await bus.unsubscribe(channel, b)
        await bus.unsubscribe(channel, b)  # unknown listener: no-op
        assert bus.listener_count(channel) == 0
        assert list(bus.channels) == []
        await eventually_backend(bus_harness, bus, channel, 0)


async def eventually_backend(harness, bus, channel: str, expected: int) -> None:
    async with asyncio.timeout(5):
        while await harness.backend_subscribers(bus.backend, channel) != expected:
            await asyncio.sleep(0.01)


async def test_queue_channel_gets_the_same_bytes_and_members_follow_ended(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        by_contact, by_queue = Recorder(), Recorder()
        await bus.subscribe(contact_channel(CONTACT), by_contact)
        await bus.subscribe(queue_channel("sales"), by_queue)
        assert await bus.queue_members("sales") == []

        await bus.commit(
            Commit(CONTACT, "sales", head(CONTACT, queue="sales"), ttl=60, ended=False)
        )
        await bus.commit(Commit("c-2", "sales", head("c-2", queue="sales"), ttl=60, ended=False))
        assert await bus.queue_members("sales") == [CONTACT, "c-2"]
        await bus.commit(
            Commit(CONTACT, "sales", head(CONTACT, queue="sales", ended=True), ttl=60, ended=True)
        )
        assert await bus.queue_members("sales") == ["c-2"]
        assert await bus.queue_members("support") == []

        await by_queue.wait_for(3)
        await by_contact.wait_for(2)
        assert [d.text for d in by_contact.deliveries] == [
            d.text for d in by_queue.deliveries if d.event.contact == CONTACT
        ]
        assert {d.channel for d in by_queue.deliveries} == {queue_channel("sales")}
        assert by_contact.deliveries[-1].event.ended


async def test_raise_floor_republishes_the_stored_state_on_both_channels(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        by_contact, by_queue = Recorder(), Recorder()
        await bus.subscribe(contact_channel(CONTACT), by_contact)
        await bus.subscribe(queue_channel("sales"), by_queue)
        sent = await bus.commit(
            Commit(CONTACT, "sales", head(CONTACT, queue="sales"), ttl=60, ended=False)
        )
        assert await bus.raise_floor(CONTACT, 1) == 0  # the counter is there already

        assert await bus.raise_floor(CONTACT, 10) == 11
        await by_contact.wait_for(2)
        await by_queue.wait_for(2)
        assert by_contact.seqs == by_queue.seqs == [1, 11]
        assert by_queue.deliveries[-1].channel == queue_channel("sales")
        again = by_contact.deliveries[-1].text.encode()
        assert again == sent.replace(b'"seq":1}', b'"seq":11}')
        [stored] = await bus.read_states([CONTACT])
        assert stored is not None and stored.seq == 11

        # No stored state: only the counter rises, nothing is published.
        assert await bus.raise_floor("c-2", 5) == 5
        assert await bus.commit(Commit("c-2", None, head("c-2"), ttl=60, ended=False)) == (
            head("c-2") + b"6}"
        )
        assert by_contact.seqs == [1, 11]


async def test_read_states_returns_the_latest(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        assert await bus.read_states([]) == []
        await bus.commit(Commit(CONTACT, None, head(CONTACT, position=5), ttl=60, ended=False))
        latest = await bus.commit(
            Commit(CONTACT, None, head(CONTACT, position=4), ttl=60, ended=False)
        )
        states = await bus.read_states([CONTACT, "unknown"])
        assert states == [decode_event(latest), None]
        assert states[0].position == 4
        assert states[0].seq == 2


async def test_read_states_expire_after_ttl_but_seq_continues(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=0.05, ended=False))
        assert (await bus.read_states([CONTACT]))[0] is not None
        async with asyncio.timeout(5):
            while (await bus.read_states([CONTACT]))[0] is not None:
                await asyncio.sleep(0.02)
        # The counter outlives the state: a seq a client has seen is never reused.
        assert (
            await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
            == head(CONTACT) + b"2}"
        )


async def test_malformed_stored_state_reads_as_none(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        before = malformed_count()
        await bus_harness.store_raw_state(bus.backend, CONTACT, b"{not json")
        assert await bus.read_states([CONTACT]) == [None]
        assert malformed_count() == before + 1


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b"\xff\xfe", b'{"type":"update"}', b"[" * 100_000, b'{"seq":' * 50_000],
    ids=["text", "not-utf8", "incomplete", "deep-array", "deep-object"],
)
async def test_malformed_message_is_dropped_counted_and_reading_goes_on(
    bus_harness, garbage
) -> None:
    async with bus_harness.bus() as bus:
        listener = Recorder()
        channel = contact_channel(CONTACT)
        await bus.subscribe(channel, listener)
        before = malformed_count()
        await bus.backend.publish(channel, garbage)
        good = await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        (delivery,) = await listener.wait_for(1)
        assert delivery.text.encode() == good
        assert malformed_count() == before + 1
        assert bus.connected


async def test_a_failing_listener_does_not_starve_the_others(bus_harness, caplog) -> None:
    class Broken:
        def deliver(self, delivery) -> None:
            raise RuntimeError("listener bug")

    async with bus_harness.bus() as bus:
        channel = contact_channel(CONTACT)
        good = Recorder()
        await bus.subscribe(channel, Broken())
        await bus.subscribe(channel, good)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        await good.wait_for(2)
        assert bus.connected
        assert "listener failed" in caplog.text


async def test_failed_backend_subscribe_leaves_nothing_registered(bus_harness, monkeypatch) -> None:
    async with bus_harness.bus() as bus:
        channel = contact_channel(CONTACT)
        real_subscribe = bus.backend.subscribe

        async def failing_subscribe(name: str) -> None:
            raise BusUnavailable("injected")

        monkeypatch.setattr(bus.backend, "subscribe", failing_subscribe)
        listener = Recorder()
        with pytest.raises(BusUnavailable):
            await bus.subscribe(channel, listener)
        assert bus.listener_count(channel) == 0
        assert list(bus.channels) == []
        assert await bus_harness.backend_subscribers(bus.backend, channel) == 0
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))

        # Once the backend works again the same listener subscribes normally.
        monkeypatch.setattr(bus.backend, "subscribe", real_subscribe)
        await bus.subscribe(channel, listener)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        (delivery,) = await listener.wait_for(1)
        assert delivery.event.seq == 2
        await asyncio.sleep(0.05)
        assert len(listener.deliveries) == 1  # the commit made while unsubscribed never came


async def test_concurrent_subscribe_unsubscribe_end_consistent(bus_harness) -> None:
    rng = random.Random(1234)
    async with bus_harness.bus() as bus:
        channel = contact_channel(CONTACT)
        listeners = [Recorder(str(i)) for i in range(12)]

        async def churn(listener: Recorder) -> None:
            for _ in range(rng.randint(1, 6)):
                if rng.random() < 0.5:
                    await bus.subscribe(channel, listener)
                else:
                    await bus.unsubscribe(channel, listener)
                if rng.random() < 0.5:
                    await asyncio.sleep(0)

        for _ in range(5):
            await asyncio.gather(*(churn(listener) for listener in listeners))
            remaining = bus.listener_count(channel)
            subscribed = channel in bus.channels
            assert subscribed == (remaining > 0)
            await eventually_backend(bus_harness, bus, channel, int(subscribed))

        assert bus._locks == {}, "per-channel locks must not outlive their users"

        # Whoever is registered gets the next event; nobody else does.
        for listener in listeners:
            listener.deliveries.clear()
        registered = [r for r in listeners if bus.is_listening(channel, r)]
        assert len(registered) == bus.listener_count(channel)
        await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        if not registered:
            registered = [Recorder("late")]
            await bus.subscribe(channel, registered[0])
            await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
        for listener in registered:
            await listener.wait_for(1)
        await asyncio.sleep(0.05)
        for listener in listeners:
            if listener not in registered:
                assert listener.deliveries == []


async def test_message_committed_after_subscribe_is_never_lost_under_churn(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        channel = contact_channel(CONTACT)
        stop = asyncio.Event()

        async def churn(i: int) -> None:
            # Other sockets come and go on the same channel meanwhile.
            listener = Recorder(f"churn-{i}")
            while not stop.is_set():
                await bus.subscribe(channel, listener)
                await asyncio.sleep(0)
                await bus.unsubscribe(channel, listener)

        async def watch(i: int) -> None:
            # Subscribe (perhaps as the first listener, perhaps while the last one leaves),
            # commit, and expect to hear that commit.
            watcher = Recorder(f"watcher-{i}")
            for _ in range(3):
                await bus.subscribe(channel, watcher)
                data = await bus.commit(Commit(CONTACT, None, head(CONTACT), ttl=60, ended=False))
                await eventually(lambda d=data: d in {x.text.encode() for x in watcher.deliveries})
                assert watcher.seqs == sorted(watcher.seqs)
                await bus.unsubscribe(channel, watcher)
                await asyncio.sleep(0)

        churners = [asyncio.create_task(churn(i)) for i in range(4)]
        try:
            await asyncio.gather(*(watch(i) for i in range(10)))
        finally:
            stop.set()
            await asyncio.gather(*churners)
        assert bus.listener_count(channel) == 0
        assert list(bus.channels) == []
        assert bus._locks == {}
        await eventually_backend(bus_harness, bus, channel, 0)


async def test_close_is_idempotent_and_stops_reading(bus_harness) -> None:
    bus = bus_harness.bus()
    async with bus:
        assert bus.connected
    assert not bus.connected
    await bus.close()
    assert not bus.connected


# -- a queue's figures -----------------------------------------------------------------------


def figures_head(queue: str, waiting: int) -> bytes:
    return encode_queue_head(
        instance="i-1",
        queue=queue,
        name="Sales",
        waiting=waiting,
        oldest=30,
        agents_available=1,
        at="2024-05-01T12:00:00.000Z",
        stale=False,
    )


async def test_queue_figures_are_stored_and_published_on_the_queue_channel(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        listener = Recorder()
        await bus.subscribe(queue_channel("q-1"), listener)
        first = await bus.commit_queue_figures("q-1", figures_head("q-1", 3), ttl=60)
        second = await bus.commit_queue_figures(
            "q-1", figures_head("q-1", 2), ttl=60, floor=1_000_000
        )
        assert first == figures_head("q-1", 3) + b"1}"
        assert second == figures_head("q-1", 2) + b"1000001}"  # above the floor
        deliveries = await listener.wait_for(2)
        assert all(isinstance(d.event, QueueFiguresEvent) for d in deliveries)
        assert [d.event.waiting for d in deliveries] == [3, 2]
        assert [d.text.encode() for d in deliveries] == [first, second]
        [stored, missing] = await bus.read_queue_figures(["q-1", "q-2"])
        assert stored is not None and stored.seq == 1_000_001 and stored.waiting == 2
        assert missing is None
        # The figures are no contact: the queue has no member, and no contact state reads them.
        assert await bus.queue_members("q-1") == []


async def test_queue_figures_and_members_share_the_queue_channel(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        listener = Recorder()
        await bus.subscribe(queue_channel("q-1"), listener)
        await bus.commit(Commit(CONTACT, "q-1", head(CONTACT, queue="q-1"), ttl=60, ended=False))
        await bus.commit_queue_figures("q-1", figures_head("q-1", 1), ttl=60)
        deliveries = await listener.wait_for(2)
        assert [type(d.event).__name__ for d in deliveries] == ["ContactEvent", "QueueFiguresEvent"]
