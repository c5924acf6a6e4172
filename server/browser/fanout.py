"""The socket side of the fan-out: each bus channel's sockets, and the write-through. No I/O of
its own (the sinks write).

The bus (server/bus/) hands each event of a channel once to one listener, the channel's
`ChannelSockets`, which hands it on to the sessions of the sockets subscribed to it, the same
`Delivery` to each. A session that holds the channel's newest update may instead *attach* its
socket's `Sink` (`SocketFanout.attach`): the channel's next updates are then framed once
(`FrameCache`) and the frame handed to each attached sink's `send`, one call per socket and no
`deliver`. That is the fan-out's steady state, and at 50,000 deliveries a second the cost per
socket is what counts (docs/benchmarks.md): in the service `send` is the socket's own `send`,
a C call, so between the bus and the kernel there is no Python per socket.

A `send` that does not take the whole frame (a full socket buffer, a failed connection) ends
the writer: the session is told it holds this update, and the frame's rest goes to the sink's
`finish`, which writes it the ordinary, buffered way. Any other event (`ended`, an update that
is not newer) first detaches every writer, telling each session the last update it was
written, and then goes through `deliver` to everyone. A lost bus connection detaches every
writer too (`SocketFanout.reset`): what comes after it may repeat or skip seqs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet

from server import metrics
from server.browser.ws_protocol import Sink, text_frame
from server.bus import Bus, BusUnavailable, Delivery, Listener
from server.events import ContactEvent

log = logging.getLogger("queuecast.fanout")

_NOBODY: frozenset[Listener] = frozenset()


# Told, when its writer is detached, the last update written to it (None: nothing was).
Detached = Callable[[ContactEvent | None], None]


class FrameCache:
    """A message's frame, built once for consecutive calls with the same text object: every
    session of a fan-out is handed the same text, so the writers and the sessions that write
    it themselves share one framing (server frames are unmasked: the same bytes for all)."""

    __slots__ = ("_encode", "_frame", "_text")

    def __init__(self, encode: Callable[[str], bytes] = text_frame) -> None:
        self._encode = encode
        self._text: str | None = None
        self._frame = b""

    def frame(self, text: str) -> bytes:
        if text is not self._text:
            self._frame = self._encode(text)
            self._text = text
        return self._frame


class ChannelSockets:
    """One channel's sessions in this process: delivered to, or attached (written to)."""

    __slots__ = ("_frames", "_sends", "latest", "name", "sessions", "writers")

    def __init__(self, name: str, frames: FrameCache) -> None:
        self.name = name
        self._frames = frames
        self.sessions: set[Listener] = set()
        # session -> (sink, detached); a session is in one of the two, never both.
        self.writers: dict[Listener, tuple[Sink, Detached]] = {}
        # What `_write` loops over, built from `writers` when it has changed: attaching and
        # detaching are rare, messages are not.
        self._sends: tuple[tuple[Listener, Callable[[bytes], int]], ...] | None = ()
        self.latest: ContactEvent | None = None  # the newest update fanned out

    def __bool__(self) -> bool:
        return bool(self.sessions or self.writers)

    def __contains__(self, session: object) -> bool:
        return session in self.sessions or session in self.writers

    def __len__(self) -> int:
        return len(self.sessions) + len(self.writers)

    def add(self, session: Listener) -> None:
        if session not in self.writers:
            self.sessions.add(session)

    def forget(self, session: Listener) -> None:
        """The session leaves the channel (unsubscribed): no callback."""
        self.sessions.discard(session)
        if self.writers.pop(session, None) is not None:
            self._sends = None
            metrics.BUS_WRITERS.dec()

    def attach(self, session: Listener, holds: int, sink: Sink, detached: Detached) -> bool:
        """Write the next updates to `sink` instead of delivering them; see `SocketFanout`."""
        if session not in self.sessions or self.latest is None or self.latest.seq != holds:
            return False
        self.sessions.discard(session)
        self.writers[session] = (sink, detached)
        self._sends = None
        metrics.BUS_WRITERS.inc()
        return True

    def detach(self, session: Listener) -> ContactEvent | None:
        """Deliver to the session again; returns the last update written to it, if any."""
        if self.writers.pop(session, None) is None:
            return None
        self._sends = None
        metrics.BUS_WRITERS.dec()
        self.sessions.add(session)
        return self.latest

    def reset(self) -> None:
        """The bus connection was lost: what comes after it may repeat or skip seqs (a store
        that restarted empty), so every session takes it through `deliver`, which checks."""
        self._detach_all()
        self.latest = None

    def deliver(self, delivery: Delivery) -> None:
        """The bus's `Listener`: one event of this channel, for all of its sessions."""
        event = delivery.event
        newest = self.latest
        sessions = self.sessions
        if (
            isinstance(event, ContactEvent)
            and event.type == "update"
            and (newest is None or event.seq > newest.seq)
        ):
            self.latest = event
            if self.writers:
                told = self._write(self._frames.frame(delivery.text), event, newest)
                if told:
                    sessions = self.sessions - told
        elif self.writers:
            self._detach_all()
        for session in tuple(sessions):
            try:
                session.deliver(delivery)
            except Exception:
                log.exception("session failed", extra={"channel": self.name})

    def _write(
        self, data: bytes, event: ContactEvent, before: ContactEvent | None
    ) -> AbstractSet[Listener]:
        """Hand `data` (the update `event`) to every sink; `before` is the update before it.

        Returns the sessions detached holding `event` (their send was short), which must
        not be delivered it again.
        """
        sends = self._sends
        if sends is None:
            sends = self._sends = tuple((s, sink.send) for s, (sink, _) in self.writers.items())
        # Counted once per message, not per socket.
        metrics.FRAMES_SENT.inc(len(sends))
        size = len(data)
        short: list[tuple[Listener, int]] = []
        failed: list[Listener] = []
        # Nothing in this loop can change `writers`: what a short or failed send leads to
        # (callbacks that detach) happens after it.
        for session, send in sends:
            try:
                sent = send(data)
            except OSError:
                sent = 0  # `finish` writes it the transport's way: buffered, or failing
            except Exception:
                log.exception("writer failed", extra={"channel": self.name})
                failed.append(session)
                continue
            if sent != size:
                short.append((session, sent))
        if not short and not failed:
            return _NOBODY
        for session in failed:
            # It holds the update before this one, and gets this one through `deliver`.
            self._detach_told(session, before)
        return self._finish_short(short, memoryview(data), event)

    def _finish_short(
        self, short: list[tuple[Listener, int]], data: memoryview, event: ContactEvent
    ) -> AbstractSet[Listener]:
        told: set[Listener] = set()
        for session, sent in short:
            writer = self.writers.get(session)
            if writer is None:
                continue
            # The rest first, before anything else can write to its socket.
            try:
                writer[0].finish(data[sent:])
            except Exception:
                log.exception("writer failed", extra={"channel": self.name})
            self._detach_told(session, event)  # the whole frame is written, or the socket failed
            told.add(session)
        return told

    def _detach_told(self, session: Listener, written: ContactEvent | None) -> None:
        writer = self.writers.pop(session, None)
        if writer is not None:
            self._sends = None
            metrics.BUS_WRITERS.dec()
            self.sessions.add(session)
            writer[1](written)

    def _detach_all(self) -> None:
        writers, self.writers = self.writers, {}
        self._sends = ()
        metrics.BUS_WRITERS.dec(len(writers))
        for session, (_sink, detached) in writers.items():
            self.sessions.add(session)
            detached(self.latest)


