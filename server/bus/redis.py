"""The Redis backend: redis.asyncio, Lua for commits; a single node or a Redis Cluster.

What differs between the two (pub/sub commands, subscriber connections, commit steps,
multi-key reads) is the backend's `Topology`, chosen once from the client
(server/bus/redis_topology.py). This module keeps what is the same on both: subscriptions
confirmed before a snapshot is read, keep-alive PINGs on each subscriber connection, and
reading every connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from server.bus._redis_errors import REDIS_ERRORS, redis_call, text
from server.bus.base import BusBackend, BusUnavailable, Commit, Message
from server.bus.keys import (
    contact_state_key,
    queue_channel,
    queue_figures_key,
    queue_figures_seq_key,
    queue_members_key,
)
from server.bus.redis_scripts import LEAVE_QUEUE, QUEUE_MEMBERS
from server.bus.redis_topology import RedisClient, topology_of
from server.bus.subscriber import SubscriberConnection

__all__ = ["RedisBackend", "RedisClient"]


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
        self._topology = topology_of(client, op_timeout)
        self._pubsub = self._topology.pubsub
        # The reader compares every push's kind with these: plain attributes, one lookup each.
        self._message_kind, self._subscribed_kind = self._pubsub.message, self._pubsub.subscribed
        self._ping_interval = ping_interval
        self._op_timeout = op_timeout
        self._listeners: dict[str, SubscriberConnection] = {}  # by node name ("" on a single node)
        self._queue_members = client.register_script(QUEUE_MEMBERS)
        self._leave_queue = client.register_script(LEAVE_QUEUE)
        self._confirmations: dict[str, asyncio.Future[None]] = {}

    @property
    def cluster(self) -> bool:
        """Whether the client talks to a Redis Cluster."""
        return not self._topology.spans_slots

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
        self._listeners = await self._topology.open_listeners()
        now = time.monotonic()
        for listener in self._listeners.values():
            listener.last_ping = now
        # The confirmations are read by `next_published`, which is not running while we
        # reconnect, so here we wait for them directly.
        wanted: dict[str, list[str]] = {
            name: [listener.control] for name, listener in self._listeners.items()
        }
        for channel in channels:
            wanted[self._topology.listener_name(channel)].append(channel)
        deadline = time.monotonic() + self._op_timeout
        for name, listener in self._listeners.items():
            await self._call(listener.open())
            for command in self._topology.subscriptions(wanted[name]):
                await self._call(listener.send(*command))
            pending = {channel.encode() for channel in wanted[name]}
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BusUnavailable(f"redis: {len(pending)} subscriptions not confirmed")
                reply = await self._call(listener.next_reply(left))
                if isinstance(reply, list) and reply[0] == self._subscribed_kind:
                    pending.discard(reply[1])

    def _listener_for(self, channel: str) -> SubscriberConnection:
        listener = self._listeners.get(self._topology.listener_name(channel))
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
                await self._call(listener.send(self._pubsub.subscribe, channel))
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
        await self._call(self._listener_for(channel).send(self._pubsub.unsubscribe, channel))

    async def publish(self, channel: str, data: bytes) -> None:
        await self._topology.publish(channel, data)

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
        return await self._topology.commit(commit)

    async def raise_floor(self, contact: str, floor: int) -> int:
        return await self._topology.raise_floor(contact, floor)

    async def commit_queue_figures(
        self, queue: str, head: bytes, *, ttl: float, floor: int = 0
    ) -> bytes:
        # COMMIT without its member-set part: the figures' seq, state and the queue's channel
        # share the queue's hash tag, so this is one slot on a cluster too.
        keys = [queue_figures_seq_key(queue), queue_figures_key(queue)]
        channel = queue_channel(queue)
        return await self._topology.commit_script(keys, head, ttl, channel, floor=floor)

    async def read_queue_figures(self, queues: Sequence[str]) -> list[bytes | None]:
        return await self._mget([queue_figures_key(queue) for queue in queues])

    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        return await self._mget([contact_state_key(contact) for contact in contacts])

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._topology.mget(keys)

    async def queue_members(self, queue: str) -> list[str]:
        members = await self._call(self._queue_members(keys=[queue_members_key(queue)]))
        return sorted(text(member) for member in members)

    async def leave_queue(self, queue: str, contact: str) -> None:
        await self._call(self._leave_queue(keys=[queue_members_key(queue)], args=[contact]))

    async def ping(self) -> None:
        # On a cluster, every node must answer.
        await self._call(self._client.ping())
