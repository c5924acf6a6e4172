"""What only the Redis backend on a cluster has: slots, one subscriber connection per primary,
sharded pub/sub, the commit split in two, and the cluster URL."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster

from server.app import redis_client
from server.bus import Commit, contact_channel, queue_channel
from server.bus.keys import (
    contact_seq_key,
    contact_state_key,
    lease_key,
    polled_key,
    queue_members_key,
)
from server.bus.redis_cluster import cluster_client, is_cluster_url
from tests.bus.conftest import Recorder, head

CONTACT = "5f3c2a8e-1b7d-4c9a-9e21-0d4b6a7c8e90"
QUEUE = "1e2feb89-414c-443c-9027-c4d1c386bbc4"


async def test_a_contacts_keys_and_channel_share_one_slot(redis_cluster_nodes) -> None:
    contact = [
        contact_channel(CONTACT),
        contact_state_key(CONTACT),
        contact_seq_key(CONTACT),
        lease_key(CONTACT),
        polled_key(CONTACT),
    ]
    queue = [queue_channel(QUEUE), queue_members_key(QUEUE)]
    contact_slots = {redis_cluster_nodes.keyslot(name) for name in contact}
    queue_slots = {redis_cluster_nodes.keyslot(name) for name in queue}
    assert len(contact_slots) == 1
    assert len(queue_slots) == 1


async def test_one_listening_connection_per_primary_each_kept_open(cluster_harness) -> None:
    async with cluster_harness.bus() as bus:
        listeners = bus.backend._listeners
        assert len(listeners) == len(cluster_harness.cluster.ports) == 3
        for name, listener in listeners.items():
            assert f"127.0.0.1:{await cluster_harness.port_of(listener.control)}" == name
            assert await cluster_harness.backend_subscribers(bus.backend, listener.control) == 1


async def test_commit_reaches_contact_and_queue_channels_on_their_own_nodes(
    cluster_harness,
) -> None:
    # Pick a queue whose slot is on another primary than the contact's: the commit's second
    # step then really runs elsewhere.
    async with cluster_harness.bus() as bus:
        own = await cluster_harness.port_of(contact_channel(CONTACT))
        queue = QUEUE
        for i in range(1000):
            if await cluster_harness.port_of(queue_channel(queue)) != own:
                break
            queue = f"q-{i}"
        by_contact, by_queue = Recorder(), Recorder()
        await bus.subscribe(contact_channel(CONTACT), by_contact)
        await bus.subscribe(queue_channel(queue), by_queue)
        sent = await bus.commit(
            Commit(CONTACT, queue, head(CONTACT, queue=queue), ttl=60, ended=False)
        )
        assert await bus.queue_members(queue) == [CONTACT]
        (a,) = await by_contact.wait_for(1)
        (b,) = await by_queue.wait_for(1)
        assert a.text.encode() == b.text.encode() == sent

        # After an outage the floor is raised: the stored state goes out again, on both.
        assert await bus.raise_floor(CONTACT, 10) == 11
        await by_contact.wait_for(2)
        await by_queue.wait_for(2)
        assert by_contact.seqs == by_queue.seqs == [1, 11]

        await bus.commit(
            Commit(CONTACT, queue, head(CONTACT, queue=queue, ended=True), ttl=60, ended=True)
        )
        assert await bus.queue_members(queue) == []


def test_cluster_urls() -> None:
    assert is_cluster_url("redis+cluster://127.0.0.1:7000")
    assert is_cluster_url("rediss+cluster://a:1,b:2")
    assert not is_cluster_url("redis://127.0.0.1:7000/0")
    client = cluster_client("rediss+cluster://user:p%40ss@a.example:7000,b.example,[::1]:7002/0")
    try:
        assert [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()] == [
            ("a.example", 7000),
            ("b.example", 6379),
            ("::1", 7002),
        ]
        kwargs = client.nodes_manager.connection_kwargs
        assert kwargs["username"] == "user"
        assert kwargs["password"] == "p@ss"
        assert kwargs.get("connection_class").__name__ == "SSLConnection"
    finally:
        del client
    assert isinstance(redis_client("redis+cluster://127.0.0.1:7000"), RedisCluster)
    for bad in ("redis+cluster://a:1/2", "redis+cluster://", "redis+cluster://a:1?x=1"):
        with pytest.raises(ValueError):
            cluster_client(bad)
