"""The contact search index behind SearchContacts: eventually consistent, as Connect's is.

Every model event (QUEUED, CONNECTED_TO_AGENT, DISCONNECTED) adds a version of its contact's
search record, effective from the event's simulated time. A search at simulated time `now` with
a lag of `lag` seconds sees each contact as its newest version effective at or before
`now - lag`: a contact appears, and each of its changes shows, `lag` Connect-clock seconds after
it happened. Lag is on the Connect clock (not real time) so a search answers from the same
history the timestamps in its results describe, and a paused emulator answers the same thing
every time. No I/O, no clock of its own.

Bounded like the model's history: a contact is forgotten, here and in the model alike, once
`max_left` contacts have left their queue after it did.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from server.emulator.model import ModelEvent


@dataclass(frozen=True)
class SearchRecord:
    """One contact as the index knows it at one moment (Connect-clock epoch seconds)."""

    contact_id: str
    instance_id: str
    queue_id: str
    initiated_at: float
    enqueued_at: float
    agent_id: str | None = None
    connected_at: float | None = None
    disconnected_at: float | None = None

    @property
    def queued_only(self) -> bool:
        """Waiting in its queue: neither connected to an agent nor disconnected yet."""
        return self.connected_at is None and self.disconnected_at is None


class ContactSearchIndex:
    """Versions of every known contact's search record, by the time each became true."""

    def __init__(self, max_left: int) -> None:
        self.max_left = max_left
        self._versions: dict[str, list[tuple[float, SearchRecord]]] = {}
        self._left: OrderedDict[str, None] = OrderedDict()  # contacts that left, oldest first

    def record(self, event: ModelEvent) -> None:
        """Add the version of its contact that `event` makes (events come in time order)."""
        contact = event.contact
        versions = self._versions.get(contact.contact_id)
        if event.kind == "QUEUED":
            record = SearchRecord(
                contact.contact_id,
                contact.instance_id,
                contact.queue_id,
                initiated_at=contact.enqueued_at,  # the model's contacts start in their queue
                enqueued_at=contact.enqueued_at,
            )
            self._versions[contact.contact_id] = [(event.at, record)]
            return
        if versions is None:
            return  # forgotten already
        latest = versions[-1][1]
        if event.kind == "CONNECTED_TO_AGENT":
            record = dataclasses.replace(latest, agent_id=contact.agent_id, connected_at=event.at)
        else:
            record = dataclasses.replace(latest, disconnected_at=event.at)
        if latest.queued_only:
            self._left_queue(contact.contact_id)
        versions.append((event.at, record))

    def visible(self, instance_id: str, now: float, lag: float) -> Iterator[SearchRecord]:
        """Every contact of `instance_id` as a search at `now` sees it, `lag` seconds behind."""
        horizon = now - lag
        for versions in self._versions.values():
            if versions[0][1].instance_id != instance_id or versions[0][0] > horizon:
                continue
            seen = versions[0][1]
            for at, record in versions[1:]:
                if at > horizon:
                    break
                seen = record
            yield seen

    def _left_queue(self, contact_id: str) -> None:
        self._left[contact_id] = None
        while len(self._left) > self.max_left:
            old, _ = self._left.popitem(last=False)
            self._versions.pop(old, None)
