"""A Redis subscriber connection, and its replies read in bulk.

redis-py's `PubSub.get_message` takes one reply per call through several layers (a retry
wrapper, a timeout context, a health check, a dict per message): ~25 us of CPU per message,
against ~4 us for one socket read parsed whole with hiredis (docs/benchmarks.md). The bus reads
every message of the process, so `PushReader` takes over the reading of a subscriber
connection that redis-py opened (connect, TLS, AUTH, SELECT stay redis-py's) and whose
commands (SUBSCRIBE, UNSUBSCRIBE, PING) redis-py still sends; redis-py must then never read
from that connection itself, which it does not once it only sends.

A read that times out or is cancelled loses nothing: bytes are only ever taken from the stream
by a read that returns, and hiredis keeps an incomplete reply until the rest arrives. Where
redis-py keeps no such stream (server/_internals.py), `ConnectionReplies` lets redis-py read
each reply, slower.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import hiredis

from server._internals import fast_paths
from server.bus.base import BusUnavailable

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


class ConnectionReplies:
    """The public, slower path to the same replies: redis-py reads and parses each one
    (`Connection.read_response`, the read under `PubSub.get_message`). Taken when redis-py
    keeps no `_reader` stream (server/_internals.py).
    """

    __slots__ = ("_connection",)

    # A wait of None (for ever) is served as reads of this long, until a reply comes.
    _FOREVER_STEP = 60.0

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def next(self, wait: float | None) -> Any:
        """As `PushReader.next`: the next reply, or None if none came within `wait`.

        Raises:
            ConnectionError: the connection closed.
            redis.exceptions.RedisError: Redis answered with an error, or the bytes are not
                RESP.
        """
        while True:
            step = self._FOREVER_STEP if wait is None else max(0.0, wait)
            # disconnect_on_error=False: a read cancelled or timed out leaves the connection
            # to its owner, as PubSub does; a timeout we asked for answers None.
            reply = await self._connection.read_response(
                disable_decoding=True, timeout=step, disconnect_on_error=False, push_request=True
            )
            if reply is not None or wait is not None:
                return reply


def reply_reader(connection: Any) -> PushReader | ConnectionReplies:
    """How this process reads a connected subscriber connection: in bulk, or redis-py's way.

    Raises:
        ConnectionError: the connection is not connected.
    """
    if fast_paths().bulk_redis_reader:
        return PushReader.of(connection)
    if not connection.is_connected:
        raise ConnectionError("the subscriber connection is not connected")
    return ConnectionReplies(connection)


@dataclass(slots=True, eq=False)
class SubscriberConnection:
    """One subscriber connection: the only one on a single node, one per primary on a cluster.

    redis-py opens it (TLS, AUTH, SELECT) and sends its commands; `PushReader` reads every
    reply on it. No `PubSub` object: it would read replies itself, and keep every channel
    ever subscribed in its bookkeeping, which only its own reading prunes.
    """

    pool: Any  # the connection pool it is taken from and given back to
    control: str
    owns_pool: bool = False  # a cluster primary's pool of one, ours to close
    connection: Any = None
    reader: PushReader | ConnectionReplies | None = None
    ping_sent_at: float | None = None
    last_ping: float = 0.0
    reading: asyncio.Task[Any] | None = None  # a read in flight (cluster only)

    async def open(self) -> None:
        self.connection = await self.pool.get_connection()
        # The bus's own PING watchdog replaces redis-py's health check, which would read a
        # reply on this connection behind the reader's back.
        self.connection.health_check_interval = 0
        self.reader = reply_reader(self.connection)

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
