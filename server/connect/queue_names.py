"""Where learnt queue names are kept for other replicas: nowhere (one process), or in Redis.

Queue names change rarely and ListQueues has a small quota of its own, shared by the whole
AWS account: with several replicas one of them lists an instance's queues per period and
writes the names into a Redis hash, and the others read that hash instead of listing too.
Names one replica learns from DescribeQueue go into the same hash.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from server.bus._redis_errors import redis_call, text
from server.bus.keys import queue_listing_key, queue_names_key
from server.bus.redis import RedisClient


class QueueNameStore(abc.ABC):
    """Queue names shared between replicas."""

    @abc.abstractmethod
    async def claim_listing(self, instance: str, period: float) -> bool:
        """Whether this replica is the one to list `instance`'s queues now; at most one
        replica is, per `period` seconds.

        Raises:
            BusUnavailable: the store cannot be reached.
        """

    @abc.abstractmethod
    async def release_listing(self, instance: str) -> None:
        """The listing failed: let any replica claim it again at once."""

    @abc.abstractmethod
    async def save(self, instance: str, names: Mapping[str, str], *, complete: bool) -> None:
        """Keep `names` (queue id -> name); `complete`: they are all of the instance's queues
        (a listing), so names not among them are dropped."""

    @abc.abstractmethod
    async def load(self, instance: str, queues: Sequence[str] | None = None) -> dict[str, str]:
        """The names kept for `queues` (or all of the instance's); missing ones are left out."""


class LocalNameStore(QueueNameStore):
    """One process: it lists by itself, and its directory's own cache is the only copy."""

    async def claim_listing(self, instance: str, period: float) -> bool:
        return True

    async def release_listing(self, instance: str) -> None:
        return None

    async def save(self, instance: str, names: Mapping[str, str], *, complete: bool) -> None:
        return None

    async def load(self, instance: str, queues: Sequence[str] | None = None) -> dict[str, str]:
        return {}


class RedisNameStore(QueueNameStore):
    """A hash per instance, and a claim key that makes one replica list per period.

    Args:
        client: the injected `redis.asyncio` client (single node or cluster: every command
            touches one key).
        replica_id: written into the claim, for whoever looks.
        keep: seconds the names are kept after they were last written.
        op_timeout: seconds any Redis round trip may take.
    """

    def __init__(
        self, client: RedisClient, replica_id: str, *, keep: float, op_timeout: float = 3.0
    ) -> None:
        self._client = client
        self._replica_id = replica_id
        self._keep_ms = max(1, int(keep * 1000))
        self._op_timeout = op_timeout

    async def _call(self, command: Any) -> Any:
        return await redis_call(command, self._op_timeout)

    async def claim_listing(self, instance: str, period: float) -> bool:
        period_ms = max(1, int(period * 1000))
        claimed = await self._call(
            self._client.set(queue_listing_key(instance), self._replica_id, nx=True, px=period_ms)
        )
        return bool(claimed)

    async def release_listing(self, instance: str) -> None:
        await self._call(self._client.delete(queue_listing_key(instance)))

    async def save(self, instance: str, names: Mapping[str, str], *, complete: bool) -> None:
        key = queue_names_key(instance)
        # One key per transaction: a reader never sees a listing half replaced.
        pipe = self._client.pipeline(transaction=True)
        if complete:
            pipe.delete(key)
        if names:
            pipe.hset(key, mapping={queue: name for queue, name in names.items()})
            pipe.pexpire(key, self._keep_ms)
        await self._call(pipe.execute())

    async def load(self, instance: str, queues: Sequence[str] | None = None) -> dict[str, str]:
        key = queue_names_key(instance)
        if queues is None:
            raw: dict[Any, Any] = await self._call(self._client.hgetall(key))
            return {text(k): text(v) for k, v in raw.items()}
        if not queues:
            return {}
        values = await self._call(self._client.hmget(key, list(queues)))
        return {q: text(v) for q, v in zip(queues, values, strict=True) if v is not None}
