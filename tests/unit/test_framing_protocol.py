"""`FramingProtocol.write_frame` writes only on an open, writable, uncompressed socket, and
`frame_sink` lends the socket's own `send` while that holds and the transport buffers nothing.

The last tests run on real loopback connections: the sink must be the socket's `send` there,
and a frame it takes only part of must reach the peer whole, before anything written after.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from uvicorn.server import ServerState
from websockets.protocol import State

from server.browser.ws_protocol import FramingProtocol, text_frame


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


async def app(scope: Any, receive: Any, send: Any) -> None:
    return None


def open_protocol() -> tuple[FramingProtocol, FakeTransport]:
    config = uvicorn.Config(app, ws=FramingProtocol, ws_per_message_deflate=False)
    config.load()
    protocol = FramingProtocol(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.transport = transport  # type: ignore[assignment]
    protocol.conn.state = State.OPEN
    return protocol, transport


async def test_writes_the_shared_frame_as_is() -> None:
    protocol, transport = open_protocol()
    frame = text_frame('{"type":"update"}')
    assert protocol.write_frame(frame)
    assert transport.written == [frame]


async def test_refuses_when_it_would_have_to_wait_or_is_closing() -> None:
    frame = text_frame("x")
    protocol, transport = open_protocol()
    protocol.writable.clear()
    assert not protocol.write_frame(frame)
    protocol, transport = open_protocol()
    protocol.close_sent = True
    assert not protocol.write_frame(frame)
    protocol, transport = open_protocol()
    protocol.conn.state = State.CLOSING
    assert not protocol.write_frame(frame)
    protocol, transport = open_protocol()
    transport.closing = True
    assert not protocol.write_frame(frame)
    protocol, transport = open_protocol()
    protocol.conn.extensions = [object()]  # type: ignore[list-item]
    assert not protocol.write_frame(frame)
    protocol, transport = open_protocol()
    protocol.queue.put_nowait({"type": "websocket.receive", "text": '{"op":"ping"}'})
    assert not protocol.write_frame(frame)
    assert transport.written == []


async def test_frame_sink_lends_the_transport_write_only_while_frames_are_taken() -> None:
    protocol, transport = open_protocol()
    sink = protocol.frame_sink(lambda: None)
    assert sink is not None
    assert sink.send(b"frame") == 5, "another transport: written through transport.write"
    assert transport.written == [b"frame"]
    protocol, transport = open_protocol()
    protocol.writable.clear()
    assert protocol.frame_sink(lambda: None) is None


async def test_a_full_buffer_ends_the_sink_once() -> None:
    protocol, _transport = open_protocol()
    calls: list[str] = []
    assert protocol.frame_sink(lambda: calls.append("blocked")) is not None
    protocol.pause_writing()
    protocol.pause_writing()
    assert calls == ["blocked"]
    protocol.resume_writing()
    assert protocol.frame_sink(lambda: calls.append("again")) is not None


async def test_a_lost_connection_ends_the_sink() -> None:
    protocol, _transport = open_protocol()
    protocol.connections.add(protocol)
    calls: list[str] = []
    assert protocol.frame_sink(lambda: calls.append("blocked")) is not None
    protocol.connection_lost(None)
    assert calls == ["blocked"]


async def test_only_the_latest_sink_is_told() -> None:
    protocol, _transport = open_protocol()
    calls: list[str] = []
    assert protocol.frame_sink(lambda: calls.append("first")) is not None
    assert protocol.frame_sink(lambda: calls.append("second")) is not None
    protocol.pause_writing()
    assert calls == ["second"]


async def test_a_ping_left_in_the_buffer_ends_the_sink() -> None:
    """A frame sent straight to the socket would overtake what the transport holds."""
    protocol, transport = open_protocol()
    calls: list[str] = []
    assert protocol.frame_sink(lambda: calls.append("blocked")) is not None
    buffered = 0
    transport.get_write_buffer_size = lambda: buffered  # type: ignore[method-assign]
    protocol.send_keepalive_ping()
    assert calls == [], "the ping went out whole"
    buffered = 7
    protocol.pause_writing = lambda: None  # type: ignore[method-assign]
    assert protocol.frame_sink(lambda: calls.append("blocked")) is None
    buffered = 0
    assert protocol.frame_sink(lambda: calls.append("blocked")) is not None
    protocol.send_keepalive_ping()
    assert calls == []
    buffered = 7
    protocol.send_keepalive_ping()
    assert calls == ["blocked"]
    if protocol.pong_timer is not None:
        protocol.pong_timer.cancel()


@contextlib.asynccontextmanager
async def loopback() -> AsyncIterator[tuple[FramingProtocol, socket.socket]]:
    """A `FramingProtocol` on a real accepted connection (handshake skipped), and the
    client's blocking socket; both closed on the way out."""
    config = uvicorn.Config(app, ws=FramingProtocol, ws_per_message_deflate=False)
    config.load()
    made: asyncio.Future[FramingProtocol] = asyncio.get_running_loop().create_future()

    def factory() -> FramingProtocol:
        protocol = FramingProtocol(config=config, server_state=ServerState(), app_state={})
        made.set_result(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    protocol: FramingProtocol | None = None
    try:
        protocol = await asyncio.wait_for(made, 5)
        # The factory runs before `connection_made`, which sets the transport; on Python
        # 3.12+ the two are a loop turn apart.
        async with asyncio.timeout(5):
            while getattr(protocol, "transport", None) is None:
                await asyncio.sleep(0)
        protocol.conn.state = State.OPEN
        yield protocol, client
    finally:
        client.close()
        if protocol is not None:
            protocol.transport.close()
        server.close()
        await server.wait_closed()


def read_all(client: socket.socket, size: int) -> bytes:
    client.settimeout(5)
    got = bytearray()
    while len(got) < size:
        chunk = client.recv(1 << 16)
        assert chunk, "connection closed early"
        got += chunk
    return bytes(got)


async def test_on_a_real_connection_the_sink_is_the_sockets_send() -> None:
    async with loopback() as (protocol, client):
        sink = protocol.frame_sink(lambda: None)
        assert sink is not None
        sock = protocol.transport._sock  # type: ignore[attr-defined]
        assert getattr(sink.send, "__self__", None) is sock, "no Python between bus and kernel"
        frames = [text_frame(f'{{"n":{n}}}') for n in range(3)]
        for frame in frames:
            assert sink.send(frame) == len(frame)
        assert read_all(client, sum(map(len, frames))) == b"".join(frames)


async def test_a_frame_taken_in_part_reaches_the_peer_whole_and_first() -> None:
    """Fill the socket until `send` takes part of a frame: `write_rest` buffers the rest, the
    sink ends (the buffer is not empty), and what is written afterwards comes after it."""
    async with loopback() as (protocol, client):
        calls: list[str] = []
        sink = protocol.frame_sink(lambda: calls.append("blocked"))
        assert sink is not None
        frame = text_frame("x" * 1000)
        sent_total, sent = 0, len(frame)
        while sent == len(frame):  # the client reads nothing: the kernel's buffers fill
            try:
                sent = sink.send(frame)
            except BlockingIOError:
                sent = 0
            sent_total += sent
        sink.finish(memoryview(frame)[sent:])
        assert calls == ["blocked"], "the rest is buffered: the sink is over"
        assert protocol.frame_sink(lambda: None) is None, "not lent while the buffer holds data"
        after = text_frame("after")
        assert protocol.write_frame(after)
        expected = sent_total + (len(frame) - sent) + len(after)
        received = await asyncio.to_thread(read_all, client, expected)
        whole = received[: -len(after)]
        assert len(whole) % len(frame) == 0 and whole == frame * (len(whole) // len(frame))
        assert received.endswith(after)
        await asyncio.sleep(0.05)  # the transport drains its buffer
        assert protocol.frame_sink(lambda: None) is not None, "lent again once drained"


async def test_first_pings_of_sockets_opened_together_are_spread() -> None:
    """A reconnect storm must not ping in step: first pings spread over the interval."""
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(200):
        protocol, _transport = open_protocol()
        protocol.ping_interval = 20.0
        protocol.start_keepalive()
        assert protocol.ping_timer is not None
        delays.append(protocol.ping_timer.when() - loop.time())
        protocol.stop_keepalive()
    assert all(0.0 <= d <= 20.0 for d in delays), (min(delays), max(delays))
    assert max(delays) - min(delays) > 15.0, "spread over most of the interval"
    assert len({round(d, 1) for d in delays}) > 50, "not a handful of values"