class SocketFanout:
    """The gateway's side of the bus: one `ChannelSockets` per channel its sockets watch,
    subscribed to the bus while it has a session; the frame cache; the frames-sent count."""

    def __init__(self, bus: Bus, frames: FrameCache | None = None) -> None:
        self.bus = bus
        self.frames = frames or FrameCache()
        self._channels: dict[str, ChannelSockets] = {}
        self._written = 0  # frames sessions wrote themselves, not yet counted in the metric
        bus.on_disconnect(self.reset)

    def subscribe(self, channel: str, session: Listener) -> Awaitable[None]:
        """Add a session to a channel; the awaitable returned is done once the bus delivers
        the channel's events.

        Raises:
            BusUnavailable: (awaiting) the bus could not subscribe. The session stays in the
                channel until `unsubscribe` (which the session always calls for what it
                asked for).
        """
        found = self._channels.get(channel)
        if found is None:
            found = self._channels[channel] = ChannelSockets(channel, self.frames)
        found.add(session)
        # Every session waits for the bus, not only the first: a second subscriber arriving
        # while the first one's SUBSCRIBE is in flight must not return before it is confirmed.
        # The bus's coroutine itself is returned: no frame of this method per waiting socket
        # (thousands wait here when sockets arrive in a burst).
        return self.bus.subscribe(channel, found)

    async def unsubscribe(self, channel: str, session: Listener) -> None:
        """Remove a session; the last one takes the channel off the bus."""
        found = self._channels.get(channel)
        if found is None or session not in found:
            return
        found.forget(session)
        if found:
            return
        # Dropped before the bus is awaited: a session that subscribes meanwhile gets a new
        # `ChannelSockets`, whose bus subscription waits behind this one's removal.
        del self._channels[channel]
        with contextlib.suppress(BusUnavailable):
            await self.bus.unsubscribe(channel, found)

    def attach(
        self, channel: str, session: Listener, holds: int, sink: Sink, detached: Detached
    ) -> bool:
        """Write the channel's next updates to `sink` instead of delivering them.

        Only a subscribed session that holds exactly the newest update fanned out on the
        channel (`holds` is its seq) can attach: every later update is then new to it. The
        writer stays until `detach`, `unsubscribe`, an event that must be delivered, a lost
        bus connection, or a `send` that does not take a whole frame; all but the first two
        call `detached`. Returns whether it attached.
        """
        found = self._channels.get(channel)
        return found is not None and found.attach(session, holds, sink, detached)

    def detach(self, channel: str, session: Listener) -> ContactEvent | None:
        """Deliver to the session again; returns the last update written to it, if any."""
        found = self._channels.get(channel)
        return None if found is None else found.detach(session)

    def reset(self) -> None:
        """The bus connection was lost: every writer is detached (`ChannelSockets.reset`)."""
        for found in tuple(self._channels.values()):
            found.reset()

    def sessions_of(self, channel: str) -> int:
        found = self._channels.get(channel)
        return 0 if found is None else len(found)

    def count_written(self) -> None:
        """A session wrote a frame itself (`FrameWriter.write_frame`)."""
        # One metric update per fan-out instead of one per socket (the counter takes a lock).
        if not self._written:
            asyncio.get_running_loop().call_soon(self._publish_written)
        self._written += 1

    def _publish_written(self) -> None:
        written, self._written = self._written, 0
        metrics.FRAMES_SENT.inc(written)
