"""What the poller knows of one tracked contact, and the diff rule. No I/O.

The rule compares a fresh observation with the last *published* value, not the last polled
one, so that a wait estimate drifting one second per poll still publishes once it has moved by
the threshold in total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.backoff import Backoff
from server.events import Basis, ContactEvent, EventType


@dataclass(frozen=True, slots=True)
class Observation:
    """What is known of a contact's place: its own GetContactMetrics answer (`read`), or the
    queue book's inference from events and other contacts' reads."""

    position: int
    ewt: int | None
    basis: Basis = "read"


@dataclass(slots=True)
class ContactState:
    instance: str
    contact: str
    queue: str | None = None
    published: bool = False
    published_position: int | None = None
    published_ewt: int | None = None
    published_stale: bool = False
    published_basis: Basis | None = None
    last_fresh: float | None = None  # monotonic time of the last successful poll
    last_fresh_wall: float | None = None  # wall-clock time of that poll, for `at`
    queue_asked: bool = False  # DescribeContact answered (or cannot help)
    seq: int = 0  # the last seq published, a floor for the next one
    enqueued: str | None = None  # ISO-8601, from DescribeContact
    unplaced_read: Observation | None = None  # a read taken before its queue was known
    retry: Backoff = field(default_factory=lambda: Backoff(0.5, 30.0))

    @classmethod
    def resume(
        cls, instance: str, contact: str, queue: str | None, stored: ContactEvent | None
    ) -> ContactState:
        """A state that continues from what the store last published for this contact."""
        state = cls(instance=instance, contact=contact, queue=queue)
        if stored is not None:
            state.seq = stored.seq
        if stored is not None and not stored.ended:
            state.published = True
            state.published_position = stored.position
            state.published_ewt = stored.ewt
            state.published_stale = stored.stale
            state.published_basis = stored.basis
            state.queue = queue or stored.queue
            state.enqueued = stored.enqueued
        return state


def change_for(state: ContactState, seen: Observation, ewt_threshold: float) -> EventType | None:
    """The event a fresh observation calls for, or `None` when nothing changed enough.

    Args:
        state: the contact's state before this observation.
        seen: what the poll returned.
        ewt_threshold: seconds the wait estimate must move to be worth an update.
    """
    if not state.published:
        return "snapshot"
    if state.published_stale:
        return "update"  # fresh again: subscribers must learn it even if the values are equal
    if seen.position != state.published_position:
        return "update"
    if (seen.ewt is None) != (state.published_ewt is None):
        return "update"
    moved = (
        seen.ewt is not None
        and state.published_ewt is not None
        and abs(seen.ewt - state.published_ewt) >= max(ewt_threshold, 1e-9)
    )
    return "update" if moved else None


def is_stale(state: ContactState, now: float, stale_after: float) -> bool:
    """Whether the published value has gone without confirmation for too long."""
    return (
        state.published
        and not state.published_stale
        and state.last_fresh is not None
        and now - state.last_fresh >= stale_after
    )
