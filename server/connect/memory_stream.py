"""MemoryStream: a bounded, append-only stream inside one process, read from a cursor.

What both shared logs (contact events, book news) are without Redis: entries numbered
consecutively, so a cursor is the number of the last entry read and a reader at the tail costs
what it reads, not the whole stream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class MemoryStream(Generic[T]):
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: deque[tuple[int, float, T]] = deque(maxlen=max_entries)
        self._next = 1
        self._clock = clock
        self._appended = asyncio.Condition()

    async def add(self, items: Sequence[T]) -> None:
        """Append `items` in order and wake the readers."""
        now = self._clock()
        for item in items:
            self._entries.append((self._next, now, item))
            self._next += 1
        if items:
            async with self._appended:
                self._appended.notify_all()

    def replay_cursor(self, replay_s: float) -> str:
        """A cursor just before the entries added in the last `replay_s` seconds."""
        since = self._clock() - replay_s
        for seq, at, _ in self._entries:
            if at >= since:
                return str(seq - 1)
        return str(self._next - 1)

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> tuple[str, list[T]]:
        """Up to `count` entries after `cursor` and the cursor after them, waiting up to
        `block_s` for one to come (the cursor unchanged when none came)."""
        after = int(cursor)
        if after >= self._next - 1:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that
            # arrives as the wait ends, and the reader's task would then never stop.
            try:
                async with asyncio.timeout(block_s), self._appended:
                    await self._appended.wait_for(lambda: self._next - 1 > after)
            except TimeoutError:
                return cursor, []
        taken = self._entries_after(after, count)
        if not taken:
            return cursor, []
        return str(taken[-1][0]), [item for _, _, item in taken]

    def _entries_after(self, after: int, count: int) -> list[tuple[int, float, T]]:
        """Up to `count` entries numbered above `after`, reached from the nearer end: a reader
        at the tail costs what it reads (scanning a long stream for every event of a burst made
        taking the burst quadratic)."""
        if not self._entries:
            return []
        start = max(0, after + 1 - self._entries[0][0])
        unread = len(self._entries) - start
        if unread <= 0:
            return []
        if start < unread:
            return list(itertools.islice(self._entries, start, start + count))
        tail = list(itertools.islice(reversed(self._entries), unread))
        tail.reverse()
        return tail[:count]
