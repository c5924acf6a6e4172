"""ContactPublisher: turns what the poller learnt into committed events.

Each commit carries the contact's last known seq as a floor, so seq keeps rising even when the
store lost its counters. A commit that fails (the bus is down) is not recorded as published:
the next poll's diff publishes again, and an end stays pending until it is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.bus import Bus, BusUnavailable, Commit
from server.connect.contact_state import ContactState
from server.events import Basis, EventType, encode_head, seq_of, utc_iso

log = logging.getLogger("queuecast.poller")


@dataclass(slots=True)
class PendingEnd:
    state: ContactState
    reason: str
    committing: bool = False
    not_before: float = 0.0  # monotonic: a poll's end may wait for the event that says why


class ContactPublisher:
    """Commits states, stale marks and ends of contacts to the bus.

    Args:
        bus: where events are committed.
        state_ttl: seconds a state is kept after its last change.
        tombstone_ttl: seconds an `ended` state is kept.
        wall: wall clock, for the `at` of events.
        on_ended: awaited once an end is committed (e.g. release the contact's lease).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        state_ttl: float,
        tombstone_ttl: float,
        wall: Callable[[], float],
        on_ended: Callable[[str], Awaitable[None]],
    ) -> None:
        self._bus = bus
        self._state_ttl = state_ttl
        self._tombstone_ttl = tombstone_ttl
        self._wall = wall
        self._on_ended = on_ended
        self._ends: dict[str, PendingEnd] = {}

    def ending(self, contact: str) -> bool:
        """Whether an end of `contact` is waiting to be committed."""
        return contact in self._ends

    def pending_ends(self, now: float = float("inf")) -> list[PendingEnd]:
        """Ends not being committed whose time has come (`now`: monotonic)."""
        return [e for e in self._ends.values() if not e.committing and e.not_before <= now]

    async def publish(
        self,
        state: ContactState,
        kind: EventType,
        position: int | None,
        ewt: int | None,
        *,
        stale: bool,
        basis: Basis | None = None,
    ) -> bool:
        """Commit a state; on success record it as the contact's last published one."""
        head = encode_head(
            kind,
            instance=state.instance,
            contact=state.contact,
            queue=state.queue,
            position=position,
            ewt=ewt,
            at=utc_iso(state.last_fresh_wall or self._wall()),
            stale=stale,
            reason=None,
            enqueued=state.enqueued,
            basis=basis,
        )
        try:
            data = await self._bus.commit(self._commit(state, head, ended=False))
        except BusUnavailable as exc:
            log.warning("could not publish, will retry", extra={"error": str(exc)})
            return False
        state.seq = seq_of(data)
        state.published = True
        state.published_position, state.published_ewt = position, ewt
        state.published_stale = stale
        state.published_basis = basis
        return True

    def _commit(self, state: ContactState, head: bytes, *, ended: bool) -> Commit:
        # The floor: the last seq this process saw for the contact, kept even when the
        # store lost its counter. An end is kept for its own, usually shorter, TTL.
        ttl = self._tombstone_ttl if ended else self._state_ttl
        return Commit(state.contact, state.queue, head, ttl=ttl, ended=ended, floor=state.seq)

    async def publish_stale(self, state: ContactState) -> None:
        """Tell subscribers the last published values are no longer confirmed."""
        ok = await self.publish(
            state,
            "update",
            state.published_position,
            state.published_ewt,
            stale=True,
            basis=state.published_basis,
        )
        if not ok:
            state.published_stale = False  # so that the next sweep tries again

    async def retire(self, state: ContactState) -> None:
        """Nobody wants `state`'s contact polled any more, yet it has not ended: shown as
        stale (never left looking live) and out of its queue's members (wallboards drop it).
        A subscriber who comes back gets the stale state and makes it polled again."""
        try:
            if state.published and not state.published_stale:
                await self.publish_stale(state)
            if state.queue is not None:
                await self._bus.leave_queue(state.queue, state.contact)
        except BusUnavailable as exc:
            # Its membership lapses with its stored state anyway.
            log.warning("could not retire a contact", extra={"error": str(exc)})

    def end_later(self, state: ContactState, reason: str, not_before: float = 0.0) -> None:
        """Record that the contact left; `commit_end` of `pending_ends()` commits it.

        Args:
            not_before: monotonic time before which it is not committed, so that a contact
                event saying how the wait ended may still replace `reason` (a later call
                with `not_before=0` does, while the end is not being committed).
        """
        pending = self._ends.get(state.contact)
        if pending is None:
            self._ends[state.contact] = PendingEnd(state, reason, not_before=not_before)
        elif not pending.committing and not_before == 0.0 and pending.not_before > 0.0:
            pending.reason, pending.not_before = reason, 0.0

    async def end(self, state: ContactState, reason: str) -> None:
        """The contact left its queue: commit its `ended` event (kept pending until it is)."""
        pending = self._ends.setdefault(state.contact, PendingEnd(state, reason))
        await self.commit_end(pending)

    async def commit_end(self, pending: PendingEnd) -> None:
        state = pending.state
        if pending.committing or self._ends.get(state.contact) is not pending:
            return  # committed already, or being committed by another task
        pending.committing = True
        head = encode_head(
            "ended",
            instance=state.instance,
            contact=state.contact,
            queue=state.queue,
            position=None,
            ewt=None,
            at=utc_iso(self._wall()),
            stale=False,
            reason=pending.reason,
            enqueued=state.enqueued,
        )
        try:
            await self._bus.commit(self._commit(state, head, ended=True))
        except BusUnavailable as exc:
            log.warning("could not publish an end, will retry", extra={"error": str(exc)})
            pending.committing = False
            return
        del self._ends[state.contact]
        log.info("contact ended", extra={"reason": pending.reason})
        await self._on_ended(state.contact)
