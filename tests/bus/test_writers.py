"""Attached writers (`SocketFanout.attach`, server/browser/fanout.py): the fan-out writes a
caught-up session's updates itself.

Run against every bus backend, like the contract: what a writer gets must be exactly what
`deliver` would have given, in the same order, and any event the writer cannot take must
reach the session through `deliver` with the session told what it was written.
"""

from __future__ import annotations

import asyncio

from server.browser.fanout import FrameCache, SocketFanout
from server.bus import Bus, Commit, contact_channel
from server.events import ContactEvent
from tests.bus.conftest import Recorder, eventually, head

CONTACT = "c-w"
CHANNEL = contact_channel(CONTACT)


class ListSink:
    """A `Sink` that keeps what it is sent; `takes` bytes of each frame at most (a socket
    whose buffer is full takes fewer than a frame)."""

    def __init__(self, written: list[bytes], takes: int | None = None) -> None:
        self.written = written
        self.takes = takes
        self.rests: list[bytes] = []

    def send(self, data: bytes) -> int:
        taken = data if self.takes is None else data[: self.takes]
        self.written.append(taken)
        return len(taken)

    def finish(self, rest: memoryview) -> None:
        self.rests.append(bytes(rest))


def fanout_of(bus: Bus) -> SocketFanout:
    """The fan-out over `bus`, handing writers the published bytes (no WebSocket framing)."""
    return SocketFanout(bus, FrameCache(str.encode))


class AttachedRecorder(Recorder):
    """A listener that attaches whenever it holds the newest update, as sessions do."""

    def __init__(self, fanout: SocketFanout, name: str = "") -> None:
        super().__init__(name)
        self.fanout = fanout
        self.written: list[bytes] = []
        self.sink = ListSink(self.written)
        self.detaches: list[ContactEvent | None] = []
        self.attached = False

    @property
    def holds(self) -> int:
        seqs = self.seqs + [int(w.rsplit(b":", 1)[1].rstrip(b"}")) for w in self.written]
        return max(seqs, default=0)

    def try_attach(self) -> bool:
        self.attached = self.fanout.attach(CHANNEL, self, self.holds, self.sink, self.on_detached)
        return self.attached

    def on_detached(self, latest: ContactEvent | None) -> None:
        self.attached = False
        self.detaches.append(latest)

    @property
    def all_seqs(self) -> list[int]:
        """Every seq this listener got, by either path, in order of arrival."""
        return sorted(self.seqs + [int(w.rsplit(b":", 1)[1].rstrip(b"}")) for w in self.written])


async def commit(bus: Bus, position: int = 3, *, ended: bool = False) -> bytes:
    return await bus.commit(
        Commit(CONTACT, None, head(CONTACT, position=position, ended=ended), ttl=60, ended=ended)
    )


async def attached_listener(bus: Bus, fanout: SocketFanout) -> AttachedRecorder:
    """A subscribed listener that got the channel's first update and attached a writer."""
    listener = AttachedRecorder(fanout)
    await fanout.subscribe(CHANNEL, listener)
    await commit(bus)
    await listener.wait_for(1)
    assert listener.try_attach()
    return listener


