"""Amazon Connect contact events in the EventBridge envelope, POSTed to a configured URL the way
an EventBridge API destination does.

One event per request, `User-Agent: Amazon/EventBridge/ApiDestinations`, the connection's API
key in `X-Queuecast-Events-Key`, 5 s to answer; delays, loss, duplication (and so reordering)
and retries as server/emulator/delivery.py draws them. Bounded: at most `max_pending` copies
wait (beyond, the one due soonest is dropped and counted); `concurrency` requests at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.emulator.delivery import DeliveryPlanner
from server.emulator.model import ModelEvent
from server.events import utc_iso
from server.ids import contact_arn, instance_arn, queue_arn

log = logging.getLogger(__name__)

DETAIL_TYPE = "Amazon Connect Contact Event"
USER_AGENT = "Amazon/EventBridge/ApiDestinations"
API_KEY_HEADER = "X-Queuecast-Events-Key"


def contact_event(
    event: ModelEvent, region: str, account: str, kind: str | None = None
) -> dict[str, Any]:
    """The EventBridge envelope for one model event (QUEUED, CONNECTED_TO_AGENT, DISCONNECTED),
    or, with `kind="INITIATED"`, the INITIATED that precedes an inbound contact's QUEUED (at the
    same moment, without `queueInfo`: the contact is not in a queue yet)."""
    contact = event.contact
    kind = kind or event.kind
    instance = instance_arn(region, account, contact.instance_id)
    arn = contact_arn(region, account, contact.instance_id, contact.contact_id)
    detail: dict[str, Any] = {
        "eventType": kind,
        "contactId": contact.contact_id,
        "initialContactId": contact.contact_id,
        "instanceArn": instance,
        "channel": "VOICE",
        "initiationMethod": "INBOUND",
        "initiationTimestamp": utc_iso(contact.enqueued_at),
        "queueInfo": {
            "queueArn": queue_arn(region, account, contact.instance_id, contact.queue_id),
            "queueType": "STANDARD",
            "enqueueTimestamp": utc_iso(contact.enqueued_at),
        },
    }
    if kind == "INITIATED":
        del detail["queueInfo"]
    if kind not in ("QUEUED", "INITIATED") and contact.connected_at is not None:
        detail["agentInfo"] = {"connectedToAgentTimestamp": utc_iso(contact.connected_at)}
    if kind == "DISCONNECTED":
        detail["disconnectTimestamp"] = utc_iso(event.at)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.connect",
        "account": account,
        "time": utc_iso(event.at),
        "region": region,
        "resources": [arn, instance],
        "detail": detail,
    }


@dataclass(order=True)
class _Copy:
    """One copy of one envelope, waiting to be (re)sent."""

    due: float
    seq: int
    offered: int = field(compare=False)  # the event's place in offer order
    body: bytes = field(compare=False)
    attempt: int = field(compare=False, default=1)


class ContactEventPoster(AsyncCloseable):
    """Async context manager: a dispatcher task releases copies when due, `concurrency` sender
    tasks POST them.

    Args:
        url: the API destination's endpoint.
        region, account: for the envelopes' ARNs.
        planner: draws delays, loss, duplication and retries; counts what happens.
        api_key: sent as `X-Queuecast-Events-Key` (none: no header).
        timeout_s: seconds an answer may take (EventBridge waits 5).
        max_pending: copies waiting at the most.
        concurrency: requests in flight at the most.
    """

    def __init__(
        self,
        url: str,
        region: str,
        account: str,
        planner: DeliveryPlanner,
        *,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        max_pending: int = 1000,
        concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.region, self.account = url, region, account
        self.planner = planner
        self._headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json; charset=utf-8",
        }
        if api_key:
            self._headers[API_KEY_HEADER] = api_key
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._concurrency = concurrency
        self._clock = clock
        self._waiting: list[_Copy] = []  # a heap by due time
        self._outgoing: asyncio.Queue[_Copy] = asyncio.Queue(concurrency)
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._seq = 0
        self._offered = 0
        self._latest_sent = 0  # the highest offer number sent so far
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ContactEventPoster:
        self.planner.pending = lambda: self.pending
        self._client = httpx.AsyncClient(timeout=self._timeout_s)
        self._tasks = [asyncio.create_task(self._dispatch(), name="emulator-event-dispatch")]
        self._tasks += [
            asyncio.create_task(self._send_loop(), name="emulator-event-send")
            for _ in range(self._concurrency)
        ]
        return self

    @property
    def pending(self) -> int:
        return len(self._waiting) + self._outgoing.qsize() + self._in_flight

    def offer(self, event: ModelEvent) -> None:
        """Schedule an event's copies without waiting; envelopes are built now, from the
        contact as it is."""
        kinds = [event.kind]
        if event.kind == "QUEUED" and self.planner.settings.initiated:
            kinds.insert(0, "INITIATED")
        now = self._clock()
        for kind in kinds:
            body = json.dumps(contact_event(event, self.region, self.account, kind)).encode()
            self._offered += 1
            for delay in self.planner.copies():
                self._schedule(_Copy(now + delay, 0, self._offered, body))

    async def close(self, drain_s: float = 1.0) -> None:
        """Give what is due within `drain_s` that long to go out, then stop. Idempotent."""
        tasks, self._tasks = self._tasks, []
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    # Polled: three places change `pending`; this runs once, at shutdown.
                    while self.pending:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
        for task in tasks:
            await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self.planner.pending = lambda: 0

    def _schedule(self, copy: _Copy) -> None:
        if len(self._waiting) >= self._max_pending:
            heapq.heappop(self._waiting)
            self.planner.stats.dropped += 1
        self._seq += 1
        heapq.heappush(self._waiting, replace(copy, seq=self._seq))
        self._wake.set()

    async def _dispatch(self) -> None:
        while True:
            wait = self._waiting[0].due - self._clock() if self._waiting else None
            if wait is None or wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            await self._outgoing.put(heapq.heappop(self._waiting))

    async def _send_loop(self) -> None:
        assert self._client is not None
        while True:
            copy = await self._outgoing.get()
            self._in_flight += 1
            try:
                status, retry_after = await self._post(self._client, copy.body)
            finally:
                self._in_flight -= 1
            if status is not None and 200 <= status < 300:
                self.planner.stats.sent += 1
                if copy.offered < self._latest_sent:
                    self.planner.stats.reordered += 1
                self._latest_sent = max(self._latest_sent, copy.offered)
            elif status is None or status == 429 or status >= 500:
                delay = self.planner.retry_delay(copy.attempt, retry_after)
                if delay is None:
                    self.planner.stats.failed += 1
                    log.warning("contact event to %s given up (%s)", self.url, status)
                else:
                    self.planner.stats.retried += 1
                    later = replace(copy, due=self._clock() + delay, attempt=copy.attempt + 1)
                    self._schedule(later)
            else:
                self.planner.stats.rejected += 1
                log.warning("contact event to %s refused: %s", self.url, status)

    async def _post(
        self, client: httpx.AsyncClient, body: bytes
    ) -> tuple[int | None, float | None]:
        """The answer's status (None: no answer) and its Retry-After in seconds."""
        try:
            response = await client.post(self.url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            log.info("contact event to %s failed: %s", self.url, exc)
            return None, None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        return response.status_code, retry_after
