"""Which replica reads the queues' figures, and which queues anyone wants read.

GetCurrentMetricData answers up to 100 queues per call, so the fewest calls are made when one
poller reads every wanted queue in full batches. With Redis, replicas therefore elect one
leader (a lease, `SET NX PX`, renewed by its holder at every round) rather than splitting the
queues with a lease per queue, which would split the batches too: three replicas watching the
same 60 queues would make three calls a round instead of one. Every replica adds the queues
it wants (its sockets' queue subscriptions, its queue book's lines) to one shared sorted set,
each entry scored by when it lapses on Redis' clock; the leader reads the set.

A dead leader's lease lapses after one TTL and another replica takes over at its next round;
a leader that stops cleanly gives the lease up at once. As with contact leases, the lease is
not fenced: a leader paused longer than a TTL may make one read more (docs/architecture.md).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from server.bus._redis_errors import redis_call, text
from server.bus.keys import FIGURES_LEADER_KEY, FIGURES_WANTED_KEY
from server.bus.redis import RedisClient
from server.connect.coordination import RELEASE_LEASE, RENEW_LEASE

# Add (or renew) entries that lapse ARGV[1] ms from now on Redis' clock; drop lapsed ones.
_WANT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

_WANTED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class FiguresLead(abc.ABC):
    """Leadership of the figures poller, and the queues every replica wants read."""

    @abc.abstractmethod
    async def want(self, queues: Mapping[str, str]) -> None:
        """This replica wants these queues read (queue id -> instance), for one more TTL.

        Raises:
            BusUnavailable: the shared store cannot be reached.
        """

    @abc.abstractmethod
    async def lead(self) -> bool:
        """Take or keep the leadership; returns whether this replica leads now."""

    @abc.abstractmethod
    async def wanted(self) -> dict[str, str]:
        """Every queue some replica wants read (queue id -> instance)."""

    async def resign(self) -> None:
        """Give the leadership up (on shutdown). Idempotent."""
        return None


class LocalFiguresLead(FiguresLead):
    """One process: it leads, and what it wants is all that is wanted."""

    def __init__(self) -> None:
        self._wanted: dict[str, str] = {}

    async def want(self, queues: Mapping[str, str]) -> None:
        self._wanted = dict(queues)

    async def lead(self) -> bool:
        return True

    async def wanted(self) -> dict[str, str]:
        return dict(self._wanted)


class RedisFiguresLead(FiguresLead):
    """The leader lease and the wanted set in Redis (see the module docstring).

    Args:
        client: the injected `redis.asyncio` client (every script touches one key).
        replica_id: this replica's name, held in the lease.
        ttl: seconds the lease and a wanted entry live unless renewed.
        op_timeout: seconds any Redis round trip may take.
    """

    def __init__(
        self, client: RedisClient, replica_id: str, *, ttl: float, op_timeout: float = 3.0
    ) -> None:
        self._client = client
        self.replica_id = replica_id
        self._ttl_ms = max(1, int(ttl * 1000))
        self._op_timeout = op_timeout
        self._lead_script = client.register_script(RENEW_LEASE)
        self._resign_script = client.register_script(RELEASE_LEASE)
        self._want_script = client.register_script(_WANT)
        self._wanted_script = client.register_script(_WANTED)

    async def _call(self, command: Any) -> Any:
        return await redis_call(command, self._op_timeout)

    async def want(self, queues: Mapping[str, str]) -> None:
        if not queues:
            return
        entries = [f"{queue} {instance}" for queue, instance in sorted(queues.items())]
        await self._call(
            self._want_script(keys=[FIGURES_WANTED_KEY], args=[self._ttl_ms, *entries])
        )

    async def lead(self) -> bool:
        held = await self._call(
            self._lead_script(keys=[FIGURES_LEADER_KEY], args=[self.replica_id, self._ttl_ms])
        )
        return bool(held)

    async def wanted(self) -> dict[str, str]:
        raw = await self._call(self._wanted_script(keys=[FIGURES_WANTED_KEY], args=[]))
        out: dict[str, str] = {}
        for entry in raw:
            queue, _, instance = text(entry).partition(" ")
            if queue and instance:
                out.setdefault(queue, instance)
        return out

    async def resign(self) -> None:
        await self._call(self._resign_script(keys=[FIGURES_LEADER_KEY], args=[self.replica_id]))
