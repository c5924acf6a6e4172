"""One harness per bus backend, so the contract tests are written once.

`bus_harness` is parametrized over the in-process backend, the Redis backend on a real
redis-server (started per test on a free port by `tests.support.redis`, never 6379), and the
Redis backend on a real 3-master Redis Cluster (one per session, emptied before each test).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.app import redis_client
from server.bus import Bus, BusBackend, Delivery, MemoryBackend
from server.bus.keys import contact_state_key
from server.bus.redis import RedisBackend
from server.events import encode_head
from tests.support import TIMEOUT_SCALE
from tests.support.redis import RedisClusterNodes, RedisServer, running_redis

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

    def __init__(self, server: RedisServer | None, url: str | None = None) -> None:
        super().__init__()
        self.server = server
        self.url = url or server.url
        self.clients: list = []
        self.admin = redis_client(self.url)

    def make_backend(self) -> BusBackend:
        client = redis_client(self.url, timeout=1.0)
        self.clients.append(client)
        backend = RedisBackend(client, ping_interval=PING_INTERVAL, op_timeout=1.0)
        self.backends.append(backend)
        return backend

    async def backend_subscribers(self, backend: BusBackend, channel: str) -> int:
        ((_, count),) = await self.admin.pubsub_numsub(channel)
        return int(count)

    async def store_raw_state(self, backend: BusBackend, contact: str, data: bytes) -> None:
        await self.admin.set(contact_state_key(contact), data)

    async def kill_listeners(self, channel: str) -> int:
        """Close the subscriber connection that carries `channel`; returns how many died."""
        return int(await self.admin.client_kill_filter(_type="pubsub"))

    async def pause(self, ms: int, channel: str) -> None:
        """Make Redis stop answering for `ms` while sockets stay open (CLIENT PAUSE); on a
        cluster, a node that does not serve `channel`, so that its silence alone shows."""
        await self.admin.execute_command("CLIENT", "PAUSE", ms, "ALL")

    async def close(self) -> None:
        for client in [*self.clients, self.admin]:
            with contextlib.suppress(Exception):
                await client.aclose()


class RedisClusterHarness(RedisHarness):
    """The Redis backend on a cluster: sharded pub/sub, one subscriber connection per primary."""

    kind = "redis-cluster"

    def __init__(self, cluster: RedisClusterNodes) -> None:
        super().__init__(None, cluster.url)
        self.cluster = cluster

    def make_backend(self) -> BusBackend:
        backend = super().make_backend()
        assert isinstance(backend, RedisBackend) and backend.cluster
        return backend

    async def port_of(self, channel: str) -> int:
        """The port of the primary that serves `channel`'s slot."""
        await self.admin.initialize()
        return int(self.admin.get_node_from_key(channel).port)

    @contextlib.asynccontextmanager
    async def node(self, port: int) -> AsyncIterator[aioredis.Redis]:
        client = self.cluster.node_client(port)
        try:
            yield client
        finally:
            await client.aclose()

    async def backend_subscribers(self, backend: BusBackend, channel: str) -> int:
        async with self.node(await self.port_of(channel)) as node:
            (_, count) = await node.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(count)

    async def kill_listeners(self, channel: str) -> int:
        async with self.node(await self.port_of(channel)) as node:
            return int(await node.client_kill_filter(_type="pubsub"))

    async def pause(self, ms: int, channel: str) -> None:
        serving = await self.port_of(channel)
        other = next(port for port in self.cluster.ports if port != serving)
        async with self.node(other) as node:
            await node.execute_command("CLIENT", "PAUSE", ms, "ALL")


@pytest.fixture(scope="session")
def redis_cluster_nodes(tmp_path_factory) -> Iterator[RedisClusterNodes]:
    """One cluster for the session: creating one takes about two seconds."""
    cluster = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def cluster_harness_on(cluster: RedisClusterNodes) -> AsyncIterator[RedisClusterHarness]:
    cluster.flush()
    harness = RedisClusterHarness(cluster)
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture
async def cluster_harness(redis_cluster_nodes) -> AsyncIterator[RedisClusterHarness]:
    async with cluster_harness_on(redis_cluster_nodes) as harness:
        yield harness


@contextlib.asynccontextmanager
async def harness_of(kind: str, request, tmp_path: Path) -> AsyncIterator[BusHarness]:
    if kind == "memory":
        yield BusHarness()
    elif kind == "redis-cluster":
        # The session's cluster is started only when a test asks for it.
        async with cluster_harness_on(request.getfixturevalue("redis_cluster_nodes")) as harness:
            yield harness
    else:
        async with running_redis(tmp_path) as server:
            harness = RedisHarness(server)
            try:
                yield harness
            finally:
                await harness.close()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def bus_harness(request, tmp_path: Path) -> AsyncIterator[BusHarness]:
    async with harness_of(request.param, request, tmp_path) as harness:
        yield harness


@pytest.fixture(params=["redis", "redis-cluster"])
async def listener_harness(request, tmp_path: Path) -> AsyncIterator[BusHarness]:
    """For what both Redis modes must survive alike (killed or deaf listening connections)."""
    async with harness_of(request.param, request, tmp_path) as harness:
        yield harness


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def redis_harness(redis_server: RedisServer) -> AsyncIterator[RedisHarness]:
    harness = RedisHarness(redis_server)
    try:
        yield harness
    finally:
        await harness.close()
