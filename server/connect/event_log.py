"""The shared contact-event log: what `POST /v1/events` took, for every replica to apply once.

An event reaches one replica (whichever the load balancer picked); every replica must apply it,
each exactly once, and EventBridge may deliver it twice. So the ingest appends to one log,
idempotently by the envelope's `id`, and each replica follows the log in order from its own
cursor. A follower starts a bounded while back (`replay_s`), so a replica that has just started
learns who is waiting; then it reads what is appended, reconnecting after an outage from where
it stopped, so nothing appended meanwhile is missed.

Two implementations: `MemoryContactEventLog` (one process) and `RedisContactEventLog`
(server/connect/event_log_redis.py; replicas on one Redis or Redis Cluster).

Why here and not in server/bus/: the bus carries the states queuecast publishes to browsers;
this log carries what Amazon Connect said, typed as `ConnectContactEvent`, and only the Connect
side reads it. It borrows the bus's error (`BusUnavailable`: Redis cannot be reached) and
backoff, nothing else.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from server.backoff import Backoff
from server.bus import BusUnavailable
from server.connect.contact_events import ConnectContactEvent
from server.connect.memory_stream import MemoryStream

log = logging.getLogger("queuecast.events")

DEDUP_TTL_S = 24 * 3600.0  # EventBridge retries a delivery for up to 24 h
MAX_ENTRIES = 100_000  # the log's bound: ~3 h at 10 events/s
REPLAY_S = 3600.0  # what a new follower reads first: contacts waiting up to an hour
READ_COUNT = 500  # entries per read
# After a read that found fewer entries than it could take, wait this long before the next: an
# API destination delivers a burst as many one-event requests, and reading (and so applying) each
# event on its own makes the queue model redo its work per event. A lone event is not delayed
# (the blocking read returns as it comes); in a burst an event waits at most this long.
GATHER_S = 0.05


@dataclass(frozen=True, slots=True)
class LogRead:
    """One read: the cursor to read after next time, and the events read (maybe none)."""

    cursor: str
    events: list[ConnectContactEvent]


class ContactEventLog(abc.ABC):
    """Append-only, bounded, idempotent by `event_id`."""

    @abc.abstractmethod
    async def append(self, events: Sequence[ConnectContactEvent]) -> int:
        """Append the events not appended before (by `event_id`, within `DEDUP_TTL_S`), in
        order, atomically.

        Returns:
            How many were new.

        Raises:
            BusUnavailable: the log cannot be reached; nothing was appended.
        """

    @abc.abstractmethod
    async def replay_cursor(self, replay_s: float) -> str:
        """A cursor just before the entries appended in the last `replay_s` seconds.

        Raises:
            BusUnavailable: the log cannot be reached.
        """

    @abc.abstractmethod
    async def read_after(self, cursor: str, *, block_s: float, count: int) -> LogRead:
        """Up to `count` entries after `cursor`, waiting up to `block_s` for one to come.

        Raises:
            BusUnavailable: the log cannot be reached; the caller retries with the same cursor.
        """


class MemoryContactEventLog(ContactEventLog):
    """The log of one process (no Redis): a bounded stream, ids remembered for `dedup_ttl`."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        dedup_ttl: float = DEDUP_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream: MemoryStream[ConnectContactEvent] = MemoryStream(max_entries, clock)
        self._seen: OrderedDict[str, float] = OrderedDict()  # event id -> expiry, oldest first
        self._dedup_ttl = dedup_ttl
        self._clock = clock

    async def append(self, events: Sequence[ConnectContactEvent]) -> int:
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        new: list[ConnectContactEvent] = []
        for event in events:
            if event.event_id in self._seen:
                continue
            self._seen[event.event_id] = now + self._dedup_ttl
            new.append(event)
        await self._stream.add(new)
        return len(new)

    async def replay_cursor(self, replay_s: float) -> str:
        return self._stream.replay_cursor(replay_s)

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> LogRead:
        cursor, events = await self._stream.read_after(cursor, block_s=block_s, count=count)
        return LogRead(cursor, events)


class ContactEventFollower:
    """Reads a log from `replay_s` ago on, each entry once, across outages.

    The cursor survives an outage: after reconnecting (capped exponential backoff with full
    jitter) it reads on from the last entry it had, so nothing appended during or after the
    outage is missed. The ids of the last `remember` events are kept, so an event appended twice
    (Redis restarted empty, so its id was forgotten, and EventBridge retried) is yielded once.

    Attributes:
        connected: whether the last read reached the log.
        last_error: why the last read failed, while it fails.
        read: events yielded so far.
    """

    def __init__(
        self,
        event_log: ContactEventLog,
        *,
        replay_s: float = REPLAY_S,
        block_s: float = 1.0,
        count: int = READ_COUNT,
        backoff: Backoff | None = None,
        remember: int = 20_000,
        gather_s: float = GATHER_S,
        gather: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._log = event_log
        self._gather_s = gather_s
        self._gather = gather  # how it waits for the rest of a burst (tests step it)
        self._replay_s = replay_s
        self._block_s = block_s
        self._count = count
        self._backoff = backoff or Backoff(0.05, 2.0)
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self.connected = False
        self.last_error: str | None = None
        self.read = 0

    async def batches(self) -> AsyncIterator[list[ConnectContactEvent]]:
        """Batches of events in log order, forever (until the caller stops iterating)."""
        cursor: str | None = None
        while True:
            try:
                if cursor is None:
                    cursor = await self._log.replay_cursor(self._replay_s)
                result = await self._log.read_after(
                    cursor, block_s=self._block_s, count=self._count
                )
            except BusUnavailable as exc:
                if self.connected or self.last_error is None:
                    log.warning("contact-event log unreachable", extra={"error": str(exc)})
                self.connected, self.last_error = False, str(exc)
                await asyncio.sleep(self._backoff.next_delay())
                continue
            if not self.connected:
                self._backoff.reset()
                self.connected, self.last_error = True, None
            cursor = result.cursor
            fresh = [event for event in result.events if self._first_time(event.event_id)]
            if fresh:
                self.read += len(fresh)
                yield fresh
            if result.events and len(result.events) < self._count and self._gather_s > 0:
                await self._gather(self._gather_s)  # let the rest of a burst come (GATHER_S)

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._recent:
            return False
        self._recent[event_id] = None
        if len(self._recent) > self._remember:
            self._recent.popitem(last=False)
        return True
