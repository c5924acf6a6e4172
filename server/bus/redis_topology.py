"""A single Redis node or a Redis Cluster: what differs between them, decided once.

`topology_of(client)` looks at the client once; everything that depends on the answer is a
method or attribute of the `SingleNode` or `Cluster` it returns, used by the Redis backend
(server/bus/redis.py) and the coordinator (server/connect/coordination.py).

- Pub/sub. A single node has one subscriber connection for every channel (SUBSCRIBE/PUBLISH).
  A cluster has one per primary and uses sharded pub/sub (SSUBSCRIBE/SPUBLISH): a contact's
  channel lives in its keys' slot, so the commit script may publish on it, and a shard
  channel's message only travels to the nodes serving its slot.
- Scripts and transactions. On a single node one script may touch any keys, so a commit is
  one script. On a cluster each touches one slot, so what spans a contact and its queue is two
  steps (`Cluster.commit`), multi-key reads go per slot, and a pipeline carries a script's
  text instead of its SHA.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from server.bus._redis_errors import REDIS_ERRORS, redis_call
from server.bus.base import SEQ_KEPT_BEYOND_STATE, BusUnavailable, Commit
from server.bus.keys import (
    CONTROL_CHANNEL,
    QUEUE_CHANNEL_PREFIX,
    QUEUE_CHANNEL_SUFFIX,
    contact_channel,
    contact_seq_key,
    contact_state_key,
    queue_channel,
    queue_members_key,
    shard_control_channel,
)
from server.bus.redis_scripts import COMMIT, QUEUE_COMMIT, QUEUE_IN_STATE, RAISE_FLOOR
from server.bus.subscriber import SubscriberConnection

RedisClient = aioredis.Redis | RedisCluster

_SEQ_KEPT_MS = int(SEQ_KEPT_BEYOND_STATE * 1000)


@dataclass(frozen=True, slots=True)
class PubSub:
    """A topology's pub/sub commands, and the kinds of the pushes that answer them."""

    publish: str
    subscribe: str
    unsubscribe: str
    subscribed: bytes  # a subscription confirmed
    message: bytes  # a message published on a subscribed channel


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class Topology(abc.ABC):
    """What the Redis backend and the coordinator do differently on a node and a cluster.

    Args:
        client: the injected client.
        op_timeout: seconds any single command may take.
    """

    pubsub: PubSub
    #: Whether one transaction may touch keys of different hash tags.
    spans_slots: bool

    def __init__(self, client: RedisClient, op_timeout: float) -> None:
        self._op_timeout = op_timeout
        self._commit = client.register_script(COMMIT)
        self._raise_floor = client.register_script(RAISE_FLOOR)

    async def _call(self, command: Any) -> Any:
        return await redis_call(command, self._op_timeout)

    # -- subscriber connections ----------------------------------------------------------

    @abc.abstractmethod
    async def open_listeners(self) -> dict[str, SubscriberConnection]:
        """New subscriber connections (not opened yet), by the name `listener_name` gives.

        Pooled connections opened before an outage are dead: they are dropped first rather
        than let the first command on each fail.
        """

    @abc.abstractmethod
    def listener_name(self, channel: str) -> str:
        """Which subscriber connection carries `channel`.

        Raises:
            BusUnavailable: no node serves it.
        """

    @abc.abstractmethod
    def subscriptions(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        """The commands that subscribe one connection to `channels`."""

    # -- commands ------------------------------------------------------------------------

    @abc.abstractmethod
    async def publish(self, channel: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def mget(self, keys: Sequence[str]) -> list[Any]:
        """GET of each key, in order, `None` where missing."""

    @abc.abstractmethod
    async def add_script(self, pipe: Any, script: AsyncScript, key: str, *args: str | int) -> None:
        """Add a one-key script to a non-transactional pipeline."""

    @abc.abstractmethod
    async def commit(self, commit: Commit) -> bytes:
        """`BusBackend.commit`: the contact's seq, state and channel, and its queue's."""

    @abc.abstractmethod
    async def raise_floor(self, contact: str, floor: int) -> int:
        """`BusBackend.raise_floor`."""

    async def commit_script(
        self,
        keys: list[str],
        head: bytes,
        ttl: float,
        channel: str,
        *,
        queue: str | None = None,
        ended: bool = False,
        member: str = "",
        floor: int = 0,
    ) -> bytes:
        """Run the COMMIT script (server/bus/redis_scripts.py) once.

        Args:
            keys: the seq and state keys, then the queue's member set if this script is to
                update it and publish on `queue`'s channel.
            channel: where the message is published.
            member: the contact the member set gains, or loses when `ended`.
        """
        ttl_ms = _ms(ttl)
        args: list[bytes | str | int] = [
            head,
            ttl_ms,
            channel,
            queue_channel(queue) if queue is not None else "",
            "1" if ended else "0",
            ttl_ms * 2 + _SEQ_KEPT_MS,
            member,
            floor,
            self.pubsub.publish,
        ]
        result: bytes = await self._call(self._commit(keys=keys, args=args))
        return result

    async def _commit_contact(self, commit: Commit, *, with_queue: bool) -> bytes:
        """The contact's part of a commit; with `with_queue` the queue's part too."""
        contact, queue = commit.contact, commit.queue
        keys = [contact_seq_key(contact), contact_state_key(contact)]
        if with_queue and queue is not None:
            keys.append(queue_members_key(queue))
        return await self.commit_script(
            keys,
            commit.head,
            commit.ttl,
            contact_channel(contact),
            queue=queue,
            ended=commit.ended,
            member=contact,
            floor=commit.floor,
        )

    async def _raise_floor_script(self, contact: str, floor: int, *, with_queue: bool) -> Any:
        keys = [contact_seq_key(contact), contact_state_key(contact)]
        args: list[int | str] = [
            floor,
            contact_channel(contact),
            _SEQ_KEPT_MS,
            self.pubsub.publish,
            "1" if with_queue else "0",
            QUEUE_CHANNEL_PREFIX,
            QUEUE_CHANNEL_SUFFIX,
        ]
        return await self._call(self._raise_floor(keys=keys, args=args))


class SingleNode(Topology):
    """One Redis server: one subscriber connection, one script per commit."""

    pubsub = PubSub("PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", b"subscribe", b"message")
    spans_slots = True

    def __init__(self, client: aioredis.Redis, op_timeout: float) -> None:
        super().__init__(client, op_timeout)
        self._client = client

    async def open_listeners(self) -> dict[str, SubscriberConnection]:
        listeners = {"": SubscriberConnection(self._client.connection_pool, CONTROL_CHANNEL)}
        with contextlib.suppress(*REDIS_ERRORS):
            await self._client.connection_pool.disconnect()
        return listeners

    def listener_name(self, channel: str) -> str:
        return ""

    def subscriptions(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        return [("SUBSCRIBE", *channels)]

    async def publish(self, channel: str, data: bytes) -> None:
        await self._call(self._client.publish(channel, data))

    async def mget(self, keys: Sequence[str]) -> list[Any]:
        result: list[Any] = await self._call(self._client.mget(keys))
        return result

    async def add_script(self, pipe: Any, script: AsyncScript, key: str, *args: str | int) -> None:
        await script(keys=[key], args=list(args), client=pipe)

    async def commit(self, commit: Commit) -> bytes:
        return await self._commit_contact(commit, with_queue=True)

    async def raise_floor(self, contact: str, floor: int) -> int:
        seq, _ = await self._raise_floor_script(contact, floor, with_queue=True)
        return int(seq)


class Cluster(Topology):
    """A Redis Cluster: a subscriber connection per primary, sharded pub/sub, one slot per
    script."""

    pubsub = PubSub("SPUBLISH", "SSUBSCRIBE", "SUNSUBSCRIBE", b"ssubscribe", b"smessage")
    spans_slots = False

    def __init__(self, client: RedisCluster, op_timeout: float) -> None:
        super().__init__(client, op_timeout)
        self._client = client
        self._queue_commit = client.register_script(QUEUE_COMMIT)

    async def open_listeners(self) -> dict[str, SubscriberConnection]:
        """One subscriber connection per primary, on the slot map as it is now."""
        cluster = self._client
        await self._call(cluster.initialize())
        # Re-read the slot map (a no-op's cost when nothing moved) and drop pooled
        # connections opened before an outage.
        await self._call(cluster.nodes_manager.initialize())
        for node in cluster.get_nodes():
            with contextlib.suppress(*REDIS_ERRORS):
                await node.disconnect()
        primaries = {node.name: node for node in cluster.get_primaries()}
        # Each connection's control channel is a shard channel in one of its own slots.
        controls: dict[str, str] = {}
        for i in range(100_000):
            if len(controls) == len(primaries):
                break
            channel = shard_control_channel(i)
            owner = cluster.get_node_from_key(channel)
            if owner is not None:
                controls.setdefault(owner.name, channel)
        listeners: dict[str, SubscriberConnection] = {}
        for name, node in primaries.items():
            pool = aioredis.ConnectionPool(
                connection_class=node.connection_class, max_connections=1, **node.connection_kwargs
            )
            listeners[name] = SubscriberConnection(pool, controls[name], owns_pool=True)
        return listeners

    def listener_name(self, channel: str) -> str:
        try:
            node = self._client.get_node_from_key(channel)
        except RedisError as exc:
            raise BusUnavailable(f"redis: no node serves {channel}: {exc}") from exc
        if node is None:
            raise BusUnavailable(f"redis: no node serves {channel}")
        return str(node.name)

    def subscriptions(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        # One SSUBSCRIBE per channel: a shard subscription spans one slot only.
        return [("SSUBSCRIBE", channel) for channel in channels]

    async def publish(self, channel: str, data: bytes) -> None:
        await self._call(self._client.spublish(channel, data))

    async def mget(self, keys: Sequence[str]) -> list[Any]:
        # One MGET per slot: the keys of different contacts live in different slots.
        result: list[Any] = await self._call(self._client.mget_nonatomic(keys))
        return result

    async def add_script(self, pipe: Any, script: AsyncScript, key: str, *args: str | int) -> None:
        # A cluster pipeline refuses EVALSHA (it cannot load a script missing on a node), so
        # the script's text goes with each call: these scripts are a few hundred bytes.
        pipe.eval(script.script, 1, key, *args)

    async def commit(self, commit: Commit) -> bytes:
        contact, queue = commit.contact, commit.queue
        result = await self._commit_contact(commit, with_queue=False)
        if queue is not None:
            # The queue's part, in the queue's own slot. Safe apart: the contact's state, seq
            # and channel (what a contact's subscribers and the seq rules depend on) changed
            # atomically above. If this step fails the caller sees BusUnavailable and commits
            # again (a higher seq, the same state), which repeats it; adding and removing a
            # member are idempotent, and a queue subscriber that gets a contact's events out
            # of order keeps the highest seq (the session's seq check).
            await self._call(
                self._queue_commit(
                    keys=[queue_members_key(queue)],
                    args=[
                        "1" if commit.ended else "0",
                        contact,
                        queue_channel(queue),
                        result,
                        _ms(commit.ttl),
                    ],
                )
            )
        return result

    async def raise_floor(self, contact: str, floor: int) -> int:
        seq, msg = await self._raise_floor_script(contact, floor, with_queue=False)
        # The queue's channel is in another slot: published on after the script.
        if msg and (match := QUEUE_IN_STATE.search(msg)):
            await self.publish(queue_channel(match.group(1).decode()), msg)
        return int(seq)


def topology_of(client: RedisClient, op_timeout: float = 3.0) -> Topology:
    """The topology `client` talks to: a `RedisCluster` is a cluster, any other a node."""
    if isinstance(client, RedisCluster):
        return Cluster(client, op_timeout)
    return SingleNode(client, op_timeout)
