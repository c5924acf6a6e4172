"""The contact-event log's contract, on every implementation: memory, a real redis-server and a
real 3-master Redis Cluster (server/connect/event_log.py, event_log_redis.py).

Each "replica" is its own log object on its own client, as two processes would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server._lifecycle import cancel_and_wait
from server.app import redis_client
from server.backoff import Backoff
from server.bus import BusUnavailable
from server.bus.keys import EVENT_LOG_KEY, event_seen_key
from server.connect.contact_events import ConnectContactEvent
from server.connect.event_log import ContactEventFollower, ContactEventLog, MemoryContactEventLog
from server.connect.event_log_redis import RedisContactEventLog
from tests.bus.conftest import WAIT, eventually
from tests.support.redis import RedisServer, running_redis

BLOCK_S = 0.2


def event(n: int, kind: str = "QUEUED") -> ConnectContactEvent:
    return ConnectContactEvent(
        event_id=f"ev-{n}",
        kind=kind,
        instance_id="12345678-1234-1234-1234-123456789012",
        contact_id=f"00000000-0000-4000-8000-{n:012d}",
        queue_id="q-1",
        enqueued_at=1_700_000_000.0 + n,
        at=1_700_000_000.0 + n,
        initiation_method="INBOUND",
        initial_contact_id=None,
        previous_contact_id=None,
        channel="VOICE",
    )


class LogHarness:
    """Builds one log per replica on one implementation."""

    kind = "memory"

    def __init__(self) -> None:
        self.shared = MemoryContactEventLog()

    def log(self, **options) -> ContactEventLog:
        # One process's memory log is shared by everything in it.
        return MemoryContactEventLog(**options) if options else self.shared


class RedisLogHarness(LogHarness):
    kind = "redis"

    def __init__(self, url: str, server: RedisServer | None = None) -> None:
        self.url = url
        self.server = server
        self.clients: list = []

    def log(self, **options) -> ContactEventLog:
        client = redis_client(self.url, timeout=1.0)
        self.clients.append(client)
        return RedisContactEventLog(client, op_timeout=1.0, **options)

    async def raw(self):
        client = redis_client(self.url, timeout=1.0)
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def logs(request, tmp_path: Path) -> AsyncIterator[LogHarness]:
    if request.param == "memory":
        yield LogHarness()
        return
    if request.param == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster_nodes")
        cluster.flush()
        async with contextlib.aclosing(RedisLogHarness(cluster.url)) as harness:
            yield harness
        return
    async with running_redis(tmp_path) as server:
        async with contextlib.aclosing(RedisLogHarness(server.url, server)) as harness:
            yield harness


@pytest.fixture
async def redis_logs(tmp_path: Path) -> AsyncIterator[RedisLogHarness]:
    async with (
        running_redis(tmp_path) as server,
        contextlib.aclosing(RedisLogHarness(server.url, server)) as harness,
    ):
        yield harness


class Following:
    """A follower run in a task, keeping what it yields."""

    def __init__(self, event_log: ContactEventLog, **options) -> None:
        self.follower = ContactEventFollower(
            event_log, block_s=BLOCK_S, backoff=Backoff(0.02, 0.2), **options
        )
        self.events: list[ConnectContactEvent] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for batch in self.follower.batches():
            self.events.extend(batch)

    async def __aenter__(self) -> Following:
        self._task = asyncio.create_task(self._run())
        await eventually(lambda: self.follower.connected)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await cancel_and_wait(self._task)

    @property
    def ids(self) -> list[str]:
        return [e.event_id for e in self.events]

    async def wait_for(self, count: int) -> list[str]:
        await eventually(lambda: len(self.events) >= count)
        return self.ids


async def test_append_counts_only_new_events_and_followers_see_each_once(logs) -> None:
    event_log = logs.log()
    async with Following(event_log) as following:
        assert await event_log.append([event(1), event(2)]) == 2
        assert await event_log.append([event(2), event(3), event(3)]) == 1  # dup across, within
        assert await event_log.append([]) == 0
        assert await following.wait_for(3) == ["ev-1", "ev-2", "ev-3"]
        await asyncio.sleep(3 * BLOCK_S)  # blocking reads come back empty, nothing repeats
        assert following.ids == ["ev-1", "ev-2", "ev-3"]
        assert following.events[0] == event(1)  # what was appended, field for field


async def test_two_replicas_each_see_every_event_once_whoever_took_it(logs) -> None:
    replica_a, replica_b = logs.log(), logs.log()
    async with Following(replica_a) as on_a, Following(replica_b) as on_b:
        taken = await asyncio.gather(
            replica_a.append([event(1), event(2)]),
            replica_b.append([event(2), event(3)]),  # the same retried event at both
            replica_b.append([event(1)]),
        )
        assert sum(taken) == 3
        for following in (on_a, on_b):
            assert sorted(await following.wait_for(3)) == ["ev-1", "ev-2", "ev-3"]
        await asyncio.sleep(3 * BLOCK_S)
        assert on_a.ids == on_b.ids  # one log order for all
        assert len(on_a.ids) == 3


async def test_a_new_follower_replays_recent_history(logs) -> None:
    event_log = logs.log()
    await event_log.append([event(1)])
    await asyncio.sleep(0.75)
    between = time.monotonic()  # the window starts here, 0.75 s from either append
    await asyncio.sleep(0.75)
    await event_log.append([event(2), event(3)])
    async with Following(logs.log(), replay_s=time.monotonic() - between) as late:
        assert await late.wait_for(2) == ["ev-2", "ev-3"]  # ev-1 is older than the window
        await event_log.append([event(4)])
        assert await late.wait_for(3) == ["ev-2", "ev-3", "ev-4"]
    async with Following(logs.log(), replay_s=3600) as everything:
        assert await everything.wait_for(4) == ["ev-1", "ev-2", "ev-3", "ev-4"]


async def test_a_follower_starting_on_an_empty_log_waits(logs) -> None:
    event_log = logs.log()
    async with Following(event_log) as following:
        await asyncio.sleep(2 * BLOCK_S)
        assert following.ids == []
        await event_log.append([event(1)])
        assert await following.wait_for(1) == ["ev-1"]


async def test_a_forgotten_id_is_appended_again_but_yielded_once(logs) -> None:
    event_log = logs.log(dedup_ttl=0.2)
    async with Following(event_log) as following:
        assert await event_log.append([event(1)]) == 1
        await asyncio.sleep(0.4)
        assert await event_log.append([event(1)]) == 1  # the log forgot it (Redis emptied…)
        await event_log.append([event(2)])
        assert await following.wait_for(2) == ["ev-1", "ev-2"]  # …the follower did not


async def test_the_log_is_bounded(logs) -> None:
    event_log = logs.log(max_entries=10)
    await event_log.append([event(n) for n in range(1000)])
    async with Following(event_log) as following:
        await eventually(lambda: following.events and following.ids[-1] == "ev-999")
        # Redis trims whole stream nodes (MAXLEN ~): the bound is approximate there.
        assert len(following.events) <= (10 if logs.kind == "memory" else 200)


async def test_a_malformed_entry_is_skipped(redis_logs) -> None:
    event_log = redis_logs.log()
    raw = await redis_logs.raw()
    async with Following(event_log) as following:
        await raw.xadd(EVENT_LOG_KEY, {"e": b"{not json"})
        await raw.xadd(EVENT_LOG_KEY, {"other": b"1"})
        await event_log.append([event(1)])
        assert await following.wait_for(1) == ["ev-1"]


async def test_redis_down_append_raises_and_the_follower_misses_nothing(redis_logs) -> None:
    server = redis_logs.server
    replica_a, replica_b = redis_logs.log(), redis_logs.log()
    async with Following(replica_b) as following:
        await replica_a.append([event(1)])
        await following.wait_for(1)

        await server.kill()
        with pytest.raises(BusUnavailable):
            await replica_a.append([event(2)])
        await eventually(lambda: not following.follower.connected)
        assert following.follower.last_error

        await server.start()  # same port, empty
        # Appended as soon as Redis answers, possibly before the follower is back.
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    await replica_a.append([event(2), event(3)])
                    break
                except BusUnavailable:
                    await asyncio.sleep(0.05)
        assert await following.wait_for(3) == ["ev-1", "ev-2", "ev-3"]
        assert following.follower.connected and following.follower.last_error is None
        await replica_a.append([event(4)])
        assert await following.wait_for(4) == ["ev-1", "ev-2", "ev-3", "ev-4"]


async def test_cluster_keys_share_one_slot(redis_cluster_nodes) -> None:
    slot = redis_cluster_nodes.keyslot(EVENT_LOG_KEY)
    assert redis_cluster_nodes.keyslot(event_seen_key("any-id")) == slot
    assert redis_cluster_nodes.keyslot(event_seen_key("{odd}id")) == slot
