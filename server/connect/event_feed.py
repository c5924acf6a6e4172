"""ContactEventFeed: follows the contact-event log and hands each event to the sink, once.

Two owned tasks and a bounded queue between them: the reader follows the log (reconnecting
after outages, server/connect/event_log.py) and waits when the queue is full; the applier calls
the sink. A slow sink therefore slows reading, never drops an event: the log keeps what has not
been read yet (up to its bound).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.connect.contact_events import ConnectContactEvent
from server.connect.event_log import REPLAY_S, ContactEventFollower, ContactEventLog

log = logging.getLogger("queuecast.events")

QUEUE_SIZE = 1000
_YIELD_EVERY = 100  # events applied between two turns of the loop


class ContactEventFeed(AsyncCloseable):
    """Async context manager: `async with ContactEventFeed(log, sink.apply_contact_event):`.

    Args:
        event_log: the log to follow.
        apply: called with each event, in log order, once per process.
        queue_size: events read but not yet applied, at the most.
        replay_s: how far back a new feed starts (see `ContactEventFollower`).
        block_s: how long one read waits for an event.

    Attributes:
        applied: events handed to `apply` (including those it raised on).
        failed: events on which `apply` raised.
    """

    def __init__(
        self,
        event_log: ContactEventLog,
        apply: Callable[[ConnectContactEvent], None],
        *,
        queue_size: int = QUEUE_SIZE,
        replay_s: float = REPLAY_S,
        block_s: float = 1.0,
    ) -> None:
        self.follower = ContactEventFollower(event_log, replay_s=replay_s, block_s=block_s)
        self._apply = apply
        self._queue: asyncio.Queue[ConnectContactEvent] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self.applied = 0
        self.failed = 0

    async def __aenter__(self) -> ContactEventFeed:
        self._tasks = [
            asyncio.create_task(self._read(), name="contact-event-reader"),
            asyncio.create_task(self._run_sink(), name="contact-event-applier"),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_unexpected_end)
        return self

    async def close(self) -> None:
        """Stop reading and applying; events read but not applied are left. Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel_and_wait(task)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "connected": self.follower.connected,
            "lastError": self.follower.last_error,
            "read": self.follower.read,
            "pending": self._queue.qsize(),
            "applied": self.applied,
            "failed": self.failed,
        }

    async def _read(self) -> None:
        async for batch in self.follower.batches():
            for event in batch:
                await self._queue.put(event)

    async def _run_sink(self) -> None:
        while True:
            event = await self._queue.get()
            self.applied += 1
            try:
                self._apply(event)
            except Exception:
                self.failed += 1
                log.exception(
                    "applying a contact event failed",
                    extra={"kind": event.kind, "eventId": event.event_id},
                )
            if self.applied % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long backlog must not hold the loop


def _report_unexpected_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("contact-event feed stopped", exc_info=task.exception())
