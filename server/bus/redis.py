"""The Redis backend: redis.asyncio, Lua for commits; a single node or a Redis Cluster.

On a single node the process has one subscriber connection (SUBSCRIBE/PUBLISH). On a cluster
(`redis+cluster://` URLs, server/bus/redis_cluster.py) it has one per primary and uses sharded
pub/sub (SSUBSCRIBE/SPUBLISH): a contact's channel lives in its keys' slot, so the commit script may
publish on it, and a shard channel's message only travels to the nodes serving its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from server.bus._redis_errors import REDIS_ERRORS, redis_call, text
from server.bus.base import BusBackend, BusUnavailable, Commit, Message
from server.bus.keys import (
    CONTROL_CHANNEL,
    QUEUE_CHANNEL_PREFIX,
    QUEUE_CHANNEL_SUFFIX,
    contact_channel,
    contact_seq_key,
    contact_state_key,
    queue_channel,
    queue_figures_key,
    queue_figures_seq_key,
    queue_members_key,
    shard_control_channel,
)
from server.bus.redis_scripts import (
    COMMIT,
    LEAVE_QUEUE,
    QUEUE_COMMIT,
    QUEUE_IN_STATE,
    QUEUE_MEMBERS,
    RAISE_FLOOR,
)
from server.bus.subscriber import SubscriberConnection

RedisClient = aioredis.Redis | RedisCluster


class RedisBackend(BusBackend):
    """Bus backend on a `redis.asyncio` client, which the caller owns and passes in.

    Args:
        client: the injected client (its pool serves commits and reads): a `Redis`, or a
            `RedisCluster` for sharded pub/sub and slot-aware commands.
        ping_interval: seconds between keep-alive PINGs on each subscriber connection; a
            PING unanswered for twice that long means the listener is deaf.
        op_timeout: seconds any single command may take.
    """

    def __init__(
        self, client: RedisClient, *, ping_interval: float = 5.0, op_timeout: float = 3.0
    ) -> None:
        self._client = client
        self.cluster = isinstance(client, RedisCluster)
        self._ping_interval = ping_interval
        self._op_timeout = op_timeout
        self._listeners: dict[str, SubscriberConnection] = {}  # by node name ("" on a single node)
        self._commit = client.register_script(COMMIT)
        self._queue_commit = client.register_script(QUEUE_COMMIT)
        self._raise_floor = client.register_script(RAISE_FLOOR)
        self._queue_members = client.register_script(QUEUE_MEMBERS)
        self._leave_queue = client.register_script(LEAVE_QUEUE)
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        if self.cluster:
            self._publish_command = "SPUBLISH"
            self._subscribe_command, self._unsubscribe_command = "SSUBSCRIBE", "SUNSUBSCRIBE"
            self._subscribed_kind, self._message_kind = b"ssubscribe", b"smessage"
        else:
            self._publish_command = "PUBLISH"
            self._subscribe_command, self._unsubscribe_command = "SUBSCRIBE", "UNSUBSCRIBE"
            self._subscribed_kind, self._message_kind = b"subscribe", b"message"

    async def _call(self, command: Any) -> Any:
        return await redis_call(command, self._op_timeout)

    async def connect(self) -> None:
        await self.ping()
        await self.resubscribe(())

    async def disconnect(self) -> None:
        listeners = list(self._listeners.values())
        self._listeners = {}
        for future in self._confirmations.values():
            future.cancel()
        self._confirmations.clear()
        reads = [listener.reading for listener in listeners if listener.reading is not None]
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        for listener in listeners:
            # The connection is being thrown away either way.
            with contextlib.suppress(*REDIS_ERRORS):
                await asyncio.wait_for(listener.close(), self._op_timeout)

    async def resubscribe(self, channels: Sequence[str]) -> None:
        await self.disconnect()
        if isinstance(self._client, RedisCluster):
            self._listeners = await self._cluster_listeners(self._client)
        else:
            self._listeners = {
                "": SubscriberConnection(self._client.connection_pool, CONTROL_CHANNEL)
            }
            # Pooled connections opened before an outage are dead; drop them rather than
            # fail the first command on each.
            with contextlib.suppress(*REDIS_ERRORS):
                await self._client.connection_pool.disconnect()
        now = time.monotonic()
        for listener in self._listeners.values():
            listener.last_ping = now
        # The confirmations are read by `next_published`, which is not running while we
        # reconnect, so here we wait for them directly.
        wanted: dict[str, list[str]] = {
            name: [listener.control] for name, listener in self._listeners.items()
        }
        for channel in channels:
            wanted[self._listener_name(channel)].append(channel)
        deadline = time.monotonic() + self._op_timeout
        for name, listener in self._listeners.items():
            await self._call(listener.open())
            if self.cluster:
                # One SSUBSCRIBE per channel: a shard subscription spans one slot only.
                for channel in wanted[name]:
                    await self._call(listener.send("SSUBSCRIBE", channel))
            else:
                await self._call(listener.send("SUBSCRIBE", *wanted[name]))
            pending = {channel.encode() for channel in wanted[name]}
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BusUnavailable(f"redis: {len(pending)} subscriptions not confirmed")
                reply = await self._call(listener.next_reply(left))
                if isinstance(reply, list) and reply[0] == self._subscribed_kind:
                    pending.discard(reply[1])

    async def _cluster_listeners(self, cluster: RedisCluster) -> dict[str, SubscriberConnection]:
        """One subscriber connection per primary, on the slot map as it is now."""
        await self._call(cluster.initialize())
        # Re-read the slot map (a no-op's cost when nothing moved) and drop pooled
        # connections opened before an outage.
        await self._call(cluster.nodes_manager.initialize())
        for node in cluster.get_nodes():
            with contextlib.suppress(*REDIS_ERRORS):
                await node.disconnect()
        primaries = {node.name: node for node in cluster.get_primaries()}
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

    def _listener_name(self, channel: str) -> str:
        if not isinstance(self._client, RedisCluster):
            return ""
        try:
            node = self._client.get_node_from_key(channel)
        except RedisError as exc:
            raise BusUnavailable(f"redis: no node serves {channel}: {exc}") from exc
        if node is None:
            raise BusUnavailable(f"redis: no node serves {channel}")
        return node.name

    def _listener_for(self, channel: str) -> SubscriberConnection:
        listener = self._listeners.get(self._listener_name(channel))
        if listener is None:
            # A primary appeared after we connected (resharding, failover): not followed.
            raise BusUnavailable(f"redis: not connected to the node serving {channel}")
        return listener

    async def subscribe(self, channel: str) -> None:
        if not self._listeners:
            raise BusUnavailable("redis: not connected")
        future = self._confirmations.get(channel)
        if future is None:
            listener = self._listener_for(channel)
            future = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = future
            try:
                await self._call(listener.send(self._subscribe_command, channel))
            except BusUnavailable:
                # No confirmation is coming for a SUBSCRIBE that failed: do not leave one
                # behind for the next subscribe of this channel to wait on.
                del self._confirmations[channel]
                raise
        try:
            # Resolved by `next_published` when Redis confirms: only from then on are
            # publishes guaranteed to reach us, so only then may the caller read a snapshot.
            await asyncio.wait_for(asyncio.shield(future), self._op_timeout)
        except TimeoutError as exc:
            raise BusUnavailable(f"redis: SUBSCRIBE {channel} not confirmed") from exc
        finally:
            if future.done() and self._confirmations.get(channel) is future:
                del self._confirmations[channel]

    async def unsubscribe(self, channel: str) -> None:
        if not self._listeners:
            return
        await self._call(self._listener_for(channel).send(self._unsubscribe_command, channel))

    async def publish(self, channel: str, data: bytes) -> None:
        if isinstance(self._client, RedisCluster):
            await self._call(self._client.spublish(channel, data))
        else:
            await self._call(self._client.publish(channel, data))

    async def next_published(self) -> Message:
        listeners = list(self._listeners.values())
        if not listeners:
            raise BusUnavailable("redis: not connected")
        timeout = min(1.0, self._ping_interval)
        while True:
            now = time.monotonic()
            for listener in listeners:
                if listener.ping_sent_at is not None:
                    if now - listener.ping_sent_at > 2 * self._ping_interval:
                        raise BusUnavailable("redis: subscriber connection stopped answering PING")
                elif now - listener.last_ping >= self._ping_interval:
                    listener.ping_sent_at = listener.last_ping = now
                    await self._call(listener.send("PING"))
            try:
                if len(listeners) == 1:
                    listener = listeners[0]
                    reply = await listener.next_reply(timeout)
                else:
                    listener, reply = await self._next_of_many(listeners, timeout)
            except REDIS_ERRORS as exc:
                raise BusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
            if reply is None:
                continue
            # Pushes are [kind, channel, data-or-count]; a PING's answer is [b"pong", b""].
            kind = reply[0] if isinstance(reply, list) and reply else reply
            if kind == self._message_kind:
                return Message(text(reply[1]), reply[2])
            if kind in (b"pong", b"PONG"):
                listener.ping_sent_at = None
            elif kind == self._subscribed_kind:
                future = self._confirmations.get(text(reply[1]))
                if future is not None and not future.done():
                    future.set_result(None)

    async def _next_of_many(
        self, listeners: Sequence[SubscriberConnection], wait: float
    ) -> tuple[SubscriberConnection, Any]:
        """Wait on every connection at once; take one result, leave the others in flight.

        A read in flight stays in `listener.reading` until a later call takes it, or
        `disconnect` ends it: its reply, once read, must not be dropped.
        """
        for listener in listeners:
            if listener.reading is None:
                listener.reading = asyncio.create_task(
                    listener.next_reply(wait), name="bus-shard-read"
                )
        reads = [listener.reading for listener in listeners if listener.reading is not None]
        await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
        for listener in listeners:
            task = listener.reading
            if task is not None and task.done():
                listener.reading = None
                return listener, task.result()
        raise AssertionError("asyncio.wait returned with no read done")

    async def commit(self, commit: Commit) -> bytes:
        contact, queue, ended = commit.contact, commit.queue, commit.ended
        keys = [contact_seq_key(contact), contact_state_key(contact)]
        # On a cluster the queue's part is a second step, in the queue's own slot.
        together = queue is not None and not self.cluster
        if together:
            keys.append(queue_members_key(queue))  # type: ignore[arg-type]
        ttl_ms = max(1, int(commit.ttl * 1000))
        args: list[bytes | str | int] = [
            commit.head,
            ttl_ms,
            contact_channel(contact),
            queue_channel(queue) if queue is not None else "",
            "1" if ended else "0",
            ttl_ms * 2 + 86_400_000,
            contact,
            commit.floor,
            self._publish_command,
        ]
        result: bytes = await self._call(self._commit(keys=keys, args=args))
        if queue is not None and not together:
            # Safe apart: the contact's state, seq and channel (what a contact's subscribers
            # and the seq rules depend on) changed atomically above. If this step fails the
            # caller sees BusUnavailable and commits again (a higher seq, the same state),
            # which repeats it; SADD/SREM are idempotent, and a queue subscriber that gets a
            # contact's events out of order keeps the highest seq (the gateway's seq check).
            await self._call(
                self._queue_commit(
                    keys=[queue_members_key(queue)],
                    args=["1" if ended else "0", contact, queue_channel(queue), result, ttl_ms],
                )
            )
        return result

    async def raise_floor(self, contact: str, floor: int) -> int:
        keys = [contact_seq_key(contact), contact_state_key(contact)]
        args: list[int | str] = [
            floor,
            contact_channel(contact),
            86_400_000,
            self._publish_command,
            "0" if self.cluster else "1",
            QUEUE_CHANNEL_PREFIX,
            QUEUE_CHANNEL_SUFFIX,
        ]
        seq, msg = await self._call(self._raise_floor(keys=keys, args=args))
        if self.cluster and msg and (match := QUEUE_IN_STATE.search(msg)):
            queue = match.group(1).decode()
            await self.publish(queue_channel(queue), msg)
        return int(seq)

    async def commit_queue_figures(
        self, queue: str, head: bytes, *, ttl: float, floor: int = 0
    ) -> bytes:
        # COMMIT without its member-set part: the figures' seq, state and the queue's channel
        # share the queue's hash tag, so this is one slot on a cluster too.
        ttl_ms = max(1, int(ttl * 1000))
        args: list[bytes | str | int] = [
            head,
            ttl_ms,
            queue_channel(queue),
            "",
            "0",
            ttl_ms * 2 + 86_400_000,
            "",
            floor,
            self._publish_command,
        ]
        keys = [queue_figures_seq_key(queue), queue_figures_key(queue)]
        result: bytes = await self._call(self._commit(keys=keys, args=args))
        return result

    async def read_queue_figures(self, queues: Sequence[str]) -> list[bytes | None]:
        return await self._mget([queue_figures_key(queue) for queue in queues])

    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        return await self._mget([contact_state_key(contact) for contact in contacts])

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        result: list[bytes | None]
        if isinstance(self._client, RedisCluster):
            # One MGET per slot: the states of different contacts live in different slots.
            result = await self._call(self._client.mget_nonatomic(keys))
        else:
            result = await self._call(self._client.mget(keys))
        return result

    async def queue_members(self, queue: str) -> list[str]:
        members = await self._call(self._queue_members(keys=[queue_members_key(queue)]))
        return sorted(text(member) for member in members)

    async def leave_queue(self, queue: str, contact: str) -> None:
        await self._call(self._leave_queue(keys=[queue_members_key(queue)], args=[contact]))

    async def ping(self) -> None:
        # On a cluster, every node must answer.
        await self._call(self._client.ping())
