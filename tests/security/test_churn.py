"""Subscribe/unsubscribe churn does not multiply Redis work (issue 14, item 6).

One socket toggling its own subscription inside the message rate made the replica reconcile
~9 times a second, each time rewriting its whole interest hash. Reconciles now come at most
once per coordination period, and only what changed is written. Counted with MONITOR on the
test's own redis-server: every reconcile reads the explicit tracks (HGETALL qc:explicit).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest
import redis.asyncio as aioredis

from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

PHASE_SECONDS = 4.0


class CommandCounter:
    """Counts, by kind, the commands Redis executes (MONITOR) while `counting` is on."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def take(self, command: str) -> None:
        words = command.split()
        if not words:
            return
        name = words[0].upper()
        key = words[1] if len(words) > 1 else ""
        if name == "HGETALL" and key == "qc:explicit":
            self.counts["reconcile"] += 1
        elif key.startswith("qc:interest:") and name in ("DEL", "HSET", "HDEL"):
            self.counts["interest_write"] += 1

    def reset(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


@contextlib.asynccontextmanager
async def monitoring(url: str):
    counter = CommandCounter()
    client = aioredis.from_url(url)

    async def listen() -> None:
        async with client.monitor() as monitor:
            async for entry in monitor.listen():
                counter.take(entry["command"])

    task = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.2)
        yield counter
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


async def test_subscription_churn_costs_no_more_redis_work_than_idle(emulator, redis_server):
    steady, toggled = [(await emulator.create_contact("sales"))["contactId"] for _ in range(2)]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws, monitoring(redis_server.url) as counter:
            await ws.subscribe(steady)
            await ws.next_matching(lambda m: m.get("contact") == steady)
            await asyncio.sleep(1.5)
            counter.reset()
            await asyncio.sleep(PHASE_SECONDS)
            idle = counter.reset()
            # Eight messages a second: inside the message rate (10/s), four toggles a second,
            # each back inside the contact's linger (1 s in tests), so interest never changes.
            loop = asyncio.get_running_loop()
            end = loop.time() + PHASE_SECONDS
            while loop.time() < end:
                await ws.subscribe(toggled)
                await asyncio.sleep(0.125)
                await ws.send({"op": "unsubscribe", "contact": toggled})
                await asyncio.sleep(0.125)
            churn = counter.reset()
    assert idle["reconcile"] >= 2, idle
    # Once per coordination period either way (≈1/s with the default 5 s lease TTL).
    assert churn["reconcile"] <= idle["reconcile"] + 2, (idle, churn)
    # The toggled contact enters the interest hash once and stays there while it lingers.
    assert idle["interest_write"] == 0, idle
    assert churn["interest_write"] <= 2, churn
