"""A lean WebSocket client for load generation: thousands of sockets in one asyncio process.

The `websockets` library costs tens of microseconds per received frame, which at 50,000 frames/s
would make the load generator, not the server, the bottleneck. This client is an
`asyncio.Protocol` with a hand-written frame parser for what a server sends (unmasked, small
text frames, pings, close); it answers pings with pongs, and masks what it sends with an
all-zero key (legal per RFC 6455, and it spares a per-byte XOR in Python).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable

MessageHandler = Callable[["LoadClient", bytes, float], None]


def _client_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class LoadClient(asyncio.Protocol):
    """One WebSocket client socket; `on_message(client, payload, received_at)` per text frame,
    and `on_ping(received_at)` per ping from the server, if given."""

    def __init__(
        self,
        host: str,
        path: str,
        on_message: MessageHandler,
        tag: int,
        on_ping: Callable[[float], None] | None = None,
    ) -> None:
        self.tag = tag  # the caller's index for this socket
        self._host = host
        self._path = path
        self._on_message = on_message
        self._on_ping = on_ping
        self._buf = b""
        self._open = False
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.pings = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf + data if self._buf else data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._open = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        i, n = 0, len(buf)
        on_message = self._on_message
        while n - i >= 2:
            b0, length = buf[i], buf[i + 1] & 0x7F
            start = i + 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                start = i + 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                start = i + 10
            end = start + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode == 1:
                on_message(self, buf[start:end], now)
            elif opcode == 9:
                self.pings += 1
                if self._on_ping is not None:
                    self._on_ping(now)
                self._write(_client_frame(0xA, buf[start:end]))
            elif opcode == 8:
                if length >= 2:
                    self.close_code = int.from_bytes(buf[start : start + 2], "big")
                self._write(_client_frame(0x8, buf[start : start + 2]))
                assert self.transport is not None
                self.transport.close()
            i = end
        self._buf = buf[i:] if i < n else b""

    # -- sending ---------------------------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def send_text(self, text: str) -> None:
        self._write(_client_frame(0x1, text.encode()))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(_client_frame(0x8, (1000).to_bytes(2, "big")))
            self.transport.close()


async def open_clients(
    host: str,
    port: int,
    count: int,
    on_message: MessageHandler,
    *,
    path: str = "/ws",
    concurrency: int = 200,
    handshake_timeout: float = 30.0,
    on_ping: Callable[[float], None] | None = None,
) -> list[LoadClient]:
    """Open `count` sockets, at most `concurrency` handshakes at a time."""
    loop = asyncio.get_running_loop()
    clients: list[LoadClient] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(tag: int) -> LoadClient:
        async with gate:
            _, client = await loop.create_connection(
                lambda: LoadClient(f"{host}:{port}", path, on_message, tag, on_ping), host, port
            )
            await asyncio.wait_for(client.opened, handshake_timeout)
            return client

    async with asyncio.timeout(handshake_timeout * 4):
        clients = await asyncio.gather(*(one(tag) for tag in range(count)))
    return clients
