"""Coalescing of concurrent single-key reads into one backend read.

When thousands of sockets subscribe in a burst, each reads its contact's stored state once its
SUBSCRIBE is confirmed. Read one by one, that is one MGET per socket queued on the connection
pool; here the reads that arrive together go out as one MGET (at most `max_batch` keys), and
every caller of a contact gets the same decoded event.

The rule that keeps snapshots correct: a caller only joins a batch whose read has not been
sent. A caller reads after its SUBSCRIBE was confirmed, and a read sent before that could miss
a commit made in between, which would then reach the caller neither way. So a read in flight
takes its batch with it, and callers arriving meanwhile gather into the next one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, TypeVar

from server._lifecycle import cancel_and_wait
from server.bus.base import BusUnavailable

T = TypeVar("T")

Read = Callable[[list[str]], Awaitable[Sequence[T]]]


class ReadBatcher(Generic[T]):
    """Reads keys through `read`, many callers' keys per call.

    Args:
        read: the batch read: one value per key, in order. Its exception goes to every
            caller of that batch.
        max_batch: most keys per `read` call; the rest wait for the next one.

    One task, started on demand and ended once nothing is pending, sends the batches one at a
    time; `close` cancels it and fails whatever is still waiting.
    """

    def __init__(self, read: Read[T], *, max_batch: int = 500) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._read = read
        self._max_batch = max_batch
        self._pending: dict[str, asyncio.Future[T]] = {}  # not sent yet, in arrival order
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def read(self, key: str) -> T:
        """The value of `key`, read after this call began.

        Cancelling the caller abandons its wait only, never the read other callers share.

        Raises:
            BusUnavailable: the batcher is closed (or was closed while this call waited).
            Exception: whatever the batch's `read` raised.
        """
        if self._closed:
            raise BusUnavailable("bus closed")
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            if self._task is None:
                self._task = asyncio.create_task(self._flush(), name="bus-read-batch")
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Stop the task; callers still waiting get `BusUnavailable`. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        pending, self._pending = self._pending, {}
        _fail(pending.values(), BusUnavailable("bus closed"))

    async def _flush(self) -> None:
        batch: dict[str, asyncio.Future[T]] = {}
        try:
            while self._pending:
                # One more loop turn, for the rest of the burst to join this batch.
                await asyncio.sleep(0)
                batch = self._take()
                try:
                    values = await self._read(list(batch))
                    if len(values) != len(batch):
                        raise ValueError(f"read {len(values)} values for {len(batch)} keys")
                except Exception as exc:
                    _fail(batch.values(), exc)
                else:
                    for future, value in zip(batch.values(), values, strict=True):
                        if not future.done():
                            future.set_result(value)
                batch = {}
        finally:
            # Cancelled mid-read: by `close`, or (stray) from inside `read`.
            _fail(batch.values(), BusUnavailable("bus read cancelled"))
            if self._task is asyncio.current_task():
                self._task = None
                if self._pending and not self._closed:
                    # Not closing: whoever waits still gets read.
                    self._task = asyncio.create_task(self._flush(), name="bus-read-batch")

    def _take(self) -> dict[str, asyncio.Future[T]]:
        """The oldest pending keys, at most `max_batch`, taken out of `_pending`."""
        if len(self._pending) <= self._max_batch:
            batch, self._pending = self._pending, {}
            return batch
        keys = list(itertools.islice(self._pending, self._max_batch))
        return {key: self._pending.pop(key) for key in keys}


def _fail(futures: Iterable[asyncio.Future[T]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
            # Marked as retrieved: if every caller of this key gave up (was cancelled), asyncio
            # would otherwise log "exception was never retrieved". Waiters still get it.
            future.exception()
