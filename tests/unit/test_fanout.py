"""The socket side of the fan-out (`SocketFanout`, `ChannelSockets`, `FrameCache`) on the memory
bus: one bus listener per channel, the channel's lifetime, a lost connection. What writers get
on every backend is tests/bus/test_writers.py."""

from __future__ import annotations

import asyncio

from server import metrics
from server.browser.fanout import ChannelSockets, FrameCache, SocketFanout
from server.browser.ws_protocol import text_frame
from server.bus import Bus, BusUnavailable, Commit, Delivery, MemoryBackend, contact_channel
from server.events import ContactEvent, QueueFiguresEvent
from tests.unit._factories import make_event, make_figures
from tests.unit._flaky_bus import FlakyMemoryBackend

CHANNEL = contact_channel("c-1")


class Recorder:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    def deliver(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)


class Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.send = self._send

    def _send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def finish(self, rest: memoryview) -> None:
        raise AssertionError("whole frames only")


def delivery(seq: int, type_: str = "update") -> Delivery:
    event = make_event(type=type_, seq=seq)
    return Delivery(CHANNEL, event, event.encode().decode())


def test_frames_are_built_once_per_message_text() -> None:
    calls: list[str] = []

    def encode(text: str) -> bytes:
        calls.append(text)
        return text_frame(text)

    cache = FrameCache(encode)
    shared = '{"seq":1}'
    assert cache.frame(shared) is cache.frame(shared)
    assert cache.frame(shared) == text_frame(shared)
    assert calls == [shared]
    cache.frame('{"seq":2}')
    assert len(calls) == 2


def test_a_channel_writes_attached_sessions_and_delivers_to_the_others() -> None:
    channel = ChannelSockets(CHANNEL, FrameCache(str.encode))
    attached, plain, sink = Recorder(), Recorder(), Sink()
    told: list[ContactEvent | None] = []
    channel.add(attached)
    channel.add(plain)
    channel.deliver(delivery(1))
    assert channel.attach(attached, 1, sink, told.append)
    assert not channel.attach(plain, 0, Sink(), told.append), "it does not hold the newest"
    channel.deliver(delivery(2))
    assert [d.event.seq for d in plain.deliveries] == [1, 2]
    assert [d.event.seq for d in attached.deliveries] == [1], "written, not delivered"
    assert sink.sent == [delivery(2).text.encode()]
    assert len(channel) == 2 and attached in channel
    channel.deliver(delivery(2))  # not newer: every writer is detached first
    assert told == [channel.latest] and told[0] is not None and told[0].seq == 2
    assert [d.event.seq for d in attached.deliveries] == [1, 2]


def test_queue_figures_are_delivered_like_any_event_that_is_not_a_newer_update() -> None:
    # (Figures come on a queue's channel, whose sessions never attach; were one attached, it
    # would be detached first, told what it holds, as for `ended`.)
    channel = ChannelSockets(CHANNEL, FrameCache(str.encode))
    session, sink = Recorder(), Sink()
    channel.add(session)
    channel.deliver(delivery(1))
    assert channel.attach(session, 1, sink, print)
    figures = make_figures(seq=5)
    told: list[ContactEvent | None] = []
    channel.detach(session)
    assert channel.attach(session, 1, sink, told.append)
    channel.deliver(Delivery(CHANNEL, figures, figures.encode().decode()))
    assert channel.latest is not None and channel.latest.seq == 1, "not an update"
    assert told == [channel.latest]
    assert [type(d.event) for d in session.deliveries] == [ContactEvent, QueueFiguresEvent]
    assert sink.sent == []


async def test_one_bus_listener_per_channel_and_the_last_session_takes_it_off() -> None:
    async with Bus(MemoryBackend()) as bus:
        fanout = SocketFanout(bus)
        a, b = Recorder(), Recorder()
        await fanout.subscribe(CHANNEL, a)
        await fanout.subscribe(CHANNEL, b)
        await fanout.subscribe(CHANNEL, b)
        assert fanout.sessions_of(CHANNEL) == 2
        assert bus.listener_count(CHANNEL) == 1
        await fanout.unsubscribe(CHANNEL, a)
        assert bus.listener_count(CHANNEL) == 1
        await fanout.unsubscribe(CHANNEL, b)
        await fanout.unsubscribe(CHANNEL, b)  # unknown by now: nothing happens
        assert fanout.sessions_of(CHANNEL) == 0
        assert bus.listener_count(CHANNEL) == 0
        assert CHANNEL not in bus.channels


async def test_a_subscribe_while_the_last_one_leaves_gets_a_channel_of_its_own() -> None:
    class SlowUnsubscribe(MemoryBackend):
        async def unsubscribe(self, channel: str) -> None:
            await asyncio.sleep(0.05)
            await super().unsubscribe(channel)

    async with Bus(SlowUnsubscribe()) as bus:
        fanout = SocketFanout(bus)
        leaving, joining = Recorder(), Recorder()
        await fanout.subscribe(CHANNEL, leaving)
        left = asyncio.create_task(fanout.unsubscribe(CHANNEL, leaving))
        await asyncio.sleep(0.01)  # the bus is unsubscribing now
        await fanout.subscribe(CHANNEL, joining)
        await left
        assert bus.listener_count(CHANNEL) == 1
        assert CHANNEL in bus.channels, "subscribed again after the removal"
        await bus.commit(Commit("c-1", None, make_event(seq=1).encode()[:-2], ttl=60, ended=False))
        async with asyncio.timeout(2):
            while not joining.deliveries:
                await asyncio.sleep(0.005)
        assert not leaving.deliveries


async def test_a_failed_subscribe_keeps_the_session_until_it_unsubscribes() -> None:
    class Down(MemoryBackend):
        async def subscribe(self, channel: str) -> None:
            raise BusUnavailable("down")

    async with Bus(Down()) as bus:
        fanout = SocketFanout(bus)
        session = Recorder()
        try:
            await fanout.subscribe(CHANNEL, session)
        except BusUnavailable:
            pass
        else:
            raise AssertionError("the bus is down")
        assert fanout.sessions_of(CHANNEL) == 1
        assert bus.listener_count(CHANNEL) == 0, "the bus registered nothing"
        await fanout.unsubscribe(CHANNEL, session)
        assert fanout.sessions_of(CHANNEL) == 0


async def test_a_lost_bus_connection_detaches_every_writer() -> None:
    backend = FlakyMemoryBackend()
    async with Bus(backend, reconnect_base=0.01) as bus:
        fanout = SocketFanout(bus)
        session, told = Recorder(), []
        await fanout.subscribe(CHANNEL, session)
        await bus.commit(Commit("c-1", None, make_event(seq=1).encode()[:-2], ttl=60, ended=False))
        async with asyncio.timeout(2):
            while not session.deliveries:
                await asyncio.sleep(0.005)
        assert fanout.attach(CHANNEL, session, 1, Sink(), told.append)
        backend.lose()
        async with asyncio.timeout(2):
            while not told:
                await asyncio.sleep(0.005)
        assert told[0] is not None and told[0].seq == 1
        assert not fanout.attach(CHANNEL, session, 1, Sink(), told.append), "newest forgotten"


async def test_frames_written_by_sessions_are_counted_once_per_loop_turn() -> None:
    async with Bus(MemoryBackend()) as bus:
        fanout = SocketFanout(bus)
        before = metrics.FRAMES_SENT._value.get()
        for _ in range(5):
            fanout.count_written()
        assert metrics.FRAMES_SENT._value.get() == before, "not yet: one update per turn"
        await asyncio.sleep(0)
        assert metrics.FRAMES_SENT._value.get() == before + 5
