"""The event bus: one interface, a memory and a Redis backend. It delivers events to local
listeners and knows nothing of sockets or frames (server/browser/fanout.py does)."""

from __future__ import annotations

from server.bus.base import BusBackend, BusUnavailable, Commit
from server.bus.core import Bus, Delivery, Listener
from server.bus.keys import contact_channel, queue_channel
from server.bus.memory import MemoryBackend

__all__ = [
    "Bus",
    "BusBackend",
    "BusUnavailable",
    "Commit",
    "Delivery",
    "Listener",
    "MemoryBackend",
    "contact_channel",
    "queue_channel",
]
