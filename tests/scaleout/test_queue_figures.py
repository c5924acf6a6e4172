"""Queue figures and names behind several replicas: one reader for all, one listing per period,
and the reader's job moves when it stops."""

from __future__ import annotations

import asyncio
import contextlib

from tests.scaleout.conftest import LEASE_TTL, replicas
from tests.support import TIMEOUT_SCALE
from tests.support.emulator import stop_process
from tests.support.wsclient import ws_client

INTERVAL = 0.5
FLAGS = ("--queue-figures-interval", str(INTERVAL))
WAIT = 15 * TIMEOUT_SCALE


def figures_of(queue: str):
    return lambda m: m.get("type") == "queue" and m["queue"] == queue


async def test_one_replica_reads_every_watched_queue_and_one_lists_the_names(
    emulator, redis_server
):
    sales, support = emulator.queues["sales"], emulator.queues["support"]
    async with replicas(emulator, redis_server.url, 2, *FLAGS) as (one, two):
        async with ws_client(one.ws_url) as a, ws_client(two.ws_url) as b:
            await a.subscribe(queue=sales)
            await b.subscribe(queue=support)  # wanted on the other replica only
            await a.next_matching(figures_of(sales), timeout=WAIT)
            await b.next_matching(figures_of(support), timeout=WAIT)
            await emulator.reset_stats()
            await asyncio.sleep(4 * INTERVAL)
            stats = await emulator.sim_stats()
            statuses = [(await r.status())["queueFigures"] for r in (one, two)]
    # Both queues in one call per interval, by one replica.
    assert sorted(s["leader"] for s in statuses) == [False, True]
    assert stats["getCurrentMetricData"]["total"] <= 4 + 2
    assert stats["listQueues"]["total"] == 0  # listed once, before the reset, by one of them
    assert stats["describeQueue"]["total"] == 0


async def test_names_are_listed_by_one_replica_only(emulator, redis_server):
    async with replicas(emulator, redis_server.url, 3, *FLAGS) as started:

        async def all_named() -> bool:
            for replica in started:
                names = (await replica.status())["queueNames"]["instances"]
                if names.get(emulator.instance_id) != len(emulator.queues):
                    return False
            return True

        async with asyncio.timeout(WAIT):
            while not await all_named():
                await asyncio.sleep(0.1)
        stats = await emulator.sim_stats()
    assert stats["listQueues"]["total"] == 1


async def test_the_readers_job_moves_when_it_stops(emulator, redis_server):
    sales = emulator.queues["sales"]
    async with replicas(emulator, redis_server.url, 2, *FLAGS) as started:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(ws_client(r.ws_url)) for r in started]
            for ws in sockets:
                await ws.subscribe(queue=sales)
                await ws.next_matching(figures_of(sales), timeout=WAIT)
            leading = [(await r.status())["queueFigures"]["leader"] for r in started]
            leader = leading.index(True)
            survivor = 1 - leader
            await stop_process(started[leader].proc)  # SIGTERM: hands the lead over
            last = sockets[survivor].seen[-1]["seq"]
            fresh = await sockets[survivor].next_matching(
                lambda m: figures_of(sales)(m) and m["seq"] > last, timeout=LEASE_TTL + WAIT
            )
            assert fresh["stale"] is False
            assert (await started[survivor].status())["queueFigures"]["leader"] is True