async def test_a_writer_attaches_only_when_it_holds_the_newest_update(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        fanout = fanout_of(bus)
        listener = AttachedRecorder(fanout)
        assert not listener.try_attach(), "not subscribed yet"
        await fanout.subscribe(CHANNEL, listener)
        assert not listener.try_attach(), "nothing dispatched on the channel yet"
        await commit(bus)
        await listener.wait_for(1)
        assert not fanout.attach(CHANNEL, listener, 0, listener.sink, print)
        assert not fanout.attach(CHANNEL, listener, 2, listener.sink, print)
        assert listener.try_attach()


async def test_attached_writer_gets_the_encoded_updates_instead_of_deliver(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        fanout = fanout_of(bus)
        listener, plain = AttachedRecorder(fanout), Recorder("plain")
        await fanout.subscribe(CHANNEL, listener)
        await fanout.subscribe(CHANNEL, plain)
        await commit(bus)
        await listener.wait_for(1)
        assert listener.try_attach()
        committed = [await commit(bus, position=p) for p in (2, 1)]
        await plain.wait_for(3)
        await eventually(lambda: len(listener.written) == 2)
        assert listener.written == committed  # FrameCache(str.encode): the published bytes
        assert listener.seqs == [1], "deliver is skipped while attached"
        assert fanout.sessions_of(CHANNEL) == 2
        assert bus.listener_count(CHANNEL) == 1, "the bus delivers once, to the fan-out"


async def test_ended_detaches_with_what_was_written_then_delivers(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        fanout = fanout_of(bus)
        listener = await attached_listener(bus, fanout)
        await commit(bus, position=2)
        await commit(bus, ended=True)
        await listener.wait_for(2)
        assert listener.detaches and listener.detaches[0] is not None
        assert listener.detaches[0].seq == 2, "told the last update written to it"
        assert [d.event.type for d in listener.deliveries] == ["update", "ended"]
        assert listener.all_seqs == [1, 2, 3]


async def two_attached(bus: Bus, bad_sink: object) -> tuple[AttachedRecorder, AttachedRecorder]:
    """A good and a bad listener, both holding the channel's first update; the bad one
    attached with `bad_sink`."""
    fanout = fanout_of(bus)
    good, bad = AttachedRecorder(fanout, "good"), AttachedRecorder(fanout, "bad")
    for listener in (bad, good):
        await fanout.subscribe(CHANNEL, listener)
    await commit(bus)
    await good.wait_for(1)
    await bad.wait_for(1)
    assert good.try_attach()
    assert fanout.attach(CHANNEL, bad, 1, bad_sink, bad.on_detached)  # type: ignore[arg-type]
    return good, bad


async def test_a_short_send_detaches_and_finishes_the_frame(bus_harness) -> None:
    """A socket that takes part of a frame: the rest goes to `finish`, it holds the update."""
    async with bus_harness.bus() as bus:
        short_written: list[bytes] = []
        short = ListSink(short_written, takes=5)
        good, bad = await two_attached(bus, short)
        frame = await commit(bus, position=2)
        await eventually(lambda: len(good.written) == 1)
        await eventually(lambda: bool(bad.detaches))
        assert short_written[0] + short.rests[0] == frame, "the rest follows the first bytes"
        assert bad.detaches[0] is not None and bad.detaches[0].seq == 2, "it holds 2 now"
        assert bad.seqs == [1], "2 is not delivered again"
        await commit(bus, position=1)
        await bad.wait_for(2)
        assert bad.seqs == [1, 3], "the next update comes through deliver"
        assert len(good.written) == 2 and len(short_written) == 1


async def test_a_send_that_fails_hands_the_whole_frame_to_finish(bus_harness) -> None:
    """A failed socket (`OSError`) took nothing: `finish` writes the frame the transport's
    way, which fails the connection as it would have; others still get the update."""
    async with bus_harness.bus() as bus:

        class Broken(ListSink):
            def send(self, data: bytes) -> int:
                raise BrokenPipeError("socket gone")

        broken = Broken([])
        good, bad = await two_attached(bus, broken)
        frame = await commit(bus, position=2)
        await eventually(lambda: len(good.written) == 1)
        await eventually(lambda: bool(bad.detaches))
        assert broken.rests == [frame]
        assert bad.detaches[0] is not None and bad.detaches[0].seq == 2
        await commit(bus, position=1)
        await bad.wait_for(2)
        assert bad.seqs == [1, 3]
        assert len(good.written) == 2


async def test_a_writer_that_raises_is_detached_and_others_still_get_the_update(
    bus_harness,
) -> None:
    """Not a socket error (a bug): the update whose write failed comes through deliver."""
    async with bus_harness.bus() as bus:

        class Buggy(ListSink):
            def send(self, data: bytes) -> int:
                raise ValueError("bug")

        buggy = Buggy([])
        good, bad = await two_attached(bus, buggy)
        await commit(bus, position=2)
        await eventually(lambda: len(good.written) == 1)
        await eventually(lambda: bool(bad.detaches))
        assert bad.detaches[0] is not None and bad.detaches[0].seq == 1, "only 1 was written"
        assert buggy.rests == []
        await bad.wait_for(2)
        assert bad.seqs == [1, 2], "the update whose write failed came through deliver"
        await commit(bus, position=1)
        await bad.wait_for(3)
        assert bad.seqs == [1, 2, 3]
        assert len(good.written) == 2


async def test_detach_and_unsubscribe_end_the_writer(bus_harness) -> None:
    async with bus_harness.bus() as bus:
        fanout = fanout_of(bus)
        listener = await attached_listener(bus, fanout)
        await commit(bus, position=2)
        await eventually(lambda: len(listener.written) == 1)
        latest = fanout.detach(CHANNEL, listener)
        assert latest is not None and latest.seq == 2
        assert fanout.detach(CHANNEL, listener) is None, "idempotent"
        await commit(bus, position=1)
        await listener.wait_for(2)
        assert listener.seqs == [1, 3]

        assert listener.try_attach()
        await fanout.unsubscribe(CHANNEL, listener)
        assert fanout.sessions_of(CHANNEL) == 0
        assert bus.listener_count(CHANNEL) == 0
        await commit(bus, position=4)
        await asyncio.sleep(0.1)
        assert len(listener.written) == 1 and listener.seqs == [1, 3]


async def test_a_lost_connection_detaches_every_writer(listener_harness) -> None:
    """After a reconnection seqs may repeat (a store that restarted empty): `deliver` checks."""
    async with listener_harness.bus() as bus:
        fanout = fanout_of(bus)
        listener = await attached_listener(bus, fanout)
        assert await listener_harness.kill_listeners(CHANNEL) >= 1
        await eventually(lambda: bool(listener.detaches))
        await eventually(lambda: bus.connected)
        assert not listener.try_attach(), "the channel's newest update was forgotten"
        await commit(bus, position=2)
        await listener.wait_for(2)
        assert listener.try_attach()
