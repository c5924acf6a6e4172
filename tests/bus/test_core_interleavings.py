"""Bus core subscription bookkeeping under controlled interleavings.

A gated backend lets a test hold `subscribe`/`unsubscribe` at the point a real Redis backend
waits (after sending the command, before the confirmation), so the orderings that a busy
gateway produces now and then can be replayed deterministically.
"""

from __future__ import annotations

import asyncio

from server.bus import Bus, Commit, MemoryBackend, contact_channel
from tests.bus.conftest import Recorder, head

CHANNEL = contact_channel("c-1")


class GatedBackend(MemoryBackend):
    """Like Redis: the (un)subscription takes effect at once, the call returns on `open`."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}
        self.arrived: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        self.gates[name] = asyncio.Event()
        self.arrived[name] = asyncio.Event()
        return self.gates[name]

    async def _hold(self, name: str) -> None:
        if name in self.gates:
            self.arrived[name].set()
            gate = self.gates.pop(name)
            await gate.wait()

    async def subscribe(self, channel: str) -> None:
        await super().subscribe(channel)
        await self._hold("subscribe")

    async def unsubscribe(self, channel: str) -> None:
        await super().unsubscribe(channel)
        await self._hold("unsubscribe")


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_subscribe_waiting_behind_last_unsubscribe_is_not_run_concurrently() -> None:
    backend = GatedBackend()
    async with Bus(backend) as bus:
        x, y, z = Recorder("x"), Recorder("y"), Recorder("z")
        await bus.subscribe(CHANNEL, x)

        # x leaves (the last listener) while y is already waiting to subscribe.
        unsubscribe_gate = backend.gate("unsubscribe")
        leaving = asyncio.create_task(bus.unsubscribe(CHANNEL, x))
        await asyncio.wait_for(backend.arrived["unsubscribe"].wait(), 1)
        joining = asyncio.create_task(bus.subscribe(CHANNEL, y))
        await settle()
        subscribe_gate = backend.gate("subscribe")
        unsubscribe_gate.set()
        await asyncio.wait_for(leaving, 1)
        await asyncio.wait_for(backend.arrived["subscribe"].wait(), 1)  # y's SUBSCRIBE is out

        # z comes and goes while y's subscription is still being confirmed.
        async def come_and_go() -> None:
            await bus.subscribe(CHANNEL, z)
            await bus.unsubscribe(CHANNEL, z)

        churn = asyncio.create_task(come_and_go())
        await settle()
        subscribe_gate.set()
        await asyncio.wait_for(asyncio.gather(joining, churn), 1)

        # y is registered, so the process must still be subscribed, and y must hear events.
        assert bus.listener_count(CHANNEL) == 1
        assert CHANNEL in bus.channels
        assert CHANNEL in backend._channels, "bus thinks it is subscribed; the backend is not"
        await bus.commit(Commit("c-1", None, head("c-1"), ttl=60, ended=False))
        await y.wait_for(1, timeout=1)
