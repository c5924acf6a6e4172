"""The contact-event log on Redis: one stream, and one key per event id for idempotence.

Both share the `{cevents}` hash tag, so on a Redis Cluster they live in one slot and one Lua
script may touch them all: `SET <id key> NX PX <ttl>` then, only if it was set, `XADD ... MAXLEN
~ N`. Duplicates are refused inside the script, so two replicas taking the same retried event at
the same moment append it once. Followers read with `XREAD BLOCK` from their own cursor; stream
ids carry Redis's own clock, so a cursor taken before an outage still orders what comes after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.bus._redis_errors import redis_call
from server.bus.keys import EVENT_LOG_KEY, event_seen_key
from server.connect.contact_events import ConnectContactEvent
from server.connect.event_log import DEDUP_TTL_S, MAX_ENTRIES, ContactEventLog, LogRead
from server.connect.redis_stream import read_stream

PAYLOAD_FIELD = b"e"

# KEYS[1] the stream, KEYS[2..] one idempotence key per event; ARGV[1] the keys' TTL (ms),
# ARGV[2] the stream's approximate bound, ARGV[3..] the events, in the order of KEYS[2..].
APPEND = """
local added = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[i + 1])
    added = added + 1
  end
end
return added
"""


class RedisContactEventLog(ContactEventLog):
    """The log on an injected `redis.asyncio` client (a `Redis` or a `RedisCluster`), which
    the caller owns.

    Args:
        client: the client; a blocking read holds one of its pooled connections.
        max_entries: the stream's approximate bound (MAXLEN ~).
        dedup_ttl: seconds an event id is remembered.
        op_timeout: seconds a command may take beyond any blocking it asked for.
        wall: the clock the replay window is measured on (stream ids are Redis's epoch
            milliseconds; a replica's clock skew of seconds hardly matters to a window of an
            hour).
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        max_entries: int = MAX_ENTRIES,
        dedup_ttl: float = DEDUP_TTL_S,
        op_timeout: float = 3.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._append = client.register_script(APPEND)
        self._max_entries = max_entries
        self._dedup_ms = max(1, int(dedup_ttl * 1000))
        self._op_timeout = op_timeout
        self._wall = wall

    async def _call(self, command: Any, extra_s: float = 0.0) -> Any:
        return await redis_call(command, self._op_timeout + extra_s)

    async def append(self, events: Sequence[ConnectContactEvent]) -> int:
        if not events:
            return 0
        keys = [EVENT_LOG_KEY, *(event_seen_key(event.event_id) for event in events)]
        args: list[Any] = [self._dedup_ms, self._max_entries]
        args += [event.to_json() for event in events]
        return int(await self._call(self._append(keys=keys, args=args)))

    async def replay_cursor(self, replay_s: float) -> str:
        return f"{max(0, int((self._wall() - replay_s) * 1000))}-0"

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> LogRead:
        cursor, events = await read_stream(
            self._client,
            EVENT_LOG_KEY,
            cursor,
            field=PAYLOAD_FIELD,
            parse=ConnectContactEvent.from_json,
            block_s=block_s,
            count=count,
            op_timeout=self._op_timeout,
        )
        return LogRead(cursor, events)
