"""How a Redis command fails for queuecast: one rule for the bus, the coordinator and the log.

Every command runs under a timeout, and whatever goes wrong on the way (a Redis error, a lost
or refused socket, the timeout, a reply hiredis cannot parse) becomes `BusUnavailable`, the one
error callers retry on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.exceptions import RedisError

from server.bus.base import BusUnavailable

REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError, hiredis.ProtocolError)


async def redis_call(command: Any, seconds: float) -> Any:
    """Await `command` (a redis-py coroutine, typed loosely by redis-py) for at most `seconds`.

    Raises:
        BusUnavailable: it failed or timed out.
    """
    try:
        # Not wait_for: Python 3.11's loses a cancellation that arrives as the call ends.
        async with asyncio.timeout(seconds):
            return await command
    except REDIS_ERRORS as exc:
        raise BusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc


def text(value: bytes | str) -> str:
    """A reply's bytes as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value
