"""The Redis backend: redis.asyncio, Lua for commits; a single node or a Redis Cluster.

On a single node the process has one subscriber connection (SUBSCRIBE/PUBLISH). On a cluster
(`redis+cluster://` URLs, see `cluster_client`) it has one per primary and uses sharded pub/sub
(SSUBSCRIBE/SPUBLISH): a contact's channel lives in its keys' slot, so the commit script may
publish on it, and a shard channel's message only travels to the nodes serving its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.bus.base import (
    BusBackend,
    BusUnavailable,
    Message,
    contact_channel,
    contact_seq_key,
    contact_state_key,
    queue_channel,
    queue_members_key,
)
from server.bus.push_reader import PushReader

# INCR, SET and PUBLISH in one script so a subscriber can never see a state that is not
# stored, nor a stored state whose seq was not published. The seq counter outlives the state so
# that a contact that comes back never reuses a seq a client has already seen; the caller's
# floor (the last seq it knows of) keeps seq rising even after Redis restarted empty.
_COMMIT = """
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[8])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local msg = ARGV[1] .. seq .. '}'
redis.call('SET', KEYS[2], msg, 'PX', ARGV[2])
redis.call(ARGV[9], ARGV[3], msg)
if KEYS[3] then
  if ARGV[5] == '1' then
    redis.call('SREM', KEYS[3], ARGV[7])
  else
    redis.call('SADD', KEYS[3], ARGV[7])
  end
  redis.call(ARGV[9], ARGV[4], msg)
end
return msg
"""

# On a cluster the queue's key and channel live in the queue's slot, not the contact's, so this
# runs as a second step after _COMMIT (see RedisBackend.commit for why that is safe).
_QUEUE_COMMIT = """
if ARGV[1] == '1' then
  redis.call('SREM', KEYS[1], ARGV[2])
else
  redis.call('SADD', KEYS[1], ARGV[2])
end
redis.call('SPUBLISH', ARGV[3], ARGV[4])
return 1
"""

# See BusBackend.raise_floor. The state's seq is its last member, so its head is everything up
# to `"seq":`.
_RAISE_FLOOR = """
local floor = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= floor then
  return {0, ''}
end
local seq = floor
local msg = nil
local state = redis.call('GET', KEYS[2])
if state then
  local head = string.match(state, '^(.*"seq":)%d+}$')
  if head then
    seq = floor + 1
    msg = head .. seq .. '}'
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl > 0 then
      redis.call('SET', KEYS[2], msg, 'PX', ttl)
    else
      redis.call('SET', KEYS[2], msg)
    end
    redis.call(ARGV[4], ARGV[2], msg)
    local queue = string.match(state, '"queue":"([^"]*)"')
    if queue and ARGV[5] == '1' then
      redis.call(ARGV[4], 'qc:queue:{' .. queue .. '}:events', msg)
    end
  end
