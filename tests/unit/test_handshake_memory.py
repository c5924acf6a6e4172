"""What a socket keeps after its handshake: the HTTP protocol it was upgraded from is released
at once, and the WebSocket protocol keeps neither the request nor the response nor the
scope's headers, and no instance dict (docs/benchmarks.md, RSS per idle socket)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from server.browser.ws_protocol import FramingProtocol
from server.http.header_timeout import with_handshake_timeout

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Origin: http://example\r\n\r\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.protocol: Any = None
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class AcceptingApp:
    """Accepts after reading the headers, then waits for the disconnect."""

    def __init__(self) -> None:
        self.accepted = asyncio.Event()
        self.headers_before_accept: list[tuple[bytes, bytes]] = []
        self.scope: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        assert (await receive())["type"] == "websocket.connect"
        self.headers_before_accept = list(scope["headers"])
        await send({"type": "websocket.accept"})
        self.accepted.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass


def upgrade(app: AcceptingApp) -> tuple[Any, FakeTransport]:
    """An HTTP connection through `HandshakeTimeoutProtocol` that upgrades to `/ws`."""
    config = uvicorn.Config(app, ws=FramingProtocol, ws_per_message_deflate=False)
    config.load()
    http = with_handshake_timeout(10.0)(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    transport.protocol = http
    http.connection_made(transport)  # type: ignore[arg-type]
    http.data_received(UPGRADE)
    return http, transport


async def test_the_http_protocol_is_released_at_the_upgrade() -> None:
    app = AcceptingApp()
    http, transport = upgrade(app)
    assert isinstance(transport.protocol, FramingProtocol)
    released = weakref.ref(http)
    del http
    gc.collect()
    # Its handshake timer (10 s) would have kept it, and its h11 state, alive until then.
    assert released() is None
    await asyncio.wait_for(app.accepted.wait(), 5)
    transport.protocol.connection_lost(None)


async def test_after_the_accept_the_handshake_is_dropped() -> None:
    app = AcceptingApp()
    _, transport = upgrade(app)
    await asyncio.wait_for(app.accepted.wait(), 5)
    protocol: FramingProtocol = transport.protocol
    assert (b"origin", b"http://example") in app.headers_before_accept
    assert b"101 Switching Protocols" in b"".join(transport.written)
    assert app.scope["headers"] == []
    assert not hasattr(protocol, "request")
    assert not hasattr(protocol, "response")
    # Every attribute uvicorn sets has a slot: no instance dict per socket.
    assert vars(protocol) == {}
    protocol.connection_lost(None)
    await asyncio.sleep(0)
