"""Origin, frame size, message flood, sockets per address, handshake deadline: each limit
refuses or closes as documented, a client within it is served, and /metrics counts it."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.security.conftest import expect_close
from tests.support.service import mint_test_token, start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

UNKNOWN_CONTACT = "00000000-0000-4000-8000-000000000000"


async def test_origin_allowlist(emulator):
    async with start_service_process(
        emulator, None, "--allowed-origins", "https://shop.example"
    ) as service:
        for origin in ("https://evil.example", "null", "http://shop.example"):
            with pytest.raises(InvalidStatus) as refused:
                async with ws_client(service.ws_url, origin=origin):
                    pass
            assert refused.value.response.status_code == 403, origin
        own = service.url  # the service's own pages
        for origin in ("https://shop.example", own, None):
            async with ws_client(service.ws_url, origin=origin) as ws:
                await ws.send({"op": "ping"})
                assert (await ws.next())["type"] == "pong"
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="origin"} 3.0' in metrics


async def test_oversized_frame_closes_1009(emulator):
    async with start_service_process(emulator, None, "--max-frame-bytes", "1024") as service:
        async with ws_client(service.ws_url) as ws:
            await ws.send("x" * 1000)
            assert (await ws.next())["code"] == "bad_json"  # under the limit: an answer
            await ws.send("x" * 2000)
            await expect_close(ws, 1009)
        async with asyncio.timeout(5):
            while 'limit="frame_size"' not in (await service.http.get("/metrics")).text:
                await asyncio.sleep(0.1)


async def test_flood_is_told_then_closed_and_others_unaffected(emulator):
    mine = (await emulator.create_contact("sales"))["contactId"]
    flags = ("--max-messages-per-second", "5", "--rate-limit-strikes", "10")
    async with start_service_process(emulator, None, *flags) as service:
        async with ws_client(service.ws_url) as calm, ws_client(service.ws_url) as flood:
            await calm.subscribe(mine)
            assert (await calm.next())["contact"] == mine
            for _ in range(200):
                await flood.send({"op": "ping"})
            replies = await expect_close(flood, 1008)
            # auth used one of the burst of 10: nine pongs (one more for each 0.2 s the 200
            # sends took on a busy machine), one warning, a last word
            pongs = sum(1 for r in replies if r["type"] == "pong")
            assert 9 <= pongs <= 12, replies
            assert [r["type"] for r in replies[:pongs]] == ["pong"] * pongs
            codes = [r.get("code") for r in replies[pongs:]]
            assert codes == ["rate_limited", "rate_limited"], replies
            # A client at the rate is never limited.
            for _ in range(6):
                await calm.send({"op": "ping"})
                assert (await calm.next())["type"] == "pong"
                await asyncio.sleep(0.25)
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="message_rate_close"} 1.0' in metrics
        assert 'queuecast_client_errors_total{code="rate_limited"} 2.0' in metrics


async def test_sockets_per_address(emulator):
    async with start_service_process(emulator, None, "--max-sockets-per-ip", "3") as service:
        async with ws_client(service.ws_url), ws_client(service.ws_url):
            async with ws_client(service.ws_url):
                with pytest.raises(InvalidStatus) as refused:
                    async with ws_client(service.ws_url):
                        pass
                assert refused.value.response.status_code == 429
            # one closed: room for one more
            async with asyncio.timeout(5):
                while (await service.status())["sockets"] != 2:
                    await asyncio.sleep(0.05)
            async with ws_client(service.ws_url) as again:
                await again.send({"op": "ping"})
                assert (await again.next())["type"] == "pong"
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="sockets_per_ip"} 1.0' in metrics


async def test_slow_handshake_is_dropped(emulator):
    async with start_service_process(emulator, None, "--handshake-timeout", "1") as service:
        host, port = service.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        await writer.drain()
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.8 < time.monotonic() - started < 4
        writer.close()
        # A normal handshake right after is served.
        async with websockets.connect(service.ws_url) as conn:
            await conn.send('{"op":"ping"}')
            assert "pong" in await conn.recv()
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="handshake_timeout"} 1.0' in metrics


async def _drip_until_closed(writer, reader, data: bytes, every: float, limit: float) -> float:
    """Send `data` one byte every `every` seconds; the seconds until the server hung up."""
    started = time.monotonic()
    closed = asyncio.ensure_future(reader.read())
    try:
        for byte in data:
            if closed.done() or time.monotonic() - started > limit:
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)
        assert await asyncio.wait_for(closed, limit) == b""
    finally:
        closed.cancel()
        writer.close()
    return time.monotonic() - started


async def test_every_request_on_a_kept_alive_connection_has_a_deadline(emulator, tmp_path):
    """Issue 14, item 8: the second request's headers (or a body) may not drip forever."""
    log = tmp_path / "stderr.log"
    flags = ("--handshake-timeout", "1")
    async with start_service_process(emulator, None, *flags, stderr=log) as service:
        host, port = service.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), 5)
        assert first.startswith(b"HTTP/1.1 200")
        second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
        assert await _drip_until_closed(writer, reader, second, every=0.2, limit=6) < 3

        reader, writer = await asyncio.open_connection(host, int(port))
        token = mint_test_token()
        head = (
            f"PUT /v1/contacts/{UNKNOWN_CONTACT} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n"
        ).encode()
        writer.write(head)
        assert await _drip_until_closed(writer, reader, b" " * 100, every=0.2, limit=6) < 3
        metrics = (await service.http.get("/metrics")).text
        # Both drips; an idle kept-alive connection of a busy test run may count too.
        [hits] = re.findall(
            r'queuecast_limit_hits_total\{limit="handshake_timeout"\} (\S+)', metrics
        )
        assert float(hits) >= 2, metrics
    assert '"level":"error"' not in log.read_text()
