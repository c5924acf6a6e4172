"""One channel's local fan-out: the listeners in this process, each handed every event. No I/O.

Every listener is handed each event's `Delivery`: the decoded event and the text exactly as
published, the same objects for all of them, so nothing downstream decodes again. In the
service each channel has one listener, the browser side's `ChannelSockets`
(server/browser/fanout.py), which hands the event on to the channel's sockets; the bus knows
nothing of sockets or frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from server.events import ContactEvent, QueueFiguresEvent

log = logging.getLogger("queuecast.bus")


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    event: ContactEvent | QueueFiguresEvent  # the figures only on a queue's channel
    text: str  # the message exactly as published, shared by every listener


class Listener(Protocol):
    def deliver(self, delivery: Delivery) -> None:
        """Called in the reader task for every message; must not block."""


class Channel:
    __slots__ = ("listeners", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: set[Listener] = set()

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def __contains__(self, listener: object) -> bool:
        return listener in self.listeners

    def __len__(self) -> int:
        return len(self.listeners)

    def add(self, listener: Listener) -> None:
        self.listeners.add(listener)

    def forget(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def fan_out(self, delivery: Delivery) -> None:
        for listener in tuple(self.listeners):
            try:
                listener.deliver(delivery)
            except Exception:
                log.exception("listener failed", extra={"channel": self.name})
