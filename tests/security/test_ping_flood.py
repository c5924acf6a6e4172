"""A client that sends WebSocket pings and never reads is cut off, and the server's memory
stays bounded (issue 14, item 7). Before: +310 MB of RSS in 14 s, the socket closed by neither
the auth timeout nor the keep-alive timeout, pongs piling up in the write buffer.

The client is raw: a hand-made handshake on a TCP socket whose receive buffer is small, then
masked ping frames as fast as the kernel takes them, and not one byte read.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time

import pytest

from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

FLOOD_SECONDS = 8.0
PAYLOAD = b"p" * 125  # the largest control frame payload


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def ping_frame() -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(PAYLOAD))
    return struct.pack("!BB", 0x89, 0x80 | len(PAYLOAD)) + mask + masked


def open_raw_websocket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    sock.setblocking(False)
    return sock


async def flood(sock: socket.socket, seconds: float) -> tuple[int, bool]:
    """Send pings for `seconds` without reading; (frames sent, whether the server hung up)."""
    loop = asyncio.get_running_loop()
    frame = ping_frame() * 64
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(loop.sock_sendall(sock, frame), 1.0)
        except TimeoutError:
            continue  # the server stopped reading: its choice, keep trying
        except OSError:
            return sent, True
        sent += 64
    return sent, False


async def test_a_ping_flood_is_cut_off_and_memory_stays_bounded(emulator):
    flags = ("--auth-timeout", "2", "--max-messages-per-second", "10")
    async with start_service_process(emulator, None, *flags) as service:
        pid = service.proc.pid
        before = rss_mb(pid)
        sock = open_raw_websocket(service.url)
        try:
            sent, cut_off = await flood(sock, FLOOD_SECONDS)
            grown = rss_mb(pid) - before
        finally:
            sock.close()
        print(f"cut off after {sent} pings; RSS +{grown:.1f} MB")
        assert cut_off, f"still connected after {sent} pings; RSS +{grown:.1f} MB"
        assert grown < 30, f"RSS grew {grown:.1f} MB"
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="control_frames"}' in metrics or (
            'queuecast_limit_hits_total{limit="write_buffer"}' in metrics
        )
        # The service is fine afterwards, and a client pinging within the rate is answered.
        assert (await service.http.get("/healthz")).status_code == 200
        async with ws_client(service.ws_url) as ws:
            for _ in range(10):
                pong = await ws.conn.ping()
                await asyncio.wait_for(pong, 5)
                await asyncio.sleep(0.15)
            await ws.send({"op": "ping"})
            assert (await ws.next())["type"] == "pong"
