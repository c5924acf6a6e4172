"""Per-socket wait primitives that cost nothing while nobody waits.

`asyncio.Event` and `asyncio.Queue` allocate their waiter deques up front (~600 bytes each;
an `asyncio.Queue` holds four). A process with thousands of mostly idle sockets holds several
per socket, so these keep a waiter list only while a task actually waits (docs/benchmarks.md,
RSS per idle socket). One event loop, one waiter at a time is the common case; several work.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Flag:
    """What the code here needs of `asyncio.Event`: `set`, `clear`, `is_set`, `wait`."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, *, set_: bool = False) -> None:
        self._set = set_
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            waiters = self._waiters
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    self._waiters = None


class MessageQueue(Generic[T]):
    """What uvicorn's WebSocket protocol needs of `asyncio.Queue`: an unbounded FIFO with
    `put_nowait`, `get` and `empty`."""

    __slots__ = ("_items", "_ready")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._ready = Flag()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item
