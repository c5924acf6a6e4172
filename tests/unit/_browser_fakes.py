"""Fakes for the browser side: a WebSocket client without a network (Starlette's `WebSocket`
over an in-memory ASGI channel), an in-memory `FrameWriter` (what `FramingProtocol` offers the
app in the service), and a poller that only records what sockets ask of it.

What the app sends is recorded by path: `written("frame")` (through the writer's
`write_frame`), `written("sink")` (by the fan-out, through a lent sink's `send`) and `texts()`
(the ordinary `send_text` of the send loop).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from server.browser.ws_protocol import FRAME_WRITER, text_frame
from server.events import ContactEvent

C = "11111111-1111-4111-8111-{:012d}"  # contact ids (UUIDs, as the protocol wants)
INSTANCE = "22222222-2222-4222-8222-222222222222"


def contact_id(n: int) -> str:
    return C.format(n)


class RecordingPoller:
    """The poller, as far as sessions go (`Watchers`): the contacts watched now."""

    def __init__(self) -> None:
        self.watching: set[str] = set()
        self.unwatched: list[str] = []

    def watch(self, instance: str, contact: str, stored: ContactEvent | None) -> bool:
        self.watching.add(contact)
        return True

    def unwatch(self, contact: str) -> None:
        self.watching.discard(contact)
        self.unwatched.append(contact)

    def tracked_explicitly(self, contact: str) -> bool:
        return False


class FakeSink:
    """A lent sink: `send` takes `takes` bytes at most (None: whole frames)."""

    def __init__(self, writer: FakeFrameWriter) -> None:
        self._writer = writer
        self.send = self._send
        self.rests: list[bytes] = []

    def _send(self, data: bytes) -> int:
        takes = self._writer.sink_takes
        taken = data if takes is None else data[:takes]
        self._writer.log.append(("sink", bytes(taken)))
        return len(taken)

    def finish(self, rest: memoryview) -> None:
        # As the protocol: the rest waits in the transport's buffer, so no sink is valid.
        self._writer.log.append(("rest", bytes(rest)))
        self._writer.buffered = True
        self._writer.block()


class FakeFrameWriter:
    """`FrameWriter` in memory, with the protocol's two conditions: `takes` (open and below the
    high-water mark: `write_frame` accepts a frame) and `buffered` (the transport holds bytes:
    no sink may be lent, its `send` would overtake them)."""

    def __init__(self) -> None:
        self.takes = True
        self.buffered = False
        self.sink_takes: int | None = None  # bytes a lent sink's `send` takes (None: all)
        self.log: list[tuple[str, bytes]] = []  # ("frame" | "sink" | "rest", bytes)
        self.blocked: Callable[[], None] | None = None

    def write_frame(self, frame: bytes) -> bool:
        if not self.takes:
            return False
        self.log.append(("frame", frame))
        return True

    def frame_sink(self, blocked: Callable[[], None]) -> FakeSink | None:
        if not self.takes or self.buffered:
            return None
        self.blocked = blocked
        return FakeSink(self)

    def block(self) -> None:
        """What the protocol does when the socket stops taking frames directly."""
        blocked, self.blocked = self.blocked, None
        if blocked is not None:
            blocked()


def _payload(frame: bytes) -> str:
    """The text of a whole server frame (checked to be exactly `text_frame` of it)."""
    length = frame[1] & 0x7F
    text = frame[2 if length < 126 else 4 if length == 126 else 10 :].decode()
    assert frame == text_frame(text)
    return text


class FakeClient:
    """One client socket: the ASGI scope, `receive` and `send` of a WebSocket connection."""

    def __init__(
        self,
        *,
        writer: bool = True,
        headers: dict[str, str] | None = None,
        address: str = "127.0.0.1",
        subprotocols: tuple[str, ...] = (),
    ) -> None:
        self.writer = FakeFrameWriter() if writer else None
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "path": "/ws",
            "scheme": "ws",
            "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": (address, 50000),
            "subprotocols": list(subprotocols),
            "extensions": {} if self.writer is None else {FRAME_WRITER: self.writer},
        }
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._inbox.put_nowait({"type": "websocket.connect"})
        self.sent: list[Message] = []  # every ASGI message the app sent
        self._got = asyncio.Event()

    @property
    def websocket(self) -> WebSocket:
        return WebSocket(self.scope, self._receive, self._send)

    async def accepted(self) -> WebSocket:
        """The app's `WebSocket`, past the handshake (as the gateway hands it to a session)."""
        websocket = self.websocket
        await websocket.accept()
        return websocket

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        self.sent.append(message)
        self._got.set()

    # -- the client's side -----------------------------------------------------------------

    def send(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._inbox.put_nowait({"type": "websocket.receive", "text": text})

    def disconnect(self, code: int = 1000) -> None:
        self._inbox.put_nowait({"type": "websocket.disconnect", "code": code})

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]

    def written(self, kind: str) -> list[dict[str, Any]]:
        assert self.writer is not None
        return [json.loads(_payload(d)) for k, d in self.writer.log if k == kind]

    def closed(self) -> Message | None:
        return next((m for m in self.sent if m["type"] == "websocket.close"), None)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.001)
