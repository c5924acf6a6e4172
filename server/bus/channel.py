"""One channel's local fan-out: its listeners, and the writers some of them attached. No I/O.

Every listener is handed each event's `Delivery` (the decoded event and the text exactly as
published, shared by all). A listener that holds the channel's newest update may instead attach
a *writer* (`attach`): the channel then writes the next updates' encoded bytes (a WebSocket
frame in the service) with that one call per listener and skips `deliver`. That is the fan-out's
steady state, and at 50,000 deliveries a second the cost per socket is what counts
(docs/benchmarks.md). Any other event (`ended`, an update that is not newer) first detaches
every writer, telling each listener the last update it was written, and then goes through
`deliver` to everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from server import metrics
from server.events import ContactEvent

log = logging.getLogger("queuecast.bus")


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    event: ContactEvent
    text: str  # the message exactly as published, shared by every socket


class Listener(Protocol):
    def deliver(self, delivery: Delivery) -> None:
        """Called in the reader task for every message; must not block."""


Write = Callable[[bytes], object]
# Told, when its writer is detached, the last update written to it (None: nothing was).
Detached = Callable[[ContactEvent | None], None]


class Channel:
    __slots__ = ("latest", "listeners", "name", "writers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: set[Listener] = set()
        # listener -> (write, detached); a listener is in one of the two, never both.
        self.writers: dict[Listener, tuple[Write, Detached]] = {}
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
            metrics.BUS_WRITERS.dec()

    def attach(self, listener: Listener, holds: int, write: Write, detached: Detached) -> bool:
        """Write the next updates with `write` instead of delivering them; see `Bus.attach`."""
        if listener not in self.listeners or self.latest is None or self.latest.seq != holds:
            return False
        self.listeners.discard(listener)
        self.writers[listener] = (write, detached)
        metrics.BUS_WRITERS.inc()
        return True

    def detach(self, listener: Listener) -> ContactEvent | None:
        """Deliver to the listener again; returns the last update written to it, if any."""
        if self.writers.pop(listener, None) is None:
            return None
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
        if event.type == "update" and (newest is None or event.seq > newest.seq):
            self.latest = event
            if self.writers:
                # Writers are the service's WebSocket sockets: counted once per message.
                metrics.FRAMES_SENT.inc(len(self.writers))
                data = encode(delivery.text)
                for listener, (write, _detached) in tuple(self.writers.items()):
                    try:
                        write(data)
                    except Exception:
                        log.exception("writer failed", extra={"channel": self.name})
                        # It holds the update before this one, and gets this one below.
                        self._detach_told(listener, newest)
        elif self.writers:
            self._detach_all()
        for listener in tuple(self.listeners):
            try:
                listener.deliver(delivery)
            except Exception:
                log.exception("listener failed", extra={"channel": self.name})

    def _detach_told(self, listener: Listener, written: ContactEvent | None) -> None:
        writer = self.writers.pop(listener, None)
        if writer is not None:
            metrics.BUS_WRITERS.dec()
            self.listeners.add(listener)
            writer[1](written)

    def _detach_all(self) -> None:
        writers, self.writers = self.writers, {}
        metrics.BUS_WRITERS.dec(len(writers))
        for listener, (_write, detached) in writers.items():
            self.listeners.add(listener)
            detached(self.latest)
