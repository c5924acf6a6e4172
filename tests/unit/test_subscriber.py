"""`PushReader`: every reply of a subscriber connection, in order, whatever the reads cut.

Fed through a real `asyncio.StreamReader` as a connection would feed it; no Redis needed.
"""

from __future__ import annotations

import asyncio

import hiredis
import pytest

from server.bus.subscriber import PushReader


def message(channel: bytes, data: bytes) -> bytes:
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(channel),
        channel,
        len(data),
        data,
    )


async def test_every_reply_of_one_read_comes_in_order() -> None:
    stream = asyncio.StreamReader()
    reader = PushReader(stream)
    stream.feed_data(b"".join(message(b"ch", b"%d" % n) for n in range(5)))
    got = [await reader.next(1.0) for _ in range(5)]
    assert got == [[b"message", b"ch", b"%d" % n] for n in range(5)]


async def test_a_reply_cut_across_reads_comes_whole() -> None:
    stream = asyncio.StreamReader()
    reader = PushReader(stream)
    whole = message(b"ch", b'{"seq":1}') + b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    for i in range(0, len(whole), 3):
        stream.feed_data(whole[i : i + 3])
    assert await reader.next(1.0) == [b"message", b"ch", b'{"seq":1}']
    assert await reader.next(1.0) == [b"pong", b""]


async def test_a_wait_that_ends_loses_nothing() -> None:
    """A timeout (or a cancelled read) mid-reply: the next call still gets the reply whole."""
    stream = asyncio.StreamReader()
    reader = PushReader(stream)
    whole = message(b"ch", b"x" * 100)
    stream.feed_data(whole[:20])
    assert await reader.next(0.01) is None
    assert await reader.next(0) is None
    read = asyncio.create_task(reader.next(None))
    await asyncio.sleep(0.01)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    stream.feed_data(whole[20:])
    assert await reader.next(1.0) == [b"message", b"ch", b"x" * 100]


async def test_a_closed_connection_an_error_reply_and_garbage_raise() -> None:
    stream = asyncio.StreamReader()
    stream.feed_eof()
    with pytest.raises(ConnectionError, match="closed"):
        await PushReader(stream).next(1.0)

    stream = asyncio.StreamReader()
    stream.feed_data(b"-NOAUTH Authentication required.\r\n")
    with pytest.raises(ConnectionError, match="NOAUTH"):
        await PushReader(stream).next(1.0)

    stream = asyncio.StreamReader()
    stream.feed_data(b"?not resp\r\n")
    with pytest.raises(hiredis.ProtocolError):
        await PushReader(stream).next(1.0)


async def test_a_connection_that_is_not_open_has_no_reader() -> None:
    class Unconnected:
        _reader = None

    with pytest.raises(ConnectionError, match="not connected"):
        PushReader.of(Unconnected())
