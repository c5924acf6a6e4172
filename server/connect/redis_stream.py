"""Reading a Redis stream as both shared logs do (contact events, book news): `XREAD BLOCK`
from a cursor, one payload field per entry, malformed entries skipped and logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.bus._redis_errors import redis_call

log = logging.getLogger("queuecast.events")

T = TypeVar("T")


async def read_stream(
    client: Redis | RedisCluster,
    key: str,
    cursor: str,
    *,
    field: bytes,
    parse: Callable[[bytes], T],
    block_s: float,
    count: int,
    op_timeout: float,
) -> tuple[str, list[T]]:
    """Up to `count` entries of `key` after `cursor`, waiting up to `block_s` for one, and the
    cursor after them (past malformed entries too, so they are not read again).

    Raises:
        BusUnavailable: Redis cannot be reached; the caller retries with the same cursor.
    """
    block_ms = max(1, int(block_s * 1000))
    reply: Any = await redis_call(
        client.xread({key: cursor}, count=count, block=block_ms), op_timeout + block_s
    )
    items: list[T] = []
    streams = reply.items() if isinstance(reply, dict) else (reply or ())  # RESP3 or 2
    for _stream, entries in streams:
        for entry_id, fields in entries:
            cursor = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            try:
                items.append(parse(fields[field]))
            except (KeyError, ValueError) as exc:
                log.warning(
                    "skipped a malformed log entry", extra={"stream": key, "error": str(exc)}
                )
    return cursor, items
