"""QueueDirectory: queue names as Amazon Connect has them, learnt within their quotas.

ListQueues (every page) names every STANDARD queue of an instance: at start, then every
`refresh` seconds. A queue id met later that the listing did not name (created since, or of
another kind) is asked of DescribeQueue, once. Both APIs have their own small quotas (2/s,
burst 5 by default), so each has its own budget, shared by every replica with Redis, and with
Redis one replica per period lists and the others read what it wrote (`QueueNameStore`).

Nothing here is ever fatal: a failed call is logged and retried with capped exponential
backoff; until a name is known, readers get `None` and show the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.backoff import Backoff
from server.bus import BusUnavailable
from server.connect.answers import Outcome, QueuesResult
from server.connect.budget import Budget, granted
from server.connect.queue_names import QueueNameStore

log = logging.getLogger("queuecast.queues")

MAX_PENDING = 1000  # unknown ids waiting for DescribeQueue; more are asked for later
RETRY_BASE = 1.0
RETRY_CAP = 60.0
IDLE_WAKE = 60.0  # the loop looks again at least this often
_GONE = (Outcome.NOT_FOUND, Outcome.INVALID_REQUEST, Outcome.INVALID_PARAMETER)


class QueueNameReader(Protocol):
    """The Connect calls the directory makes (`ConnectClient` has them)."""

    async def list_queues(self, instance: str) -> QueuesResult: ...

    async def describe_queue(self, instance: str, queue: str) -> QueuesResult: ...


class QueueDirectory(AsyncCloseable):
    """Async context manager owning the task that learns queue names.

    Args:
        connect: the Connect client.
        store: where names are shared with other replicas.
        instance: the instance listed from the start (others are listed once asked about).
        list_budget, describe_budget: ListQueues' and DescribeQueue's own quotas.
        refresh: seconds between two listings of an instance.
        call_timeout: seconds a whole listing (all pages) or one DescribeQueue may take.
        retry_base: the first retry's delay ceiling, seconds (then doubling, full jitter).
        clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        connect: QueueNameReader,
        store: QueueNameStore,
        *,
        instance: str | None,
        list_budget: Budget,
        describe_budget: Budget,
        refresh: float = 300.0,
        call_timeout: float = 30.0,
        retry_base: float = RETRY_BASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._store = store
        self._list_budget = list_budget
        self._describe_budget = describe_budget
        self._refresh = refresh
        self._call_timeout = call_timeout
        self._clock = clock
        self._names: dict[str, dict[str, str]] = {}  # instance -> queue id -> name
        # Ids DescribeQueue did not know: not asked again until the instance's next listing.
        self._missing: dict[str, set[str]] = {}
        self._pending: dict[tuple[str, str], None] = {}  # (instance, queue), in arrival order
        self._listing_due: dict[str, float] = {}
        self._listing_retry: dict[str, Backoff] = {}
        self._retry_base = retry_base
        self._describe_retry = Backoff(retry_base, RETRY_CAP)
        self._describe_after = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.calls: Counter[str] = Counter()  # "<API> <outcome>"
        self.last_error: str | None = None
        if instance is not None:
            self._listing_due[instance] = clock()

    async def __aenter__(self) -> QueueDirectory:
        self._task = asyncio.create_task(self._run(), name="queue-directory")
        return self

    async def close(self) -> None:
        """Stop learning (a call in flight is cancelled and awaited). Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    # -- readers ---------------------------------------------------------------------------

    def name(self, instance: str | None, queue: str) -> str | None:
        """The queue's name, or None while it is not known (it is then asked for)."""
        if instance is None:
            return None
        known = self._names.get(instance, {}).get(queue)
        if known is None:
            self._ask(instance, queue)
        return known

    def names(self, instance: str | None) -> dict[str, str]:
        """Every name known of the instance's queues (queue id -> name)."""
        return dict(self._names.get(instance, {})) if instance is not None else {}

    def status(self) -> dict[str, Any]:
        """What `/v1/status` reports of the directory."""
        return {
            "instances": {i: len(names) for i, names in self._names.items()},
            "pending": len(self._pending),
            "calls": dict(self.calls),
            "lastError": self.last_error,
        }

    def _ask(self, instance: str, queue: str) -> None:
        if instance not in self._listing_due:
            self._listing_due[instance] = self._clock()  # a new instance: list it first
        elif queue in self._missing.get(instance, ()):
            return
        if len(self._pending) < MAX_PENDING:
            self._pending.setdefault((instance, queue), None)
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._learn_due()
            except Exception:
                # A bug must not end the learning for good: logged with its traceback, retried.
                log.exception("learning queue names failed")
                self.last_error = "internal error (see the log)"
                await asyncio.sleep(self._describe_retry.next_delay())
                continue
            self._wake.clear()
            # Not `wait_for`: on Python 3.11 it swallows a cancellation that arrives as the
            # event is set, and `close` would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._until_next(self._clock())):
                    await self._wake.wait()

    async def _learn_due(self) -> None:
        for instance, due in list(self._listing_due.items()):
            if self._clock() >= due:
                await self._list(instance)
        if self._pending and self._clock() >= self._describe_after:
            await self._describe_pending()

    def _until_next(self, now: float) -> float:
        due = min(self._listing_due.values(), default=now + IDLE_WAKE)
        if self._pending:
            due = min(due, self._describe_after)
        return min(IDLE_WAKE, max(0.0, due - now))

    async def _call(
        self, api: str, budget: Budget, call: Callable[[], Awaitable[QueuesResult]]
    ) -> QueuesResult:
        """One budgeted call, bounded by `call_timeout`, counted by outcome."""
        await granted(budget, self._clock)
        try:
            async with asyncio.timeout(self._call_timeout):
                result = await call()
        except TimeoutError:
            result = QueuesResult(Outcome.TIMEOUT, detail=f"{api} took too long")
        self.calls[f"{api} {result.outcome.value}"] += 1
        if result.outcome is Outcome.THROTTLED:
            await budget.throttled(self._clock())
        return result

    async def _list(self, instance: str) -> None:
        try:
            claimed = await self._store.claim_listing(instance, self._refresh)
            if not claimed:
                # Another replica lists this period: read what it wrote.
                shared = await self._store.load(instance)
                if not shared:
                    self._retry_listing(instance, "no names shared yet")
                    return
                self._learnt_listing(instance, shared)
                return
        except BusUnavailable as exc:
            self._retry_listing(instance, str(exc))
            return
        result = await self._call(
            "ListQueues", self._list_budget, partial(self._connect.list_queues, instance)
        )
        if result.outcome is not Outcome.OK:
            with contextlib.suppress(BusUnavailable):
                await self._store.release_listing(instance)
            self._retry_listing(instance, f"ListQueues {result.outcome.value}: {result.detail}")
            return
        names = {q.id: q.name for q in result.queues}
        self._learnt_listing(instance, names)
        try:
            await self._store.save(instance, names, complete=True)
        except BusUnavailable as exc:
            log.warning("could not share queue names", extra={"error": str(exc)})

    def _learnt_listing(self, instance: str, names: dict[str, str]) -> None:
        self._names[instance] = names
        self._missing.pop(instance, None)
        self._listing_due[instance] = self._clock() + self._refresh
        retry = self._listing_retry.pop(instance, None)
        if retry is not None and retry.attempt:
            log.info("queue names listed again", extra={"queues": len(names)})
        self.last_error = None

    def _retry_listing(self, instance: str, error: str) -> None:
        retry = self._listing_retry.setdefault(
            instance,
            Backoff(self._retry_base, max(self._retry_base, min(RETRY_CAP, self._refresh))),
        )
        if not retry.attempt:
            log.warning("could not learn queue names, retrying", extra={"error": error})
        self.last_error = error
        self._listing_due[instance] = self._clock() + max(self._retry_base / 4, retry.next_delay())

    async def _describe_pending(self) -> None:
        asked = list(self._pending)
        await self._load_shared(asked)
        for instance, queue in asked:
            if (instance, queue) not in self._pending:
                continue
            if queue in self._names.get(instance, {}):
                del self._pending[(instance, queue)]
                continue
            result = await self._call(
                "DescribeQueue",
                self._describe_budget,
                partial(self._connect.describe_queue, instance, queue),
            )
            if result.outcome is Outcome.OK or result.outcome in _GONE:
                del self._pending[(instance, queue)]
                self._describe_retry.reset()
                await self._learnt_one(instance, queue, result)
                continue
            delay = self._describe_retry.next_delay()
            if self._describe_retry.attempt == 1:
                log.warning(
                    "could not describe a queue, retrying",
                    extra={"outcome": result.outcome.value, "detail": result.detail},
                )
            self.last_error = f"DescribeQueue {result.outcome.value}: {result.detail}"
            self._describe_after = self._clock() + max(self._retry_base / 4, delay)
            return

    async def _load_shared(self, asked: list[tuple[str, str]]) -> None:
        """Names another replica learnt already, so that they are not asked for twice."""
        by_instance: dict[str, list[str]] = {}
        for instance, queue in asked:
            by_instance.setdefault(instance, []).append(queue)
        for instance, queues in by_instance.items():
            try:
                shared = await self._store.load(instance, queues)
            except BusUnavailable:
                return  # ask Connect instead
            self._names.setdefault(instance, {}).update(shared)

    async def _learnt_one(self, instance: str, queue: str, result: QueuesResult) -> None:
        named = {q.id: q.name for q in result.queues if q.id == queue}
        if not named:
            self._missing.setdefault(instance, set()).add(queue)
            return
        self._names.setdefault(instance, {}).update(named)
        try:
            await self._store.save(instance, named, complete=False)
        except BusUnavailable as exc:
            log.warning("could not share a queue name", extra={"error": str(exc)})
