"""Amazon Connect contact events in the EventBridge envelope, POSTed to a configured URL.

Delivery is best effort, like EventBridge's: a bounded queue (when full, the oldest event is
dropped and counted), one owned sender task, a timeout on every POST, failures counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import httpx

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.emulator.model import ModelEvent
from server.events import utc_iso
from server.ids import contact_arn, instance_arn, queue_arn

log = logging.getLogger(__name__)

DETAIL_TYPE = "Amazon Connect Contact Event"


def contact_event(event: ModelEvent, region: str, account: str) -> dict[str, Any]:
    """The EventBridge envelope for one model event (QUEUED, CONNECTED_TO_AGENT, DISCONNECTED)."""
    contact = event.contact
    instance = instance_arn(region, account, contact.instance_id)
    arn = contact_arn(region, account, contact.instance_id, contact.contact_id)
    detail: dict[str, Any] = {
        "eventType": event.kind,
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
    if event.kind != "QUEUED" and contact.connected_at is not None:
        detail["agentInfo"] = {"connectedToAgentTimestamp": utc_iso(contact.connected_at)}
    if event.kind == "DISCONNECTED":
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


class ContactEventPoster(AsyncCloseable):
    """Async context manager that POSTs offered events, in order, from one owned task."""

    def __init__(
        self,
        url: str,
        region: str,
        account: str,
        timeout_s: float = 2.0,
        queue_size: int = 1000,
    ) -> None:
        self.url, self.region, self.account, self.timeout_s = url, region, account, timeout_s
        self.sent = self.failed = self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ContactEventPoster:
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        self._task = asyncio.create_task(self._run(), name="emulator-contact-events")
        return self

    def offer(self, event: ModelEvent) -> None:
        """Queue an event without waiting; the envelope is built now, from the contact as it is."""
        body = contact_event(event, self.region, self.account)
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(body)

    async def close(self, drain_s: float = 1.0) -> None:
        """Give queued events `drain_s` to go out, then stop the sender. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_s)
        await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self) -> None:
        assert self._client is not None
        while True:
            body = await self._queue.get()
            try:
                response = await self._client.post(self.url, json=body)
                response.raise_for_status()
                self.sent += 1
            except httpx.HTTPError as exc:
                self.failed += 1
                log.warning("contact event to %s failed: %s", self.url, exc)
            finally:
                self._queue.task_done()
