"""Replies on a Redis subscriber connection, read in bulk.

redis-py's `PubSub.get_message` takes one reply per call through several layers (a retry
wrapper, a timeout context, a health check, a dict per message): ~25 us of CPU per message,
against ~4 us for one socket read parsed whole with hiredis (docs/benchmarks.md). The bus reads
every message of the process, so `PushReader` takes over the reading of a subscriber
connection that redis-py opened (connect, TLS, AUTH, SELECT stay redis-py's) and whose
commands (SUBSCRIBE, UNSUBSCRIBE, PING) redis-py still sends; redis-py must then never read
from that connection itself, which it does not once it only sends.

A read that times out or is cancelled loses nothing: bytes are only ever taken from the stream
by a read that returns, and hiredis keeps an incomplete reply until the rest arrives.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis

# One read takes what the kernel has, up to this much; every complete reply in it is kept.
_READ_SIZE = 1 << 16


class PushReader:
    """The replies of one subscriber connection, in order.

    Args:
        stream: the connection's `asyncio.StreamReader` (redis-py's `Connection._reader`).
    """

    __slots__ = ("_parser", "_replies", "_stream")

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._parser = hiredis.Reader()
        self._replies: deque[Any] = deque()

    @classmethod
    def of(cls, connection: Any) -> PushReader:
        """The reader of a connected redis-py `Connection`.

        Raises:
            ConnectionError: the connection is not connected.
        """
        stream = getattr(connection, "_reader", None)
        if not isinstance(stream, asyncio.StreamReader):
            raise ConnectionError("the subscriber connection is not connected")
        return cls(stream)

    async def next(self, wait: float | None) -> Any:
        """The next reply, waiting up to `wait` seconds (None: for ever) for one; None if
        none came.

        Raises:
            ConnectionError: the connection closed, or Redis answered with an error.
            hiredis.ProtocolError: the bytes are not RESP.
        """
        if not self._replies:
            if wait is not None and wait <= 0:
                return None
            try:
                async with asyncio.timeout(wait):
                    while not self._replies:
                        self._fill(await self._stream.read(_READ_SIZE))
            except TimeoutError:
                return None
        reply = self._replies.popleft()
        if isinstance(reply, hiredis.ReplyError):
            raise ConnectionError(f"redis answered an error: {reply}")
        return reply

    def _fill(self, data: bytes) -> None:
        if not data:
            raise ConnectionError("the subscriber connection closed")
        self._parser.feed(data)
        while (reply := self._parser.gets()) is not False:
            self._replies.append(reply)
