"""One harness per bus backend, so the contract tests are written once.

`bus_harness` is parametrized over the in-process backend and the Redis backend on a real
redis-server (started per test on a free port by `tests.support.redis`, never 6379).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.app import redis_client
from server.bus import Bus, BusBackend, Delivery, MemoryBackend
from server.bus.base import contact_state_key
from server.bus.redis import RedisBackend
from server.events import encode_head
from tests.support import TIMEOUT_SCALE
from tests.support.redis import RedisServer, running_redis

WAIT = 5.0 * TIMEOUT_SCALE  # the longest any single expectation may take
PING_INTERVAL = 0.2  # the Redis listener's keep-alive; deafness shows within 2x this


async def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `predicate()` holds, polling the loop; fail after `timeout`."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


class Recorder:
    """A listener that keeps what it is given."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.deliveries: list[Delivery] = []

    def deliver(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    @property
    def seqs(self) -> list[int]:
        return [d.event.seq for d in self.deliveries]

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[Delivery]:
        await eventually(lambda: len(self.deliveries) >= count, timeout)
        return self.deliveries

    def __repr__(self) -> str:
        return f"Recorder({self.name!r})"


def head(contact: str, *, position: int | None = 3, queue: str | None = None, ended=False):
    return encode_head(
        "ended" if ended else "update",
        instance="i-1",
        contact=contact,
        queue=queue,
        position=None if ended else position,
        ewt=None if ended else 60,
        at="2024-05-01T12:00:00.000Z",
        stale=False,
        reason="left_queue" if ended else None,
    )


class BusHarness:
    """Builds buses on one backend kind and answers questions only the backend can."""

    kind = "memory"

    def __init__(self) -> None:
        self.backends: list[BusBackend] = []

    def make_backend(self) -> BusBackend:
        backend = MemoryBackend()
        self.backends.append(backend)
        return backend

    def bus(self, backend: BusBackend | None = None) -> Bus:
        return Bus(backend or self.make_backend(), reconnect_base=0.02, reconnect_cap=0.2)

    async def backend_subscribers(self, backend: BusBackend, channel: str) -> int:
        """How many subscriptions the backend holds for `channel` (0 or 1 per process)."""
        assert isinstance(backend, MemoryBackend)
        return int(channel in backend._channels)

    async def store_raw_state(self, backend: BusBackend, contact: str, data: bytes) -> None:
        assert isinstance(backend, MemoryBackend)
        backend._states[contact] = (data, float("inf"))

    async def close(self) -> None:
        return None


class RedisHarness(BusHarness):
    kind = "redis"

    def __init__(self, server: RedisServer) -> None:
        super().__init__()
        self.server = server
        self.clients: list[aioredis.Redis] = []
        self.admin = redis_client(server.url)

    def make_backend(self) -> BusBackend:
        client = redis_client(self.server.url, timeout=1.0)
        self.clients.append(client)
        backend = RedisBackend(client, ping_interval=PING_INTERVAL, op_timeout=1.0)
        self.backends.append(backend)
        return backend

    async def backend_subscribers(self, backend: BusBackend, channel: str) -> int:
        ((_, count),) = await self.admin.pubsub_numsub(channel)
        return int(count)

    async def store_raw_state(self, backend: BusBackend, contact: str, data: bytes) -> None:
        await self.admin.set(contact_state_key(contact), data)

    async def close(self) -> None:
        for client in [*self.clients, self.admin]:
            with contextlib.suppress(Exception):
                await client.aclose()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path) as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def bus_harness(request, tmp_path: Path) -> AsyncIterator[BusHarness]:
    if request.param == "memory":
        harness: BusHarness = BusHarness()
        yield harness
        return
    async with running_redis(tmp_path) as server:
        harness = RedisHarness(server)
        try:
            yield harness
        finally:
            await harness.close()


@pytest.fixture
async def redis_harness(redis_server: RedisServer) -> AsyncIterator[RedisHarness]:
    harness = RedisHarness(redis_server)
    try:
        yield harness
    finally:
        await harness.close()
