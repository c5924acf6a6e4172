"""Per-socket wait primitives that cost nothing while nobody waits.

`asyncio.Event` and `asyncio.Queue` allocate their waiter deques up front (~600 bytes each;
an `asyncio.Queue` holds four). A process with thousands of mostly idle sockets holds several
per socket, so these keep a waiter list only while a task actually waits (docs/benchmarks.md,
RSS per idle socket). One event loop, one waiter at a time is the common case; several work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Ready:
    """Awaited, returns at once: `Flag.wait` of a set flag."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that yields nothing


_READY = _Ready()


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

    def wait(self) -> Awaitable[None]:
        """An awaitable done once the flag is set: a future, not a coroutine, so a task
        parked here for the life of a socket holds no frame of this method (~230 bytes per
        wait, two per idle socket). Use `asyncio.ensure_future` on it, not `create_task`.

        A waiter cancelled before the flag is set stays in the list, done, until the next
        `wait` or `set` drops it.
        """
        if self._set:
            return _READY
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            self._waiters = [waiter]
        else:
            waiters[:] = [w for w in waiters if not w.done()]
            waiters.append(waiter)
        return waiter


class MessageQueue(Generic[T]):
    """What uvicorn's WebSocket protocol needs of `asyncio.Queue`: an unbounded FIFO with
    `put_nowait`, `get` and `empty`.

    The items are in a list made on the first put and dropped when the queue empties: it
    holds a message or two (uvicorn stops reading a socket while a message waits for the app),
    so `pop(0)` costs nothing, and a deque's 600-byte block, made and freed for every message
    in a burst of thousands of sockets, fragmented the heap (docs/benchmarks.md).
    """

    __slots__ = ("_items", "_ready")

    def __init__(self) -> None:
        self._items: list[T] | None = None
        self._ready = Flag()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = []
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item
