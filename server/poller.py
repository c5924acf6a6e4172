"""ContactPoller: the asyncio adapter that polls tracked contacts and commits their changes.

Decisions come from the I/O-free parts (`PollScheduler`, `change_for`, `is_stale`); this module
only sequences calls to Amazon Connect and to the bus. One poll per contact serves every
subscriber: the result goes to the bus, which fans it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from server import metrics
from server.bus import Bus, BusUnavailable
from server.connect import ConnectClient, MetricsResult, Outcome
from server.contact_state import ContactState, Observation, change_for, is_stale
from server.events import (
    REASON_INVALID,
    REASON_LEFT_QUEUE,
    REASON_NOT_FOUND,
    ContactEvent,
    EventType,
    encode_head,
    seq_of,
    utc_iso,
)
from server.ratelimit import TokenBucket
from server.scheduler import PollScheduler

log = logging.getLogger("queuecast.poller")

_ENDING = {
    Outcome.LEFT: REASON_LEFT_QUEUE,
    Outcome.NOT_FOUND: REASON_NOT_FOUND,
    Outcome.INVALID_REQUEST: REASON_LEFT_QUEUE,
    Outcome.INVALID_PARAMETER: REASON_INVALID,
}
ACCESS_DENIED_RETRY = 30.0
ACCESS_DENIED_LOG_EVERY = 60.0
UNREACHABLE_AFTER = 3
_SWEEP_EVERY = 0.25


@dataclass(frozen=True, slots=True)
class PollerConfig:
    rps: float = 2.0
    burst: int = 5
    describe_rps: float = 2.0
    describe_burst: int = 5
    poll_interval: float = 2.0
    ewt_threshold: float = 5.0
    stale_after: float = 10.0
    tombstone_ttl: float = 300.0
    state_ttl: float = 3600.0
    linger: float = 10.0
    max_in_flight: int = 8


@dataclass(slots=True)
class _Ending:
    state: ContactState
    reason: str
    committing: bool = False


class ContactPoller:
    """Async context manager owning the polling task and every poll it starts.

    Args:
        config: rates, intervals and thresholds.
        connect: the Connect client.
        bus: where changes are committed.
        clock: monotonic clock (injectable for tests).
        wall: wall clock, for the `at` of events.
    """

    def __init__(
        self,
        config: PollerConfig,
        connect: ConnectClient,
        bus: Bus,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._connect = connect
        self._bus = bus
        self._clock = clock
        self._wall = wall
        now = clock()
        self.scheduler = PollScheduler(config.rps, config.burst, config.poll_interval, now)
        self._describe_bucket = TokenBucket(config.describe_rps, config.describe_burst, now)
        self.contacts: dict[str, ContactState] = {}
        self._endings: dict[str, _Ending] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.access_denied: str | None = None
        self.unreachable: str | None = None  # set after several transport failures in a row
        self._transport_failures = 0
        self._access_denied_logged = -ACCESS_DENIED_LOG_EVERY
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> ContactPoller:
        self._task = asyncio.create_task(self._run(), name="poller")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop polling; polls in flight are cancelled and awaited. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- what is tracked -------------------------------------------------------------------

    def _state_for(
        self, instance: str, contact: str, queue: str | None, stored: ContactEvent | None
    ) -> ContactState | None:
        if self._closed or contact in self._endings:
            return None
        state = self.contacts.get(contact)
        if state is None:
            if stored is not None and stored.ended:
                return None  # a tombstone: the contact left, do not poll it again
            state = ContactState.resume(instance, contact, queue, stored)
            self.contacts[contact] = state
            self.scheduler.add(contact, self._clock())
            self._wake.set()
        elif queue is not None and state.queue is None:
            state.queue = queue
        return state

    def watch(
        self, instance: str, contact: str, stored: ContactEvent | None, queue: str | None = None
    ) -> bool:
        """A subscriber wants this contact; returns False if it has ended (nothing to poll).

        Args:
            stored: the state the store holds now, so the diff continues from it.
        """
        state = self._state_for(instance, contact, queue, stored)
        if state is None:
            return False
        state.subscribers += 1
        state.linger_until = None
        return True

    def unwatch(self, contact: str) -> None:
        state = self.contacts.get(contact)
        if state is None:
            return
        state.subscribers = max(0, state.subscribers - 1)
        if state.subscribers == 0 and not state.explicit:
            state.linger_until = self._clock() + self.config.linger

    def track(
        self, instance: str, contact: str, stored: ContactEvent | None, queue: str | None = None
    ) -> bool:
        """Track explicitly (HTTP PUT) until the contact ends or `untrack`."""
        state = self._state_for(instance, contact, queue, stored)
        if state is None:
            return False
        state.explicit = True
        state.linger_until = None
        return True

    def untrack(self, contact: str) -> bool:
        """Drop an explicit track; polling stops at once unless sockets still watch it."""
        state = self.contacts.get(contact)
        if state is None:
            return False
        state.explicit = False
        if state.subscribers == 0:
            self._forget(contact)
        return True

    def _forget(self, contact: str) -> None:
        self.contacts.pop(contact, None)
        self.scheduler.remove(contact)

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        in_flight = asyncio.Semaphore(self.config.max_in_flight)
        next_sweep = 0.0
        async with asyncio.TaskGroup() as polls:
            while True:
                now = self._clock()
                if now >= next_sweep:
                    self._sweep(now, polls)
                    next_sweep = now + _SWEEP_EVERY
                await in_flight.acquire()
                key, wait = self.scheduler.next_due(self._clock())
                if key is None:
                    in_flight.release()
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), min(wait, _SWEEP_EVERY))
                    continue
                polls.create_task(self._poll(key, in_flight), name="poll")

    def _sweep(self, now: float, polls: asyncio.TaskGroup) -> None:
        stale_after = max(self.config.stale_after, 2 * self.scheduler.effective_interval())
        for contact, state in list(self.contacts.items()):
            if state.linger_until is not None and now >= state.linger_until:
                self._forget(contact)
            elif is_stale(state, now, stale_after):
                state.published_stale = True  # set now so that one sweep publishes it once
                polls.create_task(self._publish_stale(state), name="publish-stale")
        for ending in list(self._endings.values()):
            polls.create_task(self._commit_end(ending), name="commit-end")
        metrics.TRACKED.set(len(self.contacts))
        metrics.EFFECTIVE_INTERVAL.set(self.scheduler.effective_interval())
        metrics.POLL_RATE.set(self.scheduler.rate)

    async def _poll(self, contact: str, in_flight: asyncio.Semaphore) -> None:
        try:
            state = self.contacts.get(contact)
            if state is None:
                self.scheduler.done(contact, self._clock())
                return
            if state.queue is None and not state.queue_asked:
                await self._describe(state)
            result = await self._connect.get_contact_metrics(state.instance, state.contact)
            await self._handle(state, result)
        finally:
            in_flight.release()
            self._wake.set()

    async def _describe(self, state: ContactState) -> None:
        if not self._describe_bucket.try_take(self._clock()):
            return  # the queue is learned on a later poll
        result = await self._connect.describe_contact(state.instance, state.contact)
        if result.outcome is Outcome.OK:
            state.queue = result.queue
            state.enqueued = None if result.enqueued is None else utc_iso(result.enqueued)
            state.queue_asked = True
        elif result.outcome in (
            Outcome.NOT_FOUND,
            Outcome.ACCESS_DENIED,
            Outcome.INVALID_REQUEST,
            Outcome.INVALID_PARAMETER,
        ):
            state.queue_asked = True  # asking again would not help

    async def _handle(self, state: ContactState, result: MetricsResult) -> None:
        now = self._clock()
        contact = state.contact
        outcome = result.outcome
        if outcome in (Outcome.TIMEOUT, Outcome.CONNECTION_ERROR):
            self._transport_failures += 1
            if self._transport_failures >= UNREACHABLE_AFTER:
                self.unreachable = f"{outcome.value}: {result.detail}"
        else:
            self._transport_failures = 0
            self.unreachable = None
        if outcome is Outcome.OK and result.position is not None:
            self._clear_access_denied()
            state.retry.reset()
            state.last_fresh, state.last_fresh_wall = now, self._wall()
            seen = Observation(result.position, result.ewt)
            kind = change_for(state, seen, self.config.ewt_threshold)
            if kind is not None:
                await self._publish(state, kind, seen.position, seen.ewt, stale=False)
            self.scheduler.done(contact, self._clock())
        elif outcome in _ENDING:
            self._clear_access_denied()
            self._forget(contact)
            self.scheduler.done(contact, now)
            ending = _Ending(state, _ENDING[outcome])
            self._endings[contact] = ending
            await self._commit_end(ending)
        elif outcome is Outcome.THROTTLED:
            self.scheduler.throttled(now)
            log.info("throttled by Amazon Connect", extra={"rate": self.scheduler.rate})
            self.scheduler.done(contact, now, retry_in=0.0)
        elif outcome is Outcome.ACCESS_DENIED:
            self._set_access_denied(result.detail or "AccessDeniedException", now)
            self.scheduler.done(contact, now, retry_in=ACCESS_DENIED_RETRY)
        else:  # server errors, timeouts, connection errors
            delay = self.config.poll_interval + state.retry.next_delay()
            log.warning(
                "poll failed, retrying",
                extra={"outcome": outcome.value, "detail": result.detail, "retry_in": delay},
            )
            self.scheduler.done(contact, now, retry_in=delay)

    # -- publishing ------------------------------------------------------------------------

    async def _publish(
        self,
        state: ContactState,
        kind: EventType,
        position: int | None,
        ewt: int | None,
        *,
        stale: bool,
    ) -> bool:
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
        )
        try:
            data = await self._bus.commit(
                state.contact,
                state.queue,
                head,
                ttl=self.config.state_ttl,
                ended=False,
                floor=state.seq,
            )
        except BusUnavailable as exc:
            # Not recorded as published, so the next poll's diff publishes it again.
            log.warning("could not publish, will retry", extra={"error": str(exc)})
            return False
        state.seq = seq_of(data)
        state.published = True
        state.published_position, state.published_ewt = position, ewt
        state.published_stale = stale
        return True

    async def _publish_stale(self, state: ContactState) -> None:
        ok = await self._publish(
            state, "update", state.published_position, state.published_ewt, stale=True
        )
        if not ok:
            state.published_stale = False  # try again on the next sweep

    async def _commit_end(self, ending: _Ending) -> None:
        state = ending.state
        if ending.committing or self._endings.get(state.contact) is not ending:
            return  # committed already, or being committed by another task
        ending.committing = True
        head = encode_head(
            "ended",
            instance=state.instance,
            contact=state.contact,
            queue=state.queue,
            position=None,
            ewt=None,
            at=utc_iso(self._wall()),
            stale=False,
            reason=ending.reason,
            enqueued=state.enqueued,
        )
        try:
            await self._bus.commit(
                state.contact,
                state.queue,
                head,
                ttl=self.config.tombstone_ttl,
                ended=True,
                floor=state.seq,
            )
        except BusUnavailable as exc:
            log.warning("could not publish an end, will retry", extra={"error": str(exc)})
            ending.committing = False
            return
        if self._endings.get(state.contact) is ending:
            del self._endings[state.contact]
        log.info("contact ended", extra={"reason": ending.reason})

    # -- readiness -------------------------------------------------------------------------

    def _set_access_denied(self, detail: str, now: float) -> None:
        self.access_denied = detail
        if now - self._access_denied_logged >= ACCESS_DENIED_LOG_EVERY:
            self._access_denied_logged = now
            log.error("Amazon Connect denied access", extra={"detail": detail})

    def _clear_access_denied(self) -> None:
        if self.access_denied is not None:
            log.info("Amazon Connect access restored")
            self.access_denied = None
