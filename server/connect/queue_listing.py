"""QueueLister: what SearchContacts tells of the watched queues, for the queue book.

SearchContacts lists up to 100 contacts per call, with queue, enqueue time and how they left.
One listing per round per instance: the contacts of the wanted queues enqueued since the
oldest one still waiting (the queue figures give its age). In a queue served first come,
first served, whoever was enqueued since then and is gone already left out of turn: hung up,
or was picked ahead (priority). Those are the departures the queue-level count cannot place
(it says someone left, not who), and the listing says who, and why (connected to an agent or
disconnected), for contacts that no contact event reached.

What it does not do: Amazon Connect does not list queued voice contacts (the contact search
shows a voice contact once it is connected to an agent or disconnected; chat, tasks and email
are listed while queued), so a listing is never taken as a roll-call of who waits; the ones
it shows waiting join the book, as a QUEUED event would. Its index lags Connect by some
seconds (`lag`).

Each page is one call against SearchContacts' own quota (its `Budget`). Failures back off and
are reported in `status()`; nothing crashes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.backoff import Backoff
from server.connect.answers import ContactSummary, Outcome, SearchPage, batches
from server.connect.budget import Budget, granted

log = logging.getLogger("queuecast.listing")

MAX_QUEUES_PER_SEARCH = 100  # SearchCriteria.QueueIds limit
MAX_PAGES = 100  # 10,000 contacts a listing at the most; beyond, it is left incomplete
MARGIN = 30.0  # seconds added before the oldest: clocks differ, ages are rounded
RETRY_CAP = 60.0


class ContactSearcher(Protocol):
    """The Connect call the lister makes (`ConnectClient` has it)."""

    async def search_contacts(
        self,
        instance: str,
        queue_ids: list[str],
        *,
        enqueued_from: float,
        enqueued_to: float,
        next_token: str | None = None,
    ) -> SearchPage: ...


class ListingListener(Protocol):
    """Told each listing (every page read so far, when one failed); `seen_at` is our wall
    time the index showed (now less its lag)."""

    def __call__(
        self,
        instance: str,
        queues: Sequence[str],
        contacts: Sequence[ContactSummary],
        *,
        seen_at: float,
    ) -> None: ...


class QueueLister(AsyncCloseable):
    """Async context manager owning the task that lists the wanted queues.

    Args:
        connect: the Connect client.
        budget: SearchContacts' quota.
        wanted: the queues to list now (queue id -> instance; see `queues_wanted`).
        oldest: wall time the oldest contact waiting in a queue was enqueued (queue figures),
            or None when unknown or nobody waits (such a queue is not listed).
        connect_offset: seconds our wall clock is ahead of Connect's, when known.
        on_listing: told each listing (the contact poller's `apply_listing`).
        interval: seconds between two listings of a queue.
        lag: seconds the search index may be behind Connect.
    """

    def __init__(
        self,
        connect: ContactSearcher,
        budget: Budget,
        *,
        wanted: Callable[[], Mapping[str, str]],
        oldest: Callable[[str], float | None],
        connect_offset: Callable[[], float | None],
        on_listing: ListingListener,
        interval: float = 2.0,
        lag: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self.budget = budget
        self._wanted = wanted
        self._oldest = oldest
        self._offset = connect_offset
        self._on_listing = on_listing
        self.interval = interval
        self.lag = lag
        self._clock = clock
        self._wall = wall
        self.listed_queues = 0  # in the last round
        self._retry = Backoff(interval, max(interval, RETRY_CAP))
        self._task: asyncio.Task[None] | None = None
        self.calls: Counter[str] = Counter()  # by outcome
        self.listings: Counter[str] = Counter()  # complete / incomplete (a page failed)
        self.last_error: str | None = None

    async def __aenter__(self) -> QueueLister:
        self._task = asyncio.create_task(self._run(), name="queue-listing")
        return self

    async def close(self) -> None:
        """Stop listing (a call in flight is cancelled and awaited). Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def status(self) -> dict[str, Any]:
        """What `/v1/status` reports of the queue listings."""
        return {
            "queues": self.listed_queues,
            "interval": self.interval,
            "lag": self.lag,
            "budget": {
                "currentRate": self.budget.rate(self._clock()),
                "shared": self.budget.shared,
            },
            "calls": dict(self.calls),
            "listings": dict(self.listings),
            "lastError": self.last_error,
        }

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            delay = self.interval
            try:
                failed = await self._round()
            except Exception:
                # A bug must not end the listings for good: logged with its traceback, retried.
                log.exception("queue listing round failed")
                self.last_error = "internal error (see the log)"
                failed = True
            if failed:
                delay += self._retry.next_delay()
            else:
                self._retry.reset()
            await asyncio.sleep(delay)

    async def _round(self) -> bool:
        """List every wanted queue once; returns whether a call failed."""
        wanted = self._wanted()
        by_instance: dict[str, list[str]] = {}
        for queue, instance in sorted(wanted.items()):
            if self._oldest(queue) is not None:
                by_instance.setdefault(instance, []).append(queue)
        self.listed_queues = sum(len(queues) for queues in by_instance.values())
        for instance, queues in by_instance.items():
            for batch in batches(queues, MAX_QUEUES_PER_SEARCH):
                if not await self._list(instance, batch):
                    return True
        return False

    def _connect_now(self) -> float:
        return self._wall() - (self._offset() or 0.0)

    def _start(self, queue: str) -> float:
        """Connect's time from which `queue` is listed: its oldest waiting contact's."""
        oldest = self._oldest(queue)
        assert oldest is not None
        return oldest - (self._offset() or 0.0) - MARGIN

    async def _list(self, instance: str, queues: list[str]) -> bool:
        """One listing of `queues` (every page); returns False when a call failed."""
        start = min(self._start(queue) for queue in queues)
        end = self._connect_now() + MARGIN  # whatever the index has, up to now
        seen_at = self._wall() - self.lag
        contacts: list[ContactSummary] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            await granted(self.budget, self._clock)
            page = await self._connect.search_contacts(
                instance, queues, enqueued_from=start, enqueued_to=end, next_token=token
            )
            self.calls[page.outcome.value] += 1
            if page.outcome is not Outcome.OK:
                await self._failed(page)
                self._deliver(instance, queues, contacts, complete=False, seen_at=seen_at)
                return False
            contacts.extend(page.contacts)
            token = page.next_token
            if token is None:
                break
        self._deliver(instance, queues, contacts, complete=token is None, seen_at=seen_at)
        if self.last_error is not None:
            log.info("queue listing works again")
            self.last_error = None
        return True

    def _deliver(
        self,
        instance: str,
        queues: list[str],
        contacts: list[ContactSummary],
        *,
        complete: bool,
        seen_at: float,
    ) -> None:
        self.listings["complete" if complete else "incomplete"] += 1
        if contacts:
            self._on_listing(instance, queues, contacts, seen_at=seen_at)

    async def _failed(self, page: SearchPage) -> None:
        detail = f"SearchContacts {page.outcome.value}: {page.detail}"
        if page.outcome is Outcome.THROTTLED:
            await self.budget.throttled(self._clock())
        if self.last_error is None:
            log.warning("could not list queue contacts, retrying", extra={"error": detail})
        self.last_error = detail
