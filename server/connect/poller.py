"""ContactPoller: the asyncio adapter that polls tracked contacts and commits their changes.

Decisions come from the I/O-free parts (`PollScheduler`, `change_for`, `is_stale`); this module
only sequences calls to Amazon Connect and to the bus. One poll per contact serves every
subscriber: the result goes to the bus, which fans it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server import metrics
from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.bus import Bus, BusUnavailable
from server.connect.client import ConnectClient, MetricsResult, Outcome
from server.connect.contact_state import ContactState, Observation, change_for, is_stale
from server.connect.coordination import Coordinator, LocalCoordinator, Start, Wanted
from server.connect.interest import InterestBook
from server.connect.publisher import ContactPublisher
from server.connect.scheduler import PollScheduler
from server.events import (
    REASON_INVALID,
    REASON_LEFT_QUEUE,
    REASON_NOT_FOUND,
    ContactEvent,
    utc_iso,
)
from server.ratelimit import TokenBucket

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


class ContactPoller(AsyncCloseable):
    """Async context manager owning the polling task and every poll it starts.

    Args:
        config: rates, intervals and thresholds.
        connect: the Connect client.
        bus: where changes are committed.
        coordinator: decides which wanted contacts this process polls, and paces requests
            when the account budget is shared with other replicas.
        clock: monotonic clock (injectable for tests).
        wall: wall clock, for the `at` of events.
    """

    def __init__(
        self,
        config: PollerConfig,
        connect: ConnectClient,
        bus: Bus,
        coordinator: Coordinator | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._connect = connect
        self._bus = bus
        self.coordinator = coordinator or LocalCoordinator(bus)
        self._clock = clock
        self._wall = wall
        now = clock()
        # With a shared budget the coordinator paces requests; the scheduler only orders them.
        rate = math.inf if self.coordinator.shared_budget else config.rps
        self.scheduler = PollScheduler(rate, config.burst, config.poll_interval, now)
        self._describe_bucket = TokenBucket(config.describe_rps, config.describe_burst, now)
        self.interest = InterestBook(config.linger)
        self.contacts: dict[str, ContactState] = {}  # the contacts this process polls
        self._publisher = ContactPublisher(
            bus,
            state_ttl=config.state_ttl,
            tombstone_ttl=config.tombstone_ttl,
            wall=wall,
            on_ended=self._ended,
        )
        self._wake = asyncio.Event()
        self._reconcile_soon = True
        self._task: asyncio.Task[None] | None = None
        self.access_denied: str | None = None
        self.unreachable: str | None = None  # set after several transport failures in a row
        self.coordination_error: str | None = None
        self.throttles = 0
        self._transport_failures = 0
        self._access_denied_logged = -ACCESS_DENIED_LOG_EVERY
        self._closed = False
        bus.on_reconnect(self._after_outage)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> ContactPoller:
        self._task = asyncio.create_task(self._run(), name="poller")
        return self

    async def close(self) -> None:
        """Stop polling (polls in flight are cancelled and awaited), then hand the contacts
        over to other replicas. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        try:
            await self.coordinator.close()
        except BusUnavailable as exc:
            log.warning("could not hand contacts over", extra={"error": str(exc)})

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- what is wanted --------------------------------------------------------------------

    async def _after_outage(self) -> None:
        # What was published before may be lost (a store that restarted empty) and subscribers
        # were shown it as stale: the next fresh poll of each contact publishes again.
        for state in self.contacts.values():
            if state.published:
                state.published_stale = True
        self._reconcile_soon = True
        self._wake.set()

    def _wanted(self) -> None:
        self._reconcile_soon = True
        self._wake.set()

    def watch(
        self, instance: str, contact: str, stored: ContactEvent | None, queue: str | None = None
    ) -> bool:
        """A subscriber wants this contact; returns False if it has ended (nothing to poll).

        Args:
            stored: the state the store holds now; a tombstone means the contact has ended.
        """
        if self._closed or (stored is not None and stored.ended) or self._publisher.ending(contact):
            return False
        self.interest.watch(contact, instance, queue)
        self._wanted()
        return True

    def unwatch(self, contact: str) -> None:
        self.interest.unwatch(contact, self._clock())
        self._wanted()

    async def track(
        self, instance: str, contact: str, stored: ContactEvent | None, queue: str | None = None
    ) -> bool:
        """Track explicitly (HTTP PUT) until the contact ends or `untrack`.

        Raises:
            BusUnavailable: the shared tracking state could not be written.
        """
        if self._closed or (stored is not None and stored.ended) or self._publisher.ending(contact):
            return False
        await self.coordinator.set_explicit(contact, Wanted(instance, queue))
        self.interest.track(contact, instance, queue)
        self._wanted()
        return True

    async def untrack(self, contact: str) -> None:
        """Drop an explicit track; polling stops unless sockets still watch the contact."""
        await self.coordinator.set_explicit(contact, None)
        self.interest.untrack(contact)
        self._wanted()

    def _start(self, contact: str, start: Start) -> None:
        if contact in self.contacts or self._publisher.ending(contact):
            return
        state = ContactState.resume(
            start.wanted.instance, contact, start.wanted.queue, start.stored
        )
        self.contacts[contact] = state
        due = self._clock()
        if start.last_polled is not None:
            # Taken over from another replica: keep its rhythm instead of polling twice.
            due += max(0.0, start.last_polled + self.config.poll_interval - self._wall())
        self.scheduler.add(contact, due)
        self._wake.set()

    def _stop(self, contact: str) -> None:
        self.contacts.pop(contact, None)
        self.scheduler.remove(contact)

    async def _reconcile(self) -> None:
        self._reconcile_soon = False
        self.interest.expire(self._clock())
        local = self.interest.wanted(include_explicit=not self.coordinator.shared_budget)
        try:
            assignment = await self.coordinator.reconcile(local, frozenset(self.contacts))
        except BusUnavailable as exc:
            if self.coordination_error is None:
                log.warning("cannot coordinate polling", extra={"error": str(exc)})
            self.coordination_error = str(exc)
            return
        self.coordination_error = None
        for contact in assignment.stop:
            self._stop(contact)
        for contact, start in assignment.start.items():
            if start.stored is not None and start.stored.ended:
                self.interest.forget(contact)  # a tombstone: it left the queue
            else:
                self._start(contact, start)

    def status(self) -> dict[str, Any]:
        """What `/v1/status` reports of polling."""
        subscribed, explicit = self.interest.counts()
        total = self.coordinator.wanted_total()
        return {
            "replica": getattr(self.coordinator, "replica_id", None),
            "tracked": len(self.contacts),
            "trackedEverywhere": len(self.contacts) if total is None else total,
            "subscribed": subscribed,
            "explicit": explicit,
            "pollInterval": self.config.poll_interval,
            "effectiveInterval": self.effective_interval(),
            "budget": {
                "rps": self.config.rps,
                "burst": self.config.burst,
                "currentRate": self.current_rate(),
                "shared": self.coordinator.shared_budget,
                "throttles": self.throttles,
            },
            "connect": {"accessDenied": self.access_denied, "unreachable": self.unreachable},
        }

    # -- the loop --------------------------------------------------------------------------

    def effective_interval(self) -> float:
        """Seconds between two polls of one contact, account-wide."""
        total, rate = self.coordinator.wanted_total(), self.coordinator.shared_rate()
        if total is None or rate is None:
            return self.scheduler.effective_interval()
        return max(self.config.poll_interval, total / rate) if total else self.config.poll_interval

    def current_rate(self) -> float:
        shared = self.coordinator.shared_rate()
        return self.scheduler.rate if shared is None else shared

    async def _run(self) -> None:
        in_flight = asyncio.Semaphore(self.config.max_in_flight)
        next_sweep = next_reconcile = 0.0
        async with asyncio.TaskGroup() as polls:
            while True:
                now = self._clock()
                if self._reconcile_soon or now >= next_reconcile:
                    await self._reconcile()
                    next_reconcile = now + self.coordinator.period
                if now >= next_sweep:
                    self._sweep(now, polls)
                    next_sweep = now + _SWEEP_EVERY
                await in_flight.acquire()
                key, wait = self.scheduler.next_due(self._clock())
                if key is not None and self.coordinator.shared_budget:
                    wait = await self._take_shared(key)
                    if wait:
                        key = None
                if key is None:
                    in_flight.release()
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), min(wait, _SWEEP_EVERY))
                    continue
                polls.create_task(self._poll(key, in_flight), name="poll")

    async def _take_shared(self, key: str) -> float:
        """Take a request from the shared budget for `key`; 0.0 when granted, else the wait.

        A refused key goes back as due now, so it stays first in line.
        """
        try:
            granted = await self.coordinator.acquire("metrics", wait=False)
        except BusUnavailable:
            # Nothing a poll learns could be published now: wait for Redis.
            self.scheduler.done(key, self._clock(), retry_in=0.0)
            return _SWEEP_EVERY
        if granted:
            return 0.0
        self.scheduler.done(key, self._clock(), retry_in=0.0)
        return min(_SWEEP_EVERY, 1.0 / max(self.current_rate(), 1e-3))

    def _sweep(self, now: float, polls: asyncio.TaskGroup) -> None:
        stale_after = max(self.config.stale_after, 2 * self.effective_interval())
        for state in list(self.contacts.values()):
            if is_stale(state, now, stale_after):
                state.published_stale = True  # set now so that one sweep publishes it once
                polls.create_task(self._publisher.publish_stale(state), name="publish-stale")
        for pending in self._publisher.pending_ends():
            polls.create_task(self._publisher.commit_end(pending), name="commit-end")
        if self.interest.expire_due(now):
            self._reconcile_soon = True
        metrics.TRACKED.set(len(self.contacts))
        metrics.EFFECTIVE_INTERVAL.set(self.effective_interval())
        metrics.POLL_RATE.set(self.current_rate())

    async def _poll(self, contact: str, in_flight: asyncio.Semaphore) -> None:
        try:
            state = self.contacts.get(contact)
            if state is None:
                self.scheduler.done(contact, self._clock())
                return
            if (state.queue is None or state.enqueued is None) and not state.queue_asked:
                await self._describe(state)
            result = await self._connect.get_contact_metrics(state.instance, state.contact)
            await self._handle(state, result)
            if self.coordinator.shared_budget and result.outcome is Outcome.OK:
                with contextlib.suppress(BusUnavailable):
                    await self.coordinator.polled(contact)
        finally:
            in_flight.release()
            self._wake.set()

    async def _describe(self, state: ContactState) -> None:
        if self.coordinator.shared_budget:
            try:
                granted = await self.coordinator.acquire("describe", wait=False)
            except BusUnavailable:
                granted = False
        else:
            granted = self._describe_bucket.try_take(self._clock())
        if not granted:
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
                await self._publisher.publish(state, kind, seen.position, seen.ewt, stale=False)
            self.scheduler.done(contact, self._clock())
        elif outcome in _ENDING:
            self._clear_access_denied()
            self._stop(contact)
            self.scheduler.done(contact, now)
            self.interest.forget(contact)
            await self._publisher.end(state, _ENDING[outcome])
        elif outcome is Outcome.THROTTLED:
            if self.coordinator.shared_budget:
                with contextlib.suppress(BusUnavailable):
                    await self.coordinator.throttled("metrics")
            else:
                self.scheduler.throttled(now)
            self.throttles += 1
            log.info("throttled by Amazon Connect", extra={"rate": self.current_rate()})
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

    async def _ended(self, contact: str) -> None:
        with contextlib.suppress(BusUnavailable):
            await self.coordinator.ended(contact)

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
