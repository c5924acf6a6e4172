"""BookNewsExchange: tells the other replicas what this one learnt, and applies what they did.

Two owned tasks. The writer drains the poller's `NewsOutbox` into the shared log, in batches;
the reader follows the log from its own cursor and hands every other replica's news to the
poller. News is advice, not record: an outbox that is full, or an append that fails while Redis
is away, drops news (counted), and the next read of that queue corrects what it would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from server import metrics
from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.backoff import Backoff
from server.bus import BusUnavailable
from server.connect.book_news import BookNews
from server.connect.book_news_log import REPLAY_S, BookNewsLog

log = logging.getLogger("queuecast.book")

OUTBOX_SIZE = 2_000
BATCH = 200


class NewsOutbox:
    """Bounded: what replica `replica` learnt and has not told yet. No I/O."""

    def __init__(self, replica: str, size: int = OUTBOX_SIZE) -> None:
        self.replica = replica
        self._items: deque[BookNews] = deque()
        self._size = size
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, news: BookNews) -> None:
        if len(self._items) >= self._size:
            self.dropped += 1  # the oldest stays: it is as good as any
            metrics.BOOK_NEWS.labels("dropped", news.kind).inc()
            return
        self._items.append(news)
        self._ready.set()

    async def take(self, count: int) -> list[BookNews]:
        """Up to `count` items, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        taken = [self._items.popleft() for _ in range(min(count, len(self._items)))]
        return taken

    def __len__(self) -> int:
        return len(self._items)


class BookNewsExchange(AsyncCloseable):
    """Async context manager: `async with BookNewsExchange(log, outbox, apply):`.

    Args:
        news_log: the shared log.
        outbox: what the poller learnt (`ContactPoller(news_out=...)`); news of its replica
            is not applied again here.
        apply: called with each other replica's news, in log order.
        replay_s: how far back the reader starts.
        block_s: how long one read waits for news.
    """

    def __init__(
        self,
        news_log: BookNewsLog,
        outbox: NewsOutbox,
        apply: Callable[[BookNews], None],
        *,
        replay_s: float = REPLAY_S,
        block_s: float = 1.0,
    ) -> None:
        self._log = news_log
        self._replica = outbox.replica
        self._outbox = outbox
        self._apply = apply
        self._replay_s = replay_s
        self._block_s = block_s
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False
        self.last_error: str | None = None
        self.told = 0
        self.lost = 0  # appends that failed (Redis away): dropped, not retried
        self.applied = 0
        self.failed = 0

    async def __aenter__(self) -> BookNewsExchange:
        self._tasks = [
            asyncio.create_task(self._write(), name="book-news-writer"),
            asyncio.create_task(self._read(), name="book-news-reader"),
        ]
        return self

    async def close(self) -> None:
        """Stop both tasks. Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel_and_wait(task)

    def status(self) -> dict[str, Any]:
        return {
            "running": bool(self._tasks) and not any(t.done() for t in self._tasks),
            "connected": self.connected,
            "lastError": self.last_error,
            "told": self.told,
            "dropped": self._outbox.dropped + self.lost,
            "applied": self.applied,
            "failed": self.failed,
        }

    async def _write(self) -> None:
        backoff = Backoff(0.05, 2.0)
        while True:
            batch = await self._outbox.take(BATCH)
            try:
                await self._log.append(batch)
            except BusUnavailable:
                self.lost += len(batch)
                metrics.BOOK_NEWS.labels("dropped", "any").inc(len(batch))
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.told += len(batch)
            metrics.BOOK_NEWS.labels("told", "any").inc(len(batch))

    async def _read(self) -> None:
        backoff = Backoff(0.05, 2.0)
        cursor: str | None = None
        while True:
            try:
                if cursor is None:
                    cursor = await self._log.replay_cursor(self._replay_s)
                result = await self._log.read_after(cursor, block_s=self._block_s, count=BATCH)
            except BusUnavailable as exc:
                if self.connected or self.last_error is None:
                    log.warning("book-news log unreachable", extra={"error": str(exc)})
                self.connected, self.last_error = False, str(exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.connected, self.last_error = True, None
            cursor = result.cursor
            for news in result.news:
                if news.replica == self._replica:
                    continue
                self.applied += 1
                try:
                    self._apply(news)
                except Exception:
                    self.failed += 1
                    log.exception("applying book news failed", extra={"kind": news.kind})
            await asyncio.sleep(0)  # a long backlog must not hold the loop
