"""The end-to-end flow on a 3-master Redis Cluster: two replicas, sharded pub/sub, real
processes (redis-server in cluster mode, the emulator, `queuecast serve`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.bus import contact_channel
from tests.scaleout.conftest import replicas
from tests.support.redis import RedisClusterNodes, running_redis_cluster
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


@pytest.fixture
async def redis_cluster(tmp_path) -> AsyncIterator[RedisClusterNodes]:
    async with running_redis_cluster(tmp_path) as cluster:
        yield cluster


async def polls_of(emulator, contact: str) -> int:
    stats = await emulator.sim_stats()
    return int(stats["getContactMetrics"]["byContact"].get(contact, 0))


async def test_flow_on_a_cluster_with_two_replicas(emulator, redis_cluster):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
    mine = contacts[2]
    queue = emulator.queues["sales"]
    async with (
        replicas(emulator, redis_cluster.url, 2) as (first, second),
        ws_client(first.ws_url) as by_contact,
        ws_client(second.ws_url) as by_queue,
    ):
        await by_contact.subscribe(mine)
        snapshot = await by_contact.next()
        assert snapshot["type"] == "snapshot"
        assert (snapshot["contact"], snapshot["position"], snapshot["seq"]) == (mine, 3, 1)
        assert snapshot["queue"] == queue

        # The other replica's queue subscriber learns of the contact from the queue's member
        # set (the commit's second step, in the queue's slot) and then streams it.
        await by_queue.subscribe(queue=queue)
        seen = await by_queue.next_matching(lambda m: m.get("contact") == mine)
        assert seen["position"] == 3

        await emulator.reset_stats()
        await asyncio.sleep(2.0)
        # Interval 0.5 s: about 4 polls in 2 s in total; two replicas both polling would be ~8.
        assert 2 <= await polls_of(emulator, mine) <= 5

        await emulator.connect(contacts[0])
        update = await by_contact.next()
        assert (update["type"], update["position"]) == ("update", 2)
        assert update["seq"] > snapshot["seq"]
        assert await by_queue.next_matching(lambda m: m["seq"] == update["seq"]) == update

        await emulator.connect(mine)
        # The queue-level read may first move `mine` up (the head leaving is likelier than a
        # contact leaving from the middle); its own poll ends it.
        ended = await by_contact.next_matching(lambda m: m["type"] != "update")
        assert (ended["type"], ended["reason"]) == ("ended", "connected_to_agent")
        assert await by_queue.next_matching(lambda m: m["type"] == "ended") == ended

        polls = await polls_of(emulator, mine)
        await asyncio.sleep(2.0)
        assert await polls_of(emulator, mine) == polls, "an ended contact was polled again"
        assert [(await s.status())["tracked"] for s in (first, second)] == [0, 0]

    # Everything the service stored for the contact is in its channel's slot.
    slot = redis_cluster.keyslot(contact_channel(mine))
    stored = []
    for port in redis_cluster.ports:
        node = redis_cluster.node_client(port)
        try:
            stored += [key.decode() for key in await node.keys(f"*{mine}*")]
        finally:
            await node.aclose()
    assert {key.split("}")[-1] for key in stored} >= {":state", ":seq"}
    assert {redis_cluster.keyslot(key) for key in stored} == {slot}
