"""The Redis backend: redis.asyncio, one subscriber connection per process, Lua for commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
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
redis.call('PUBLISH', ARGV[3], msg)
if KEYS[3] then
  if ARGV[5] == '1' then
    redis.call('SREM', KEYS[3], ARGV[7])
  else
    redis.call('SADD', KEYS[3], ARGV[7])
  end
  redis.call('PUBLISH', ARGV[4], msg)
end
return msg
"""

# See BusBackend.raise_floor. The state's seq is its last member, so its head is everything up
# to `"seq":`.
_RAISE_FLOOR = """
local floor = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= floor then
  return 0
end
local seq = floor
local state = redis.call('GET', KEYS[2])
if state then
  local head = string.match(state, '^(.*"seq":)%d+}$')
  if head then
    seq = floor + 1
    local msg = head .. seq .. '}'
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl > 0 then
      redis.call('SET', KEYS[2], msg, 'PX', ttl)
    else
      redis.call('SET', KEYS[2], msg)
    end
    redis.call('PUBLISH', ARGV[2], msg)
    local queue = string.match(state, '"queue":"([^"]*)"')
    if queue then
      redis.call('PUBLISH', 'qc:queue:{' .. queue .. '}:events', msg)
    end
  end
end
redis.call('SET', KEYS[1], seq, 'PX', ARGV[3])
return seq
"""

# A channel nobody publishes on: it keeps the subscriber connection open even when no contact
# is subscribed, so keep-alive pings can tell a live listener from a deaf one.
CONTROL_CHANNEL = "qc:control"

_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class RedisBackend(BusBackend):
    """Bus backend on a `redis.asyncio.Redis` client, which the caller owns and passes in.

    Args:
        client: the injected client (its pool serves commits and reads).
        ping_interval: seconds between keep-alive PINGs on the subscriber connection; a PING
            unanswered for twice that long means the listener is deaf.
        op_timeout: seconds any single command may take.
    """

    def __init__(
        self, client: aioredis.Redis, *, ping_interval: float = 5.0, op_timeout: float = 3.0
    ) -> None:
        self._client = client
        self._ping_interval = ping_interval
        self._op_timeout = op_timeout
        self._pubsub: Any = None
        self._commit = client.register_script(_COMMIT)
        self._raise_floor = client.register_script(_RAISE_FLOOR)
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._ping_sent_at: float | None = None
        self._last_ping = 0.0

    async def _call(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self._op_timeout)
        except _ERRORS as exc:
            raise BusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def connect(self) -> None:
        await self.ping()
        await self.resubscribe(())

    async def disconnect(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        for future in self._confirmations.values():
            future.cancel()
        self._confirmations.clear()
        if pubsub is not None:
            # The connection is being thrown away either way.
            with contextlib.suppress(*_ERRORS):
                await asyncio.wait_for(pubsub.aclose(), self._op_timeout)

    async def resubscribe(self, channels: Sequence[str]) -> None:
        await self.disconnect()
        self._pubsub = self._client.pubsub()
        self._ping_sent_at = None
        self._last_ping = time.monotonic()
        # Pooled connections opened before an outage are dead; drop them rather than fail
        # the first command on each.
        with contextlib.suppress(*_ERRORS):
            await self._client.connection_pool.disconnect()
        # The confirmations are read by `next_published`, which is not running while we
        # reconnect, so here we wait for them directly.
        wanted = [CONTROL_CHANNEL, *channels]
        await self._call(self._pubsub.subscribe(*wanted))
        pending = set(wanted)
        deadline = time.monotonic() + self._op_timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BusUnavailable(f"redis: {len(pending)} subscriptions not confirmed")
            message = await self._call(self._pubsub.get_message(timeout=left))
            if message is not None and message["type"] == "subscribe":
                pending.discard(_text(message["channel"]))

    async def subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            raise BusUnavailable("redis: not connected")
        future = self._confirmations.get(channel)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = future
            try:
                await self._call(self._pubsub.subscribe(channel))
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
        if self._pubsub is not None:
            await self._call(self._pubsub.unsubscribe(channel))

    async def publish(self, channel: str, data: bytes) -> None:
        await self._call(self._client.publish(channel, data))

    async def next_published(self) -> Message:
        pubsub = self._pubsub
        if pubsub is None:
            raise BusUnavailable("redis: not connected")
        while True:
            now = time.monotonic()
            if self._ping_sent_at is not None:
                if now - self._ping_sent_at > 2 * self._ping_interval:
                    raise BusUnavailable("redis: subscriber connection stopped answering PING")
            elif now - self._last_ping >= self._ping_interval:
                self._ping_sent_at = self._last_ping = now
                await self._call(pubsub.ping())
            try:
                message = await pubsub.get_message(timeout=min(1.0, self._ping_interval))
            except _ERRORS as exc:
                raise BusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                return Message(_text(message["channel"]), message["data"])
            if kind == "pong":
                self._ping_sent_at = None
            elif kind == "subscribe":
                future = self._confirmations.get(_text(message["channel"]))
                if future is not None and not future.done():
                    future.set_result(None)

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
        if queue is not None:
            keys.append(queue_members_key(queue))
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
        ]
        result: bytes = await self._call(self._commit(keys=keys, args=args))
        return result

    async def raise_floor(self, contact: str, floor: int) -> int:
        keys = [contact_seq_key(contact), contact_state_key(contact)]
        args: list[int | str] = [floor, contact_channel(contact), 86_400_000]
        result: int = await self._call(self._raise_floor(keys=keys, args=args))
        return int(result)

    async def read_states(self, contacts: Sequence[str]) -> list[bytes | None]:
        if not contacts:
            return []
        keys = [contact_state_key(contact) for contact in contacts]
        result: list[bytes | None] = await self._call(self._client.mget(keys))
        return result

    async def queue_members(self, queue: str) -> list[str]:
        members = await self._call(self._client.smembers(queue_members_key(queue)))
        return sorted(_text(member) for member in members)

    async def ping(self) -> None:
        await self._call(self._client.ping())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
