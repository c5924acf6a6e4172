"""`FramingProtocol.write_frame`: writes only on an open, writable, uncompressed socket."""

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