end
redis.call('SET', KEYS[1], seq, 'PX', ARGV[3])
return {seq, msg or ''}
"""

# A channel nobody publishes on: it keeps the subscriber connection open even when no contact
# is subscribed, so keep-alive pings can tell a live listener from a deaf one. On a cluster each
# primary's connection has its own, a shard channel in one of that primary's slots.
CONTROL_CHANNEL = "qc:control"

_ERRORS = (RedisError, OSError, asyncio.TimeoutError, hiredis.ProtocolError)

# The queue a stored state belongs to, found as _RAISE_FLOOR finds it.
_QUEUE_IN_STATE = re.compile(rb'"queue":"([^"]*)"')

RedisClient = aioredis.Redis | RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_client(url: str, timeout: float = 3.0) -> RedisCluster:
    """A cluster client for `redis+cluster://[user:password@]host:port[,host:port...]`.

    Every listed node is a startup node (one that answers is enough); `rediss+cluster://`
    uses TLS. Like the single-node client its failures surface at once: the bus owns retries.

    Raises:
        ValueError: not a cluster URL, no node, a database other than 0, or a query string.
    """
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {parts.scheme}://")
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0")
    if parts.query:
        raise ValueError("Redis Cluster URLs take no query parameters")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, colon, port = address.rpartition(":")
        if not colon or address.endswith("]") or not port.isdigit():
            host, port = address, "6379"
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("a Redis Cluster URL needs at least one host:port")
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=CLUSTER_SCHEMES[parts.scheme],
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


@dataclass(slots=True, eq=False)
class _Listener:
    """One subscriber connection: the only one on a single node, one per primary on a cluster.

    redis-py opens it (TLS, AUTH, SELECT) and sends its commands; `PushReader` reads every
    reply on it. No `PubSub` object: it would read replies itself, and keep every channel
    ever subscribed in its bookkeeping, which only its own reading prunes.
    """

    pool: Any  # the connection pool it is taken from and given back to
    control: str
    owns_pool: bool = False  # a cluster primary's pool of one, ours to close
    connection: Any = None
    reader: PushReader | None = None
    ping_sent_at: float | None = None
    last_ping: float = 0.0
    reading: asyncio.Task[Any] | None = None  # a read in flight (cluster only)

    async def open(self) -> None:
        self.connection = await self.pool.get_connection()
        # The bus's own PING watchdog replaces redis-py's health check, which would read a
        # reply on this connection behind the reader's back.
        self.connection.health_check_interval = 0
        self.reader = PushReader.of(self.connection)

    async def send(self, *args: str) -> None:
        """Send a command (SUBSCRIBE, UNSUBSCRIBE, PING...); its reply comes as a push."""
        if self.connection is None:
            raise BusUnavailable("redis: the subscriber connection is not open")
        await self.connection.send_command(*args, check_health=False)

    async def next_reply(self, wait: float | None) -> Any:
        if self.reader is None:
            raise BusUnavailable("redis: the subscriber connection is not open")
        return await self.reader.next(wait)

    async def close(self) -> None:
        connection, self.connection, self.reader = self.connection, None, None
        if connection is not None:
            # nowait: a read may still hold the transport (redis-py issue 3941).
            await connection.disconnect(nowait=True)
            await self.pool.release(connection)
        if self.owns_pool:
            await self.pool.disconnect()


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
        self._listeners: dict[str, _Listener] = {}  # by node name ("" on a single node)
        self._commit = client.register_script(_COMMIT)
        self._queue_commit = client.register_script(_QUEUE_COMMIT)
        self._raise_floor = client.register_script(_RAISE_FLOOR)
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        if self.cluster:
            self._publish_command = "SPUBLISH"
            self._subscribe_command, self._unsubscribe_command = "SSUBSCRIBE", "SUNSUBSCRIBE"
            self._subscribed_kind, self._message_kind = b"ssubscribe", b"smessage"
        else:
            self._publish_command = "PUBLISH"
            self._subscribe_command, self._unsubscribe_command = "SUBSCRIBE", "UNSUBSCRIBE"
            self._subscribed_kind, self._message_kind = b"subscribe", b"message"

    async def _call(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self._op_timeout)
        except _ERRORS as exc:
            raise BusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

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
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(listener.close(), self._op_timeout)

    async def resubscribe(self, channels: Sequence[str]) -> None:
        await self.disconnect()
        if isinstance(self._client, RedisCluster):
            self._listeners = await self._cluster_listeners(self._client)
        else:
            self._listeners = {"": _Listener(self._client.connection_pool, CONTROL_CHANNEL)}
            # Pooled connections opened before an outage are dead; drop them rather than
            # fail the first command on each.
            with contextlib.suppress(*_ERRORS):
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

    async def _cluster_listeners(self, cluster: RedisCluster) -> dict[str, _Listener]:
        """One subscriber connection per primary, on the slot map as it is now."""
        await self._call(cluster.initialize())
        # Re-read the slot map (a no-op's cost when nothing moved) and drop pooled
        # connections opened before an outage.
        await self._call(cluster.nodes_manager.initialize())
        for node in cluster.get_nodes():
            with contextlib.suppress(*_ERRORS):
                await node.disconnect()
        primaries = {node.name: node for node in cluster.get_primaries()}
        controls: dict[str, str] = {}
        for i in range(100_000):
            if len(controls) == len(primaries):
                break
            channel = f"qc:control:{{{i}}}"
            owner = cluster.get_node_from_key(channel)
            if owner is not None:
                controls.setdefault(owner.name, channel)
        listeners: dict[str, _Listener] = {}
        for name, node in primaries.items():
            pool = aioredis.ConnectionPool(
                connection_class=node.connection_class, max_connections=1, **node.connection_kwargs
            )
            listeners[name] = _Listener(pool, controls[name], owns_pool=True)
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

    def _listener_for(self, channel: str) -> _Listener:
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
            except _ERRORS as exc:
                raise BusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
            if reply is None:
                continue
            # Pushes are [kind, channel, data-or-count]; a PING's answer is [b"pong", b""].
            kind = reply[0] if isinstance(reply, list) and reply else reply
            if kind == self._message_kind:
                return Message(_text(reply[1]), reply[2])
            if kind in (b"pong", b"PONG"):
                listener.ping_sent_at = None
            elif kind == self._subscribed_kind:
                future = self._confirmations.get(_text(reply[1]))
                if future is not None and not future.done():
                    future.set_result(None)

    async def _next_of_many(
        self, listeners: Sequence[_Listener], wait: float
    ) -> tuple[_Listener, Any]:
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

    async def commit(
        self,
        contact: str,
        queue: str | None,
        head: bytes,
        *,
        ttl: float,
        ended: bool,
        floor: int = 0,
    ) -> bytes:
        keys = [contact_seq_key(contact), contact_state_key(contact)]
        # On a cluster the queue's part is a second step, in the queue's own slot.
        together = queue is not None and not self.cluster
        if together:
            keys.append(queue_members_key(queue))  # type: ignore[arg-type]
        ttl_ms = max(1, int(ttl * 1000))
        args: list[bytes | str | int] = [
            head,
            ttl_ms,
            contact_channel(contact),
            queue_channel(queue) if queue is not None else "",
            "1" if ended else "0",
            ttl_ms * 2 + 86_400_000,
            contact,
            floor,
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
                    args=["1" if ended else "0", contact, queue_channel(queue), result],
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
        ]
        seq, msg = await self._call(self._raise_floor(keys=keys, args=args))
        if self.cluster and msg and (match := _QUEUE_IN_STATE.search(msg)):
            queue = match.group(1).decode()
            await self.publish(queue_channel(queue), msg)
        return int(seq)

    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        if not contacts:
            return []
        keys = [contact_state_key(contact) for contact in contacts]
        result: list[bytes | None]
        if isinstance(self._client, RedisCluster):
            # One MGET per slot: the states of different contacts live in different slots.
            result = await self._call(self._client.mget_nonatomic(keys))
        else:
            result = await self._call(self._client.mget(keys))
        return result

    async def queue_members(self, queue: str) -> list[str]:
        members = await self._call(self._client.smembers(queue_members_key(queue)))
        return sorted(_text(member) for member in members)

    async def ping(self) -> None:
        # On a cluster, every node must answer.
        await self._call(self._client.ping())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
