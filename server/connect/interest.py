"""What this process wants polled: subscriber counts, explicit tracks and lingering. No I/O.

A contact is wanted while a local socket watches it, while it lingers after its last watcher
left (so a page reload does not restart polling from nothing), while contact events say it
waits in a queue (so wallboards see the whole queue and a widget opened later is answered at
once), and, in a single process, while it is explicitly tracked. With several replicas,
explicit tracks are kept in Redis instead, so that any replica can drop them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.connect.coordination import Wanted

EXPLICIT_WEIGHT = 4.0


@dataclass(slots=True)
class Interest:
    instance: str
    queue: str | None = None
    subscribers: int = 0
    explicit: bool = False
    linger_until: float | None = None
    queued: bool = False  # contact events say it waits in `queue`

    @property
    def wanted(self) -> bool:
        return self.subscribers > 0 or self.explicit or self.linger_until is not None or self.queued

    @property
    def weight(self) -> float:
        """How much a read of this contact is worth to people: an explicit track first, then
        a watched contact, then one only a wallboard shows."""
        if self.explicit:
            return EXPLICIT_WEIGHT
        if self.subscribers > 0 or self.linger_until is not None:
            return 2.0
        return 1.0


class InterestBook:
    """Local interest per contact.

    Args:
        linger: seconds a contact stays wanted after its last watcher left.
    """

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self._entries: dict[str, Interest] = {}
        self._explicit_elsewhere: frozenset[str] = frozenset()

    def __contains__(self, contact: str) -> bool:
        return contact in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, contact: str, instance: str, queue: str | None) -> Interest:
        entry = self._entries.get(contact)
        if entry is None:
            entry = self._entries[contact] = Interest(instance, queue)
        elif queue is not None and entry.queue is None:
            entry.queue = queue
        return entry

    def watch(self, contact: str, instance: str, queue: str | None = None) -> None:
        entry = self._entry(contact, instance, queue)
        entry.subscribers += 1
        entry.linger_until = None

    def unwatch(self, contact: str, now: float) -> None:
        entry = self._entries.get(contact)
        if entry is None:
            return
        entry.subscribers = max(0, entry.subscribers - 1)
        if entry.subscribers == 0 and not entry.explicit and not entry.queued:
            if self.linger > 0:
                entry.linger_until = now + self.linger
            else:
                del self._entries[contact]

    def track(self, contact: str, instance: str, queue: str | None = None) -> None:
        entry = self._entry(contact, instance, queue)
        entry.instance = instance  # the backend knows; a subscriber only named one
        entry.explicit = True
        entry.linger_until = None

    def untrack(self, contact: str) -> None:
        """Drop an explicit track at once (no linger: the caller asked for it to stop)."""
        entry = self._entries.get(contact)
        if entry is None:
            return
        entry.explicit = False
        if entry.subscribers == 0 and not entry.queued:
            del self._entries[contact]

    def queued(self, contact: str, instance: str, queue: str) -> None:
        """Contact events say the contact waits in `queue`."""
        entry = self._entry(contact, instance, queue)
        entry.queue = queue  # a transfer moves it
        entry.queued = True

    def weight(self, contact: str) -> float:
        if contact in self._explicit_elsewhere:
            return EXPLICIT_WEIGHT
        entry = self._entries.get(contact)
        return 1.0 if entry is None else entry.weight

    def tracked_explicitly(self, contact: str) -> bool:
        """Whether the backend tracks `contact` explicitly (here, or through another replica:
        `explicit_elsewhere`): such contacts are polled before subscriber-only ones, and do
        not count against a client's quota of polled contacts."""
        entry = self._entries.get(contact)
        return contact in self._explicit_elsewhere or (entry is not None and entry.explicit)

    def explicit_elsewhere(self, contacts: Iterable[str]) -> None:
        """The contacts tracked explicitly anywhere (with several replicas the explicit tracks
        live in Redis; the coordinator's last reconcile saw these)."""
        self._explicit_elsewhere = frozenset(contacts)

    def forget(self, contact: str) -> None:
        """The contact ended: nothing should want it any more."""
        self._entries.pop(contact, None)

    def expire(self, now: float) -> None:
        """Drop contacts whose linger has run out."""
        for contact, entry in list(self._entries.items()):
            if entry.linger_until is not None and now >= entry.linger_until:
                del self._entries[contact]

    def expire_due(self, now: float) -> bool:
        """Whether some contact's linger has run out (so `expire` would change something)."""
        return any(
            e.linger_until is not None and now >= e.linger_until for e in self._entries.values()
        )

    def wanted(self, *, include_explicit: bool) -> dict[str, Wanted]:
        return {
            contact: Wanted(entry.instance, entry.queue, entry.explicit)
            for contact, entry in self._entries.items()
            if entry.subscribers > 0
            or entry.linger_until is not None
            or entry.queued
            or (entry.explicit and include_explicit)
        }

    def counts(self) -> tuple[int, int]:
        """(contacts with subscribers, contacts tracked explicitly)."""
        entries = self._entries.values()
        return sum(1 for e in entries if e.subscribers), sum(1 for e in entries if e.explicit)
