"""The single-node or cluster decision, made once from the client (no server needed: nothing
here opens a connection). What each topology does against a real server is the bus contract's
(tests/bus, on redis-server and a 3-master cluster)."""

from __future__ import annotations

import redis.asyncio as aioredis

from server.bus.redis import RedisBackend
from server.bus.redis_cluster import cluster_client
from server.bus.redis_topology import Cluster, SingleNode, topology_of


async def test_a_plain_client_is_a_single_node() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1)
    try:
        topology = topology_of(client)
        assert isinstance(topology, SingleNode) and topology.spans_slots
        assert topology.pubsub.publish == "PUBLISH"
        assert (topology.pubsub.subscribed, topology.pubsub.message) == (b"subscribe", b"message")
        # One connection for every channel, one SUBSCRIBE for all of them.
        assert topology.listener_name("qc:{c-1}:events") == ""
        assert topology.subscriptions(["a", "b"]) == [("SUBSCRIBE", "a", "b")]
        assert not RedisBackend(client).cluster
    finally:
        await client.aclose()


async def test_a_cluster_client_is_a_cluster() -> None:
    client = cluster_client("redis+cluster://127.0.0.1:1")
    try:
        topology = topology_of(client)
        assert isinstance(topology, Cluster) and not topology.spans_slots
        assert topology.pubsub.publish == "SPUBLISH"
        assert (topology.pubsub.subscribed, topology.pubsub.message) == (b"ssubscribe", b"smessage")
        # A shard subscription spans one slot: one SSUBSCRIBE per channel.
        assert topology.subscriptions(["a", "b"]) == [("SSUBSCRIBE", "a"), ("SSUBSCRIBE", "b")]
        assert RedisBackend(client).cluster
    finally:
        await client.aclose()
