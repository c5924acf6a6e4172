"""One channel's local fan-out: its listeners, and the writers some of them attached. No I/O.

Every listener is handed each event's `Delivery` (the decoded event and the text exactly as
published, shared by all). A listener that holds the channel's newest update may instead attach
a `Sink` (`attach`): the channel then hands the next updates' encoded bytes (a WebSocket frame
in the service) to the sink's `send`, one call per listener and no `deliver`. That is the
fan-out's steady state, and at 50,000 deliveries a second the cost per socket is what counts
(docs/benchmarks.md): in the service `send` is the socket's own `send`, a C call.

A `send` that does not take the whole frame (a full socket buffer, a failed connection) ends
the writer: the listener is told it holds this update, and the frame's rest goes to the sink's
`finish`, which writes it the ordinary, buffered way. Any other event (`ended`, an update that
is not newer) first detaches every writer, telling each listener the last update it was
written, and then goes through `deliver` to everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

from server import metrics
from server.events import ContactEvent, QueueFiguresEvent

log = logging.getLogger("queuecast.bus")

_NOBODY: frozenset[Listener] = frozenset()


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    event: ContactEvent | QueueFiguresEvent  # the figures only on a queue's channel
    text: str  # the message exactly as published, shared by every socket


class Listener(Protocol):
    def deliver(self, delivery: Delivery) -> None:
        """Called in the reader task for every message; must not block."""


class Sink(Protocol):
    """Where an attached listener's frames are written."""

    # Takes what it can of a frame at once and returns how many bytes it took; an OSError
    # counts as none (a socket's `send`). An attribute, not a method: the fan-out calls it
    # once per listener and message, so it should be a C function, not a Python wrapper.
    send: Callable[[bytes], int]

    def finish(self, rest: memoryview) -> None:
        """Write the rest of a frame `send` did not take whole, after its first bytes, the
        ordinary way (buffered, or failing the connection); the sink is not used again."""


# Told, when its writer is detached, the last update written to it (None: nothing was).
Detached = Callable[[ContactEvent | None], None]


class Channel:
    __slots__ = ("_sends", "latest", "listeners", "name", "writers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: set[Listener] = set()
        # listener -> (sink, detached); a listener is in one of the two, never both.
        self.writers: dict[Listener, tuple[Sink, Detached]] = {}
        # What `fan_out` loops over, built from `writers` when it has changed: attaching and
        # detaching are rare, messages are not.
        self._sends: tuple[tuple[Listener, Callable[[bytes], int]], ...] | None = ()
        self.latest: ContactEvent | None = None  # the newest update fanned out

    def __bool__(self) -> bool:
        return bool(self.listeners or self.writers)

    def __contains__(self, listener: Listener) -> bool:
        return listener in self.listeners or listener in self.writers

    def __len__(self) -> int:
        return len(self.listeners) + len(self.writers)

    def add(self, listener: Listener) -> None:
        if listener not in self.writers:
            self.listeners.add(listener)

    def forget(self, listener: Listener) -> None:
        """The listener leaves the channel (unsubscribed): no callback."""
        self.listeners.discard(listener)
        if self.writers.pop(listener, None) is not None:
            self._sends = None
            metrics.BUS_WRITERS.dec()

    def attach(self, listener: Listener, holds: int, sink: Sink, detached: Detached) -> bool:
        """Write the next updates to `sink` instead of delivering them; see `Bus.attach`."""
        if listener not in self.listeners or self.latest is None or self.latest.seq != holds:
            return False
        self.listeners.discard(listener)
        self.writers[listener] = (sink, detached)
        self._sends = None
        metrics.BUS_WRITERS.inc()
        return True

    def detach(self, listener: Listener) -> ContactEvent | None:
        """Deliver to the listener again; returns the last update written to it, if any."""
        if self.writers.pop(listener, None) is None:
            return None
        self._sends = None
        metrics.BUS_WRITERS.dec()
        self.listeners.add(listener)
        return self.latest

    def reset(self) -> None:
        """The connection was lost: what comes after it may repeat or skip seqs (a store that
        restarted empty), so every listener takes it through `deliver`, which checks."""
        self._detach_all()
        self.latest = None

    def fan_out(self, delivery: Delivery, encode: Callable[[str], bytes]) -> None:
        event = delivery.event
        newest = self.latest
        listeners = self.listeners
        if (
            isinstance(event, ContactEvent)
            and event.type == "update"
            and (newest is None or event.seq > newest.seq)
        ):
            self.latest = event
            if self.writers:
                told = self._write(encode(delivery.text), event, newest)
                if told:
                    listeners = self.listeners - told
        elif self.writers:
            self._detach_all()
        for listener in tuple(listeners):
            try:
                listener.deliver(delivery)
            except Exception:
                log.exception("listener failed", extra={"channel": self.name})

    def _write(
        self, data: bytes, event: ContactEvent, before: ContactEvent | None
    ) -> AbstractSet[Listener]:
        """Hand `data` (the update `event`) to every sink; `before` is the update before it.

        Returns the listeners detached holding `event` (their send was short), which must
        not be delivered it again.
        """
        sends = self._sends
        if sends is None:
            sends = self._sends = tuple((lst, sink.send) for lst, (sink, _) in self.writers.items())
        # Writers are the service's WebSocket sockets: counted once per message.
        metrics.FRAMES_SENT.inc(len(sends))
        size = len(data)
        short: list[tuple[Listener, int]] = []
        failed: list[Listener] = []
        # Nothing in this loop can change `writers`: what a short or failed send leads to
        # (callbacks that detach) happens after it.
        for listener, send in sends:
            try:
                sent = send(data)
            except OSError:
                sent = 0  # `finish` writes it the transport's way: buffered, or failing
            except Exception:
                log.exception("writer failed", extra={"channel": self.name})
                failed.append(listener)
                continue
            if sent != size:
                short.append((listener, sent))
        if not short and not failed:
            return _NOBODY
        for listener in failed:
            # It holds the update before this one, and gets this one through `deliver`.
            self._detach_told(listener, before)
        return self._finish_short(short, memoryview(data), event)

    def _finish_short(
        self, short: list[tuple[Listener, int]], data: memoryview, event: ContactEvent
    ) -> AbstractSet[Listener]:
        told: set[Listener] = set()
        for listener, sent in short:
            writer = self.writers.get(listener)
            if writer is None:
                continue
            # The rest first, before anything else can write to its socket.
            try:
                writer[0].finish(data[sent:])
            except Exception:
                log.exception("writer failed", extra={"channel": self.name})
            self._detach_told(listener, event)  # the whole frame is written, or the socket failed
            told.add(listener)
        return told

    def _detach_told(self, listener: Listener, written: ContactEvent | None) -> None:
        writer = self.writers.pop(listener, None)
        if writer is not None:
            self._sends = None
            metrics.BUS_WRITERS.dec()
            self.listeners.add(listener)
            writer[1](written)

    def _detach_all(self) -> None:
        writers, self.writers = self.writers, {}
        self._sends = ()
        metrics.BUS_WRITERS.dec(len(writers))
        for listener, (_write, detached) in writers.items():
            self.listeners.add(listener)
            detached(self.latest)
