"""Shared WebSocket frames: a message is framed once and its bytes written to every socket.

Server-to-client frames are not masked (RFC 6455 5.1), so with per-message compression off the
encoded frame of a text message is the same bytes for every socket. uvicorn's sans-I/O
protocol frames the payload again for each `send`; `FramingProtocol` instead offers the
application a `FrameWriter` in the ASGI scope (`scope["extensions"][FRAME_WRITER]`) that takes
the shared bytes as they are.

Each frame is one `transport.write` (one `send()` system call while the socket's buffer is
empty). Batching a socket's frames until the loop's next turn was tried and dropped: a socket
gets one frame per fan-out, so batches held one frame and only added bookkeeping
(docs/benchmarks.md).
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from server._waitable import Flag, MessageQueue

FRAME_WRITER = "queuecast.frames"
_FIN_TEXT = 0x81


def text_frame(text: str) -> bytes:
    """The unmasked, final, uncompressed text frame carrying `text`."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((_FIN_TEXT, length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return header + payload


class FrameWriter(Protocol):
    def write_frame(self, frame: bytes) -> bool:
        """Write a complete frame from `text_frame` now, after everything written before.

        When this returns True the frame is in the transport's buffer, so nothing sent later
        the ordinary way can overtake it. Returns False, having written nothing, when the
        socket cannot take it without waiting (not open, closing, or its buffer is over the
        high-water mark) or a message from the client waits to be received: the caller then
        sends the message the ordinary way, which waits and keeps the app's order.
        """


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol plus a `FrameWriter` in the scope (pass the
    class as `uvicorn.Config(ws=...)`), with less held per idle socket: wait primitives that
    allocate only while someone waits, and the handshake request and response dropped once
    the handshake is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = MessageQueue[ASGIReceiveEvent]()  # type: ignore[assignment]
        self.writable = Flag(set_=True)  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and not self.close_sent:
            # The app's task was created but has not run: it sees the writer from the start.
            scope["extensions"][FRAME_WRITER] = self

    def write_frame(self, frame: bytes) -> bool:
        if (
            self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            # Frames shared across sockets are uncompressed; never write them on a socket
            # that negotiated an extension (compression is configured off).
            or self.conn.extensions
            or self.conn.expect_continuation_frame
            or self.transport.is_closing()
            # A client message is waiting for the app (a ping, say): what the app answers
            # goes before events that were pending when it arrived, as through the outbox.
            or not self.queue.empty()
        ):
            return False
        self.transport.write(frame)
        return True

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and "response" in self.__dict__:
            # Only the accept (or a refusal) reads these; ~2 KB of headers per socket.
            del self.response
            self.__dict__.pop("request", None)
