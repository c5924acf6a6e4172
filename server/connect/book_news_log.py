"""The shared log of book news: what each replica learnt by its own calls, for the others.

Unlike the contact-event log (server/connect/event_log.py) it needs no idempotence: each piece
of news is appended once, by the replica that made the call. Losing some is harmless (the next
read corrects the book), so the bound is small and an append that fails is dropped, not retried.

Two implementations: `MemoryBookNewsLog` (replicas in one process: tests) and
`RedisBookNewsLog` (server/connect/book_news_redis.py).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.connect.book_news import BookNews
from server.connect.memory_stream import MemoryStream

MAX_ENTRIES = 10_000  # minutes of news at a few reads a second
REPLAY_S = 600.0  # a starting replica reads this far back: DescribeContact answers stay true


@dataclass(frozen=True, slots=True)
class NewsRead:
    """One read: the cursor to read after next time, and the news read (maybe none)."""

    cursor: str
    news: list[BookNews]


class BookNewsLog(abc.ABC):
    """Append-only and bounded."""

    @abc.abstractmethod
    async def append(self, news: Sequence[BookNews]) -> None:
        """Append in order.

        Raises:
            BusUnavailable: the log cannot be reached; nothing was appended.
        """

    @abc.abstractmethod
    async def replay_cursor(self, replay_s: float) -> str:
        """A cursor just before what was appended in the last `replay_s` seconds."""

    @abc.abstractmethod
    async def read_after(self, cursor: str, *, block_s: float, count: int) -> NewsRead:
        """Up to `count` entries after `cursor`, waiting up to `block_s` for one to come.

        Raises:
            BusUnavailable: the log cannot be reached; the caller retries with the same cursor.
        """


class MemoryBookNewsLog(BookNewsLog):
    """The log of one process (replicas in one process: tests)."""

    def __init__(
        self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream: MemoryStream[BookNews] = MemoryStream(max_entries, clock)

    async def append(self, news: Sequence[BookNews]) -> None:
        await self._stream.add(news)

    async def replay_cursor(self, replay_s: float) -> str:
        return self._stream.replay_cursor(replay_s)

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> NewsRead:
        cursor, news = await self._stream.read_after(cursor, block_s=block_s, count=count)
        return NewsRead(cursor, news)
