"""QueueFiguresPoller: the queues' own figures from GetCurrentMetricData, on their channels.

Which queues: those someone watches (wallboards' queue subscriptions) and those the queue
book has members in, on every replica (`FiguresLead`: one replica reads them all, in batches
of up to 100 queues per call). How often: every `interval` seconds, plus at once for a queue
nobody read yet, within GetCurrentMetricData's own quota (its `Budget`: 5/s, burst 8 by
default, shared by every replica with Redis). What: CONTACTS_IN_QUEUE, OLDEST_CONTACT_AGE and
AGENTS_AVAILABLE, with the queue's name (`QueueDirectory`), committed as a `queue` event
(server/events.py) that is stored, so that a new subscriber and `GET /v1/queues/{id}` get the
latest at once.

When reads fail (throttled, access denied, Connect unreachable), nothing crashes: the
failure is logged, the next round comes later (capped exponential backoff), and once the last
figures of a queue are older than `stale_after` they are published again marked stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.backoff import Backoff
from server.bus import Bus, BusUnavailable
from server.connect.answers import (
    CurrentMetricsResult,
    Outcome,
    QueueFigures,
    batches,
)
from server.connect.budget import Budget, granted
from server.connect.contact_state import ContactState
from server.connect.figures_lead import FiguresLead
from server.connect.queue_book import QueueBook
from server.events import encode_queue_head, seq_of, utc_iso

log = logging.getLogger("queuecast.queues")

MAX_QUEUES_PER_CALL = 100  # GetCurrentMetricData's Filters.Queues limit
WAKE_EVERY = 1.0  # seconds between two looks at what is wanted (new queues are read then)
RETRY_CAP = 60.0

QueueNames = Callable[[str, str], str | None]  # (instance, queue) -> name
# (queue, figures, wall time of the read, monotonic time of the read)
FiguresListener = Callable[[str, QueueFigures, float, float], None]


class FiguresReader(Protocol):
    """The Connect call the poller makes (`ConnectClient` has it)."""

    async def get_current_metric_data(
        self, instance: str, queue_ids: list[str]
    ) -> CurrentMetricsResult: ...


@dataclass(slots=True)
class QueueRead:
    """The last figures read of one queue."""

    instance: str
    figures: QueueFigures
    read_at: float  # monotonic
    read_wall: float  # epoch seconds, the event's `at`
    published_stale: bool = False


def queues_wanted(
    book: QueueBook,
    contacts: Iterable[ContactState],
    watched: Iterable[str],
    default_instance: str | None,
) -> dict[str, str]:
    """The queues this replica wants read (queue id -> instance): those its queue book has
    members in, those of the contacts it polls, and those its sockets watch (in the default
    instance: a queue subscription names no instance)."""
    wanted: dict[str, str] = {}
    for queue, line in book.lines.items():
        member = next(iter(line), None)
        if member is not None:
            wanted.setdefault(queue, member.instance)
    for state in contacts:
        if state.queue is not None:
            wanted.setdefault(state.queue, state.instance)
    if default_instance is not None:
        for queue in watched:
            wanted.setdefault(queue, default_instance)
    return wanted


class QueueFiguresPoller(AsyncCloseable):
    """Async context manager owning the task that reads and publishes queue figures.

    Args:
        connect: the Connect client.
        bus: where the figures are committed.
        lead: which replica reads, and what every replica wants read.
        budget: GetCurrentMetricData's quota.
        wanted: the queues this replica wants read now (see `queues_wanted`).
        names: the queue's name, when known (`QueueDirectory.name`).
        on_read: told every queue's figures as they are read (the contact poller's queue book
            learns from them who has left and how many wait).
        interval: seconds between two reads of a queue.
        stale_after: seconds without a successful read before the figures go out stale.
        clock: monotonic clock; wall: wall clock, for `at` (both injectable for tests).
    """

    def __init__(
        self,
        connect: FiguresReader,
        bus: Bus,
        lead: FiguresLead,
        budget: Budget,
        *,
        wanted: Callable[[], Mapping[str, str]],
        names: QueueNames | None = None,
        on_read: FiguresListener | None = None,
        interval: float = 5.0,
        stale_after: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        wake_every: float = WAKE_EVERY,
    ) -> None:
        self._connect = connect
        self._bus = bus
        self._lead = lead
        self.budget = budget
        self._wanted = wanted
        self._names = names
        self._on_read = on_read
        self.interval = interval
        self.stale_after = stale_after
        self._ttl = max(60.0, 10 * interval)  # how long stored figures outlive their reader
        self._clock = clock
        self._wall = wall
        self._wake_every = min(wake_every, interval)
        self.latest: dict[str, QueueRead] = {}  # the queues this replica read, while it leads
        self.leading = False
        self._tried: set[str] = set()  # queues a round has asked for (read or not)
        self._seqs: dict[str, int] = {}
        self._next_round = 0.0
        self._retry = Backoff(interval, max(interval, RETRY_CAP))
        self._task: asyncio.Task[None] | None = None
        self.calls: Counter[str] = Counter()  # by outcome
        self.throttles = 0
        self.access_denied: str | None = None
        self.last_error: str | None = None

    async def __aenter__(self) -> QueueFiguresPoller:
        self._task = asyncio.create_task(self._run(), name="queue-figures")
        return self

    async def close(self) -> None:
        """Stop reading (a call in flight is cancelled and awaited), then hand the leadership
        over. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)
        if self.leading:
            self.leading = False
            try:
                await self._lead.resign()
            except BusUnavailable as exc:
                log.warning("could not hand queue figures over", extra={"error": str(exc)})

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def status(self) -> dict[str, Any]:
        """What `/v1/status` reports of the queue figures."""
        now = self._clock()
        return {
            "leader": self.leading,
            "queues": len(self.latest),
            "interval": self.interval,
            "budget": {
                "currentRate": self.budget.rate(now),
                "shared": self.budget.shared,
                "throttles": self.throttles,
            },
            "calls": dict(self.calls),
            "accessDenied": self.access_denied,
            "lastError": self.last_error,
        }

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                everyone = await self._coordinate()
                if everyone is not None:
                    await self._round(everyone)
            except Exception:
                # A bug must not end the figures for good: logged with its traceback, retried.
                log.exception("queue figures round failed")
                self.last_error = "internal error (see the log)"
                await asyncio.sleep(self.interval + self._retry.next_delay())
                continue
            await asyncio.sleep(self._wake_every)

    async def _coordinate(self) -> dict[str, str] | None:
        """Say what this replica wants; returns everything wanted if it leads, else None."""
        try:
            await self._lead.want(self._wanted())
            leading = await self._lead.lead()
            everyone = await self._lead.wanted() if leading else None
        except BusUnavailable as exc:
            self._error(f"coordination: {exc}")
            leading, everyone = False, None
        if leading != self.leading:
            log.info("queue figures: %s", "reading them" if leading else "another replica reads")
            self.leading = leading
            self.latest.clear()
            self._tried.clear()
            self._next_round = self._clock()
        return everyone

    async def _round(self, everyone: Mapping[str, str]) -> None:
        now = self._clock()
        for queue in [q for q in self.latest if q not in everyone]:
            del self.latest[queue]
        self._tried &= set(everyone)
        if now >= self._next_round:
            due = dict(everyone)
        else:
            # Read a queue nobody has asked for yet at once; from then on it goes with the rest.
            due = {q: i for q, i in everyone.items() if q not in self._tried}
        if due:
            self._tried.update(due)
            delay = await self._read(due)
            if delay is not None:
                self._next_round = self._clock() + delay
            elif now >= self._next_round:
                self._next_round = now + self.interval
        await self._publish_stale(everyone)

    async def _read(self, due: Mapping[str, str]) -> float | None:
        """Read `due` in batches; returns the delay before the next round after a failure."""
        by_instance: dict[str, list[str]] = {}
        for queue, instance in sorted(due.items()):
            by_instance.setdefault(instance, []).append(queue)
        for instance, queues in by_instance.items():
            for batch in batches(queues, MAX_QUEUES_PER_CALL):
                await granted(self.budget, self._clock)
                result = await self._connect.get_current_metric_data(instance, batch)
                self.calls[result.outcome.value] += 1
                if result.outcome is not Outcome.OK:
                    return await self._failed(result)
                self._succeeded()
                await self._publish_read(instance, result.figures)
        return None

    def _succeeded(self) -> None:
        if self.access_denied is not None or self._retry.attempt:
            log.info("queue figures read again")
        self.access_denied = None
        self.last_error = None
        self._retry.reset()

    async def _failed(self, result: CurrentMetricsResult) -> float:
        outcome = result.outcome
        detail = f"GetCurrentMetricData {outcome.value}: {result.detail}"
        if outcome is Outcome.THROTTLED:
            await self.budget.throttled(self._clock())
            self.throttles += 1
            log.info("queue figures throttled", extra={"rate": self.budget.rate(self._clock())})
            self.last_error = detail
            return self.interval  # the budget has slowed down already
        if outcome is Outcome.ACCESS_DENIED:
            if self.access_denied is None:
                log.error("Amazon Connect denied queue figures", extra={"detail": result.detail})
            self.access_denied = result.detail or "AccessDeniedException"
            self.last_error = detail
        else:
            self._error(detail)
        # An operator fixes the policy, or Connect comes back: either way, less often the
        # longer it lasts.
        return self.interval + self._retry.next_delay()

    def _error(self, error: str) -> None:
        if self.last_error is None:
            log.warning("could not read queue figures, retrying", extra={"error": error})
        self.last_error = error

    # -- publishing ------------------------------------------------------------------------

    async def _publish_read(self, instance: str, figures: Mapping[str, QueueFigures]) -> None:
        now, wall = self._clock(), self._wall()
        reads = {queue: QueueRead(instance, f, now, wall) for queue, f in figures.items()}
        self.latest.update(reads)
        if self._on_read is not None:
            for queue, read in reads.items():
                self._on_read(queue, read.figures, wall, now)
        await asyncio.gather(*(self._publish(q, read, stale=False) for q, read in reads.items()))

    async def _publish_stale(self, everyone: Mapping[str, str]) -> None:
        now = self._clock()
        late = [
            (queue, read)
            for queue, read in self.latest.items()
            if queue in everyone
            and not read.published_stale
            and now - read.read_at > self.stale_after
        ]
        await asyncio.gather(*(self._publish(q, read, stale=True) for q, read in late))

    async def _publish(self, queue: str, read: QueueRead, *, stale: bool) -> None:
        figures = read.figures
        head = encode_queue_head(
            instance=read.instance,
            queue=queue,
            name=self._names(read.instance, queue) if self._names is not None else None,
            waiting=figures.contacts_in_queue,
            oldest=round(figures.oldest_contact_age_s),
            agents_available=figures.agents_available,
            at=utc_iso(read.read_wall),
            stale=stale,
        )
        # At least the time in ms: seq never goes back, whoever publishes, even after Redis
        # lost the counter (events.QueueFiguresEvent).
        floor = max(self._seqs.get(queue, 0), int(self._wall() * 1000))
        try:
            data = await self._bus.commit_queue_figures(queue, head, ttl=self._ttl, floor=floor)
        except BusUnavailable as exc:
            self._error(f"publish: {exc}")
            return
        self._seqs[queue] = seq_of(data)
        read.published_stale = stale
