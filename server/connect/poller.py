"""ContactPoller: the asyncio adapter that reads tracked contacts, keeps the queue book and
commits what changed.

Decisions come from the I/O-free parts (`QueueBook`, `PollScheduler`, `change_for`,
`is_stale`); this module only sequences calls to Amazon Connect and to the bus. Three sources
move positions, all through the queue book: contact events (`apply_contact_event`), DescribeContact
(routing order) and GetContactMetrics reads. Whatever one of them implies for every tracked
contact of a queue is published at once, marked `read` or `inferred`; one commit serves every
subscriber (the bus fans it out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server import metrics
from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.bus import Bus, BusUnavailable
from server.connect.book_news import BookNews, NewsKind
from server.connect.book_news_exchange import NewsOutbox
from server.connect.budget import Budget, LocalBudget, SharedBudget
from server.connect.client import (
    ConnectClient,
    ContactSummary,
    DescribeResult,
    MetricsResult,
    Outcome,
    QueueFigures,
)
from server.connect.contact_events import ConnectContactEvent
from server.connect.contact_state import ContactState, Observation, change_for, is_stale
from server.connect.coordination import Coordinator, LocalCoordinator, Start, Wanted
from server.connect.interest import InterestBook
from server.connect.publisher import ContactPublisher
from server.connect.queue_book import EndReason, Member, QueueBook
from server.connect.scheduler import PollScheduler, Purpose
from server.events import (
    BASIS_INFERRED,
    BASIS_READ,
    REASON_CONNECTED,
    REASON_DISCONNECTED,
    REASON_INVALID,
    REASON_LEFT_QUEUE,
    REASON_NOT_FOUND,
    ContactEvent,
    utc_iso,
)

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
_COMMIT_BATCH = 64  # commits in flight at once when one change moves a whole queue
END_GRACE = 2.5  # seconds a poll's end waits for the contact event that says why (p95 delay)
# Another replica's read or queue figures older than this (a backlog after an outage, a replay
# at start) would move the book back in time: only DescribeContact answers and ends stay true.
NEWS_MAX_AGE = 5.0
_END_REASONS: dict[str, tuple[EndReason, str]] = {
    "CONNECTED_TO_AGENT": ("connected", REASON_CONNECTED),
    "DISCONNECTED": ("disconnected", REASON_DISCONNECTED),
}


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
        coordinator: decides which wanted contacts this process polls, and holds the account
            budget when it is shared with other replicas.
        news_out: where what this replica learns by its own calls goes for the other
            replicas (`BookNewsExchange`); `None` with one replica.
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
        news_out: NewsOutbox | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._connect = connect
        self._bus = bus
        self.coordinator = coordinator or LocalCoordinator(bus)
        self._news_out = news_out
        self.news_applied: Counter[str] = Counter()
        self._clock = clock
        self._wall = wall
        now = clock()
        self.budget: Budget
        self.describe_budget: Budget
        if self.coordinator.shared_budget:
            self.budget = SharedBudget(self.coordinator, "metrics", config.rps)
            self.describe_budget = SharedBudget(self.coordinator, "describe", config.describe_rps)
        else:
            self.budget = LocalBudget(config.rps, config.burst, now)
            self.describe_budget = LocalBudget(config.describe_rps, config.describe_burst, now)
        self.scheduler = PollScheduler(config.poll_interval)
        self.book = QueueBook()
        self.interest = InterestBook(config.linger)
        self.contacts: dict[str, ContactState] = {}  # the contacts this process polls
        self._started_at: dict[str, float] = {}
        self._describing: set[str] = set()
        self._publisher = ContactPublisher(
            bus,
            state_ttl=config.state_ttl,
            tombstone_ttl=config.tombstone_ttl,
            wall=wall,
            on_ended=self._ended,
        )
        self._wake = asyncio.Event()
        self._dirty_queues: set[str] = set()
        self._dirty = asyncio.Event()
        self._reconcile_soon = True
        self._task: asyncio.Task[None] | None = None
        self.access_denied: str | None = None
        self.unreachable: str | None = None  # set after several transport failures in a row
        self.coordination_error: str | None = None
        self.throttles = 0
        self.reads_by_purpose: Counter[str] = Counter()
        self.describes = 0
        self._oldest: dict[str, float] = {}  # queue -> wall time its oldest was enqueued
        self.figure_reads = 0
        self.events_applied: Counter[str] = Counter()
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
        self._dirty_queues.update(self.book.lines)
        self._dirty.set()
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
        ended = self.book.ended.get(contact)
        if ended is not None:
            # Contact events said it left before anyone asked: tell this subscriber so.
            state = ContactState.resume(instance, contact, queue, stored)
            self._publisher.end_later(state, _reason_text(ended.reason))
            self._dirty.set()
            return False
        self.interest.watch(contact, instance, queue)
        self._wanted()
        return True

    def tracked_explicitly(self, contact: str) -> bool:
        """Whether the backend tracks `contact` (here or on another replica)."""
        return self.interest.tracked_explicitly(contact)

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
        if contact in self.book.ended:
            return False
        await self.coordinator.set_explicit(contact, Wanted(instance, queue))
        self.interest.track(contact, instance, queue)
        state = self.contacts.get(contact)
        if state is not None and state.queue is None and queue is not None:
            state.queue = queue  # its first read can place it in its line
        self._wanted()
        return True

    async def untrack(self, contact: str) -> None:
        """Drop an explicit track; polling stops unless sockets still watch the contact."""
        await self.coordinator.set_explicit(contact, None)
        self.interest.untrack(contact)
        self._wanted()

    def apply_contact_event(self, event: ConnectContactEvent) -> None:
        """One Amazon Connect contact event (each delivered once per replica, in any order).

        QUEUED puts the contact in its queue's line at once, watched or not; a QUEUED into
        another queue moves it (a transfer). CONNECTED_TO_AGENT and DISCONNECTED end it with
        that reason and move up everyone behind it. Other types change no position.
        """
        now = self._clock()
        changed: set[str] = set()
        if event.kind == "QUEUED" and event.queue_id is not None:
            changed = self.book.queued(
                event.contact_id,
                event.instance_id,
                event.queue_id,
                event.at,
                enqueued_at=event.enqueued_at,
            )
            if event.contact_id in self.book:
                self.interest.queued(event.contact_id, event.instance_id, event.queue_id)
                self._wanted()
        elif event.kind in _END_REASONS:
            book_reason, reason = _END_REASONS[event.kind]
            changed = self.book.left(event.contact_id, event.at, book_reason, queue=event.queue_id)
            if event.contact_id not in self.book:
                self._end(event.contact_id, reason)
        else:
            self.events_applied["ignored"] += 1
            metrics.CONTACT_EVENTS_APPLIED.labels("ignored").inc()
            return
        self.events_applied[event.kind] += 1
        metrics.CONTACT_EVENTS_APPLIED.labels(event.kind).inc()
        for queue in changed:
            self.book.confirmed(queue, now)
        self._mark_dirty(changed)

    def _end(self, contact: str, reason: str) -> None:
        """The contact left its queue: publish `ended` (when this replica polls it) and stop."""
        state = self.contacts.get(contact)
        self.interest.forget(contact)
        if state is None:
            if self._publisher.ending(contact):  # a poll saw it leave: this says why
                self._publisher.end_later(ContactState(instance="", contact=contact), reason)
                self._dirty.set()
            return
        self._stop(contact)
        self._publisher.end_later(state, reason)
        self._dirty.set()
        self._wanted()

    def _mark_dirty(self, queues: set[str]) -> None:
        if queues:
            self._dirty_queues |= queues
            self._dirty.set()

    def _start(self, contact: str, start: Start) -> None:
        if contact in self.contacts or self._publisher.ending(contact):
            return
        state = ContactState.resume(
            start.wanted.instance, contact, start.wanted.queue, start.stored
        )
        self.contacts[contact] = state
        now = self._clock()
        self._started_at[contact] = now
        due = now
        if start.last_polled is not None:
            # Taken over from another replica: keep its rhythm instead of polling twice.
            due += max(0.0, start.last_polled + self.config.poll_interval - self._wall())
        self.scheduler.add_at(contact, due)
        member = self.book.member(contact)
        if member is not None:
            self._mark_dirty({member.queue})  # the book already places it: publish now
        self._wake.set()

    def _stop(self, contact: str) -> None:
        self.contacts.pop(contact, None)
        self._started_at.pop(contact, None)
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
        self.interest.explicit_elsewhere(c for c, w in assignment.wanted.items() if w.explicit)
        retiring = [self.contacts[c] for c in assignment.retire if c in self.contacts]
        for contact in assignment.stop:
            self._stop(contact)
        for unwanted in retiring:
            # Unwanted, not ended: stale and out of its queue, not left looking live (issue 14).
            await self._publisher.retire(unwanted)
        if assignment.retire_elsewhere:
            await self._retire_orphans(assignment.retire_elsewhere)
        for contact, wanted in assignment.wanted.items():
            polled = self.contacts.get(contact)
            if wanted.explicit and polled is not None and polled.instance != wanted.instance:
                polled.instance = wanted.instance  # the backend's track wins over a guess
        for contact, start in assignment.start.items():
            if start.stored is not None and start.stored.ended:
                self.interest.forget(contact)  # a tombstone: it left the queue
            else:
                self._start(contact, start)

    async def _retire_orphans(self, orphans: Mapping[str, Wanted]) -> None:
        """Retire contacts another replica polled and nobody wants any more (it went away
        before it could): from their stored state, as their poller would have."""
        contacts = sorted(orphans)
        try:
            stored = await self._bus.read_states(contacts)
        except BusUnavailable:
            return  # their memberships lapse with their states
        for contact, state in zip(contacts, stored, strict=True):
            if state is None or state.ended or contact in self.contacts:
                continue
            wanted = orphans[contact]
            await self._publisher.retire(
                ContactState.resume(wanted.instance, contact, wanted.queue, state)
            )

    def status(self) -> dict[str, Any]:
        """What `/v1/status` reports of polling."""
        subscribed, explicit = self.interest.counts()
        total = self.coordinator.wanted_total()
        now = self._clock()
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
                "readsByPurpose": {p.label: self.reads_by_purpose[p.label] for p in Purpose},
                "describes": self.describes,
                "queueFiguresApplied": self.figure_reads,
                "describeRate": self.describe_budget.rate(now),
            },
            "queues": {
                "lines": len(self.book.lines),
                "waiting": len(self.book),
                "suspects": sum(1 for line in self.book.lines.values() for m in line if m.suspect),
            },
            "events": dict(self.events_applied),
            "connect": {"accessDenied": self.access_denied, "unreachable": self.unreachable},
        }

    # -- the loop --------------------------------------------------------------------------

    def effective_interval(self) -> float:
        """Seconds between two reads of one contact if each were read in turn, account-wide."""
        total, rate = self.coordinator.wanted_total(), self.coordinator.shared_rate()
        if total is None or rate is None:
            return self.scheduler.effective_interval(self.current_rate())
        return max(self.config.poll_interval, total / rate) if total else self.config.poll_interval

    def current_rate(self) -> float:
        return self.budget.rate(self._clock())

    async def _run(self) -> None:
        in_flight = asyncio.Semaphore(self.config.max_in_flight)
        next_sweep = next_reconcile = 0.0
        async with asyncio.TaskGroup() as polls:
            polls.create_task(self._publish_changes(), name="poller-publish")
            polls.create_task(self._describe_loop(), name="poller-describe")
            while True:
                now = self._clock()
                # At most once per coordination period, whatever changes meanwhile: a socket
                # toggling a subscription must not make Redis work per toggle (issue 14).
                # `_reconcile_soon` only says a change is waiting for the next one.
                if now >= next_reconcile:
                    await self._reconcile()
                    next_reconcile = now + self.coordinator.period
                if now >= next_sweep:
                    self._sweep(now, polls)
                    next_sweep = now + _SWEEP_EVERY
                await in_flight.acquire()
                now = self._clock()
                # Ranking looks at every contact: not while the budget would refuse anyway
                # (a burst of contact events wakes this loop once per event).
                wait = self.budget.not_before(now)
                key = None
                if not wait:
                    key, wait = self.scheduler.next_due(now, self._ranker(now))
                purpose = Purpose.PROBE
                if key is not None:
                    purpose = self._ranker(now)(key)[0]
                    wait = await self.budget.take(now)
                    if wait:
                        self.scheduler.give_back(key)
                        key = None
                if key is None:
                    in_flight.release()
                    self._wake.clear()
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    # that lands as the event is set, and close() would wait forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(wait, _SWEEP_EVERY)):
                            await self._wake.wait()
                    continue
                self.reads_by_purpose[purpose.label] += 1
                metrics.READS_BY_PURPOSE.labels(purpose.label).inc()
                polls.create_task(self._poll(key, in_flight), name="poll")

    def _ranker(self, now: float) -> Callable[[str], tuple[Purpose, float]]:
        """Each contact's purpose and score for this one decision (positions computed once)."""
        positions: dict[str, dict[str, int]] = {}
        completions = self._completions()

        def rank(contact: str) -> tuple[Purpose, float]:
            member = self.book.member(contact)
            weight = self.interest.weight(contact)
            if member is not None and member.suspect:
                return Purpose.CONFIRM, weight
            state = self.contacts.get(contact)
            last = self._started_at.get(contact, now)
            if member is None:
                if state is None or state.last_fresh is None:
                    return Purpose.FIRST_READ, weight + _completion(state, completions)
                position = state.published_position or 1
                last = state.last_fresh
            else:
                line = positions.get(member.queue)
                if line is None:
                    line = positions[member.queue] = self.book.positions(member.queue)
                position = line.get(contact, 1)
                if member.read_at is not None:
                    last = member.read_at
            # A read checks the count of everyone ahead, so a contact far back is worth more;
            # but only logarithmically more, so that the front is not starved: staleness
            # decides in the end, and every contact gets its own read.
            return Purpose.PROBE, weight * (now - last + 1.0) * (1.0 + math.log(position))

        return rank

    def _sweep(self, now: float, polls: asyncio.TaskGroup) -> None:
        polled_stale_after = max(self.config.stale_after, 2 * self.effective_interval())
        for state in list(self.contacts.values()):
            member = self.book.member(state.contact)
            stale_after = polled_stale_after
            if member is not None:
                confirmed = self.book.lines[member.queue].confirmed_at
                if confirmed is not None:
                    state.last_fresh = max(state.last_fresh or confirmed, confirmed)
                stale_after = self.config.stale_after
            if is_stale(state, now, stale_after):
                state.published_stale = True  # set now so that one sweep publishes it once
                polls.create_task(self._publisher.publish_stale(state), name="publish-stale")
        if self._publisher.pending_ends(now):
            self._dirty.set()
        if self.interest.expire_due(now):
            self._reconcile_soon = True
        metrics.TRACKED.set(len(self.contacts))
        metrics.EFFECTIVE_INTERVAL.set(self.effective_interval())
        metrics.POLL_RATE.set(self.current_rate())

    # -- publishing ------------------------------------------------------------------------

    async def _publish_changes(self) -> None:
        """One task commits what the book implies, so two commits of one contact never race
        (a later state must not land before an earlier one)."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            queues, self._dirty_queues = self._dirty_queues, set()
            work: list[tuple[ContactState, Observation]] = []
            for queue in queues:
                line = self.book.line(queue)
                if line is None or line.confirmed_at is None:
                    # Only DescribeContact has spoken of this queue: it orders the members
                    # but says nothing of who else waits. Show nothing until a read or an
                    # event anchors the line.
                    continue
                # Every caller waiting is a member: no unknown caller to place anywhere.
                exact = line.waiting is not None and line.waiting <= self.book.known(queue)
                for contact, position in self.book.positions(queue).items():
                    state = self.contacts.get(contact)
                    member = self.book.member(contact)
                    if state is None or member is None:
                        continue
                    if member.placed_by == "describe" and member.read_at is None and not exact:
                        # Ordered, but callers queuecast does not know may wait anywhere ahead
                        # of it: its own read, or a line whose every caller is known, first.
                        continue
                    seen = self._observation(member, position)
                    state.queue = member.queue
                    if state.enqueued is None and member.enqueued_at is not None:
                        state.enqueued = utc_iso(member.enqueued_at)
                    if change_for(state, seen, self.config.ewt_threshold) is not None:
                        work.append((state, seen))
            for i in range(0, len(work), _COMMIT_BATCH):
                await asyncio.gather(
                    *(self._commit(state, seen) for state, seen in work[i : i + _COMMIT_BATCH])
                )
            for pending in self._publisher.pending_ends(self._clock()):
                await self._publisher.commit_end(pending)

    async def _commit(self, state: ContactState, seen: Observation) -> None:
        kind = change_for(state, seen, self.config.ewt_threshold)
        if kind is None or state.contact not in self.contacts:
            return
        await self._publisher.publish(
            state, kind, seen.position, seen.ewt, stale=False, basis=seen.basis
        )

    def _observation(self, member: Member, position: int) -> Observation:
        """What to show for a member at `position`: its own read while that still holds,
        else the inference, with a wait estimate that moves with the position."""
        if member.read_position == position:
            return Observation(position, member.read_ewt, BASIS_READ)
        return Observation(position, self._estimated_wait(member, position), BASIS_INFERRED)

    def _estimated_wait(self, member: Member, position: int) -> int | None:
        line = self.book.lines[member.queue]
        if line.seconds_per_position is not None:
            return round(position * line.seconds_per_position)
        ewt = self.book.estimated_wait(member.contact, position, self._wall())
        return member.read_ewt if ewt is None else ewt

    # -- reads -----------------------------------------------------------------------------

    async def _poll(self, contact: str, in_flight: asyncio.Semaphore) -> None:
        try:
            state = self.contacts.get(contact)
            if state is None:
                self.scheduler.done(contact, self._clock())
                return
            # A first read whose queue is unknown: place it first when DescribeContact's own
            # budget allows, so that its first event already names queue and line.
            if (
                contact not in self.book
                and state.queue is None  # with its queue known, the read places it alone
                and self._wants_describe(contact)
                and not await self.describe_budget.take(self._clock())
            ):
                await self._describe(state)
            result = await self._connect.get_contact_metrics(state.instance, state.contact)
            await self._handle(state, result)
            if self.coordinator.shared_budget and result.outcome is Outcome.OK:
                with contextlib.suppress(BusUnavailable):
                    await self.coordinator.polled(contact)
        finally:
            in_flight.release()
            self._wake.set()

    def _wants_describe(self, contact: str) -> bool:
        state = self.contacts.get(contact)
        if state is None or state.queue_asked or contact in self._describing:
            return False
        member = self.book.member(contact)
        return member is None or not member.priority_known

    def _describe_rank(
        self, contact: str, completions: Mapping[str, float]
    ) -> tuple[bool, bool, float, float]:
        """A contact nothing has placed yet first (its subscriber sees nothing until then:
        each call should place someone new while anyone waits unplaced), in the queue closest
        to being known whole; then a member placed by a read alone (its place in routing
        order is borrowed from its neighbours), likewise; then the newest.

        Members that events placed go newest first whatever their queue: what is unknown of
        them is their priority, and a new arrival at a higher priority is ahead of everyone
        the book puts ahead of it. (Ranked by queue completion too, a new arrival in a queue
        where one caller was missing, an event lost or still on its way, waited behind every
        older member of the other queues: 5-15 s with a backlog to describe.)"""
        member = self.book.member(contact)
        unplaced = member is None
        read_placed = member is not None and member.placed_by == "read"
        focus = _completion(self.contacts.get(contact), completions)
        return (
            unplaced,
            read_placed,
            focus if unplaced or read_placed else 0.0,
            self._started_at.get(contact, 0.0),
        )

    def _completions(self) -> dict[str, float]:
        """How close each queue is to having every waiting caller placed, in [0, 1): a queue
        whose every caller is placed shows every position exactly (no caller queuecast does
        not know can wait anywhere in it), so placing one queue whole before the next shows
        more right positions sooner than placing callers in any order."""
        out: dict[str, float] = {}
        for queue, line in self.book.lines.items():
            if line.waiting is not None:
                missing = max(0, line.waiting - self.book.known(queue))
                out[queue] = 1.0 / (2.0 + missing)
        return out

    async def _describe_loop(self) -> None:
        """Place contacts exactly (routing priority, enqueue time, age adjustment) within
        DescribeContact's own quota, newest first: a new arrival's place matters most, and
        the queue book already orders older ones by their events or reads. Every contact a
        QUEUED event names is wanted, so polled by some replica and described by it: a caller
        without a widget who came in at a higher priority is placed too."""
        while True:
            now = self._clock()
            candidates = [c for c in self.contacts if self._wants_describe(c)]
            if not candidates:
                await asyncio.sleep(_SWEEP_EVERY)
                continue
            wait = await self.describe_budget.take(now)
            if wait:
                await asyncio.sleep(min(wait, _SWEEP_EVERY))
                continue
            completions = self._completions()
            contact = max(candidates, key=lambda c: self._describe_rank(c, completions))
            await self._describe(self.contacts[contact])

    def _place_described(self, contact: str, instance: str, result: DescribeResult) -> None:
        """DescribeContact's answer into the book, and to the other replicas."""
        assert result.queue is not None and result.enqueued is not None
        at = self._wall()
        changed = self.book.described(
            contact,
            instance,
            result.queue,
            enqueued_at=result.enqueued,
            priority=result.priority,
            age_adjustment=float(result.age_adjustment_s),
            at=at,
        )
        self._tell(
            "described",
            at,
            instance=instance,
            queue=result.queue,
            contact=contact,
            enqueued_at=result.enqueued,
            priority=result.priority,
            age_adjustment=float(result.age_adjustment_s),
        )
        self._mark_dirty(changed)

    def apply_queue_figures(self, queue: str, figures: QueueFigures, at: float, now: float) -> None:
        """A queue-level read (GetCurrentMetricData, read by the queue figures poller): who
        left (enqueued before the oldest still waiting) and how many wait in all."""
        self._take_figures(queue, figures, at, now)
        self._tell(
            "figures",
            at,
            queue=queue,
            waiting=figures.contacts_in_queue,
            oldest_age=figures.oldest_contact_age_s,
        )

    def _take_figures(self, queue: str, figures: QueueFigures, at: float, now: float) -> None:
        suspects = self.book.figures(
            queue, figures.contacts_in_queue, figures.oldest_contact_age_s, at=at, now=now
        )
        if figures.contacts_in_queue > 0:
            self._oldest[queue] = at - figures.oldest_contact_age_s
        else:
            self._oldest.pop(queue, None)
        self.figure_reads += 1
        self._mark_dirty({queue})
        if suspects:
            self._wake.set()  # confirming them comes first

    def apply_listing(
        self,
        instance: str,
        queues: Sequence[str],
        contacts: Sequence[ContactSummary],
        *,
        seen_at: float,
    ) -> None:
        """A SearchContacts listing of `queues` (server/connect/queue_listing.py): who was
        connected or disconnected, and who waits (chat, tasks, email: queued voice contacts
        are not listed); `seen_at` is our wall time its index showed."""
        changed: set[str] = set()
        waiting: dict[str, list[tuple[str, float]]] = {queue: [] for queue in queues}
        for summary in contacts:
            if summary.waiting:
                assert summary.queue is not None and summary.enqueued_at is not None
                if summary.queue in waiting:
                    waiting[summary.queue].append((summary.contact, summary.enqueued_at))
            elif summary.contact in self.book or summary.contact in self.contacts:
                changed |= self._listed_end(summary)
        for queue, listed in waiting.items():
            changed |= self.book.listed(queue, instance, listed, seen_at=seen_at)
            for contact, _ in listed:
                if contact in self.book:  # wallboards show the whole queue, as with QUEUED
                    self.interest.queued(contact, instance, queue)
        if any(waiting.values()):
            self._wanted()
        self._mark_dirty(changed)

    def _listed_end(self, summary: ContactSummary) -> set[str]:
        """A listed contact that is no longer waiting: connected, or disconnected."""
        if summary.connected_at is not None:
            book_reason, reason = _END_REASONS["CONNECTED_TO_AGENT"]
            at = summary.connected_at
        elif summary.disconnected_at is not None:
            book_reason, reason = _END_REASONS["DISCONNECTED"]
            at = summary.disconnected_at
        else:
            return set()  # never queued: nothing to say of a line
        changed = self.book.left(summary.contact, at, book_reason)
        self._tell("left", at, contact=summary.contact, reason=book_reason)
        if summary.contact not in self.book:
            self._end(summary.contact, reason)
        return changed

    # -- news between replicas -------------------------------------------------------------

    def _tell(self, kind: NewsKind, at: float, **fields: Any) -> None:
        """Give news learnt here to the other replicas (server/connect/book_news.py)."""
        if self._news_out is not None:
            self._news_out.put(BookNews(kind, self._news_out.replica, at, **fields))

    def _tell_read(
        self, state: ContactState, member: Member, position: int, ewt: int | None
    ) -> None:
        at = state.last_fresh_wall if state.last_fresh_wall is not None else self._wall()
        self._tell(
            "read",
            at,
            instance=state.instance,
            queue=member.queue,
            contact=state.contact,
            position=position,
            ewt=ewt,
        )

    def apply_book_news(self, news: BookNews) -> None:
        """Another replica's news, taken as if this replica had made the call: a read corrects
        the line for everyone here too, an answer of DescribeContact places its contact."""
        age = max(0.0, self._wall() - news.at)
        now = self._clock() - age  # when it happened, on this replica's monotonic clock
        changed: set[str] = set()
        if news.kind == "described":
            assert news.contact and news.instance and news.queue  # BookNews.from_json checks
            assert news.enqueued_at is not None
            changed = self.book.described(
                news.contact,
                news.instance,
                news.queue,
                enqueued_at=news.enqueued_at,
                priority=news.priority,
                age_adjustment=news.age_adjustment or 0.0,
                at=news.at,
            )
        elif news.kind == "left":
            assert news.contact and news.reason is not None
            changed = self.book.left(news.contact, news.at, news.reason)
        elif age > NEWS_MAX_AGE:
            self.news_applied["tooOld"] += 1
            metrics.BOOK_NEWS.labels("too_old", news.kind).inc()
            return
        elif news.kind == "read":
            assert news.contact and news.instance and news.queue and news.position is not None
            self.book.read(
                news.contact,
                news.instance,
                news.queue,
                news.position,
                news.ewt,
                at=news.at,
                now=now,
            )
            member = self.book.member(news.contact)
            changed = set() if member is None else {member.queue}
        elif news.kind == "figures":
            assert news.queue and news.waiting is not None and news.oldest_age is not None
            figures = QueueFigures(
                contacts_in_queue=news.waiting,
                oldest_contact_age_s=news.oldest_age,
            )
            self._take_figures(news.queue, figures, news.at, now)
        self.news_applied[news.kind] += 1
        metrics.BOOK_NEWS.labels("applied", news.kind).inc()
        self._mark_dirty(changed)

    def queue_oldest(self, queue: str) -> float | None:
        """Wall time the oldest contact waiting in `queue` was enqueued, by the latest queue
        figures (None before any, or when nobody waits)."""
        return self._oldest.get(queue)

    async def _describe(self, state: ContactState) -> None:
        self.describes += 1
        self._describing.add(state.contact)
        try:
            result = await self._connect.describe_contact(state.instance, state.contact)
        finally:
            self._describing.discard(state.contact)
        if result.outcome is Outcome.OK:
            state.queue_asked = True
            if result.queue is None or state.contact not in self.contacts:
                return
            state.queue = result.queue
            state.enqueued = None if result.enqueued is None else utc_iso(result.enqueued)
            if result.enqueued is not None:
                self._place_described(state.contact, state.instance, result)
                self._replay_unplaced_read(state)
        elif result.outcome is Outcome.THROTTLED:
            await self.describe_budget.throttled(self._clock())
        elif result.outcome in (
            Outcome.NOT_FOUND,
            Outcome.ACCESS_DENIED,
            Outcome.INVALID_REQUEST,
            Outcome.INVALID_PARAMETER,
        ):
            state.queue_asked = True  # asking again would not help

    def _replay_unplaced_read(self, state: ContactState) -> None:
        """A read taken before the contact had a place: give it to the book now."""
        seen, state.unplaced_read = state.unplaced_read, None
        if seen is None or state.last_fresh is None or state.last_fresh_wall is None:
            return
        self.book.read(
            state.contact,
            state.instance,
            state.queue,
            seen.position,
            seen.ewt,
            at=state.last_fresh_wall,
            now=state.last_fresh,
        )
        member = self.book.member(state.contact)
        if member is not None:
            self._tell_read(state, member, seen.position, seen.ewt)

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
            self.scheduler.done(contact, self._clock())
            correction = self.book.read(
                contact,
                state.instance,
                state.queue,
                result.position,
                result.ewt,
                at=state.last_fresh_wall,
                now=now,
            )
            if correction.error or correction.suspects:
                log.debug(
                    "read corrected the book",
                    extra={"error": correction.error, "suspects": len(correction.suspects)},
                )
            member = self.book.member(contact)
            if member is not None:
                self._tell_read(state, member, result.position, result.ewt)
                self._mark_dirty({member.queue})
                return
            # Not in any line yet (its queue is unknown): show the read as it is.
            seen = Observation(result.position, result.ewt, BASIS_READ)
            state.unplaced_read = seen
            kind = change_for(state, seen, self.config.ewt_threshold)
            if kind is not None:
                await self._publisher.publish(
                    state, kind, seen.position, seen.ewt, stale=False, basis=BASIS_READ
                )
        elif outcome in _ENDING:
            self._clear_access_denied()
            self.scheduler.done(contact, now)
            wall = self._wall()
            self._mark_dirty(self.book.left(contact, wall, "left_queue"))
            self._tell("left", wall, contact=contact, reason="left_queue")
            self._stop(contact)
            self.interest.forget(contact)
            if self.events_applied and outcome is not Outcome.INVALID_PARAMETER:
                # Contact events flow: the one saying how the wait ended (connected to an
                # agent, or hung up) is likely on its way; give it a moment to name the
                # reason. Everyone behind has moved up already.
                self._publisher.end_later(state, _ENDING[outcome], not_before=now + END_GRACE)
                self._dirty.set()
            else:
                await self._publisher.end(state, await self._end_reason(state, outcome))
        elif outcome is Outcome.THROTTLED:
            await self.budget.throttled(now)
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

    async def _end_reason(self, state: ContactState, outcome: Outcome) -> str:
        """Why a contact a poll saw leave left: no contact events say, so DescribeContact
        (connected to an agent, or disconnected) when its budget has a call to spare now;
        else only that it left the queue."""
        reason = _ENDING[outcome]
        if outcome is not Outcome.LEFT or await self.describe_budget.take(self._clock()):
            return reason
        self.describes += 1
        result = await self._connect.describe_contact(state.instance, state.contact)
        if result.outcome is Outcome.THROTTLED:
            await self.describe_budget.throttled(self._clock())
        if result.outcome is not Outcome.OK:
            return reason
        if result.connected is not None:
            return REASON_CONNECTED
        if result.disconnected is not None:
            return REASON_DISCONNECTED
        return reason

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


def _completion(state: ContactState | None, completions: Mapping[str, float]) -> float:
    if state is None or state.queue is None:
        return 0.0
    return completions.get(state.queue, 0.0)


def _reason_text(reason: EndReason) -> str:
    return {
        "connected": REASON_CONNECTED,
        "disconnected": REASON_DISCONNECTED,
        "left_queue": REASON_LEFT_QUEUE,
    }[reason]
