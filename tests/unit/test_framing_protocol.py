"""`FramingProtocol.write_frame` writes only on an open, writable, uncompressed socket, and
`frame_sink` lends the transport's write until any of that stops being true."""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.server import ServerState
from websockets.protocol import State

from server.wsframes import FramingProtocol, text_frame


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

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
    sink(b"frame")
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
