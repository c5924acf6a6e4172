"""What the contact-event feed hands each event to: the seam between ingest and the queue model.

The feed (server/connect/event_feed.py) calls `apply_contact_event` once per event per replica,
in log order; what an event does to positions and ended contacts is the sink's business.
"""

from __future__ import annotations

from typing import Protocol

from server.connect.contact_events import ConnectContactEvent


class ContactEventSink(Protocol):
    def apply_contact_event(self, event: ConnectContactEvent) -> None:
        """Apply one event. Synchronous: it must not block the loop. An exception is logged
        and counted by the feed, which goes on with the next event."""
