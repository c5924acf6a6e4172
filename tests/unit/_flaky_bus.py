"""The memory bus backend with a connection that can be lost on demand, and a store that can
restart empty meanwhile (what a Redis restart does), for unit tests of outage handling."""

from __future__ import annotations

import asyncio

from server.bus import BusUnavailable, MemoryBackend
from server.bus.base import Message


class FlakyMemoryBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self._lost = asyncio.Event()
        self.floors: list[tuple[str, int]] = []  # every raise_floor call

    def lose(self, *, restart_empty: bool = False) -> None:
        """Drop the listening connection; with `restart_empty`, the store forgets everything."""
        if restart_empty:
            self.forget_everything()
        self._lost.set()

    def forget_everything(self) -> None:
        """The store's seqs and states are gone (a Redis that restarted empty)."""
        self._seqs.clear()
        self._states.clear()

    async def next_published(self) -> Message:
        getter = asyncio.ensure_future(super().next_published())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({getter, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (getter, lost):
                if not waiter.done():
                    waiter.cancel()
        if lost in done:
            self._lost.clear()
            if getter in done:  # a message taken meanwhile goes back to the front
                self._queue._queue.appendleft(getter.result())  # type: ignore[attr-defined]
            raise BusUnavailable("connection lost")
        return getter.result()

    async def raise_floor(self, contact: str, floor: int) -> int:
        self.floors.append((contact, floor))
        return await super().raise_floor(contact, floor)
