"""Per-client limits behind a proxy, the global socket cap, quiet refusals and the Origin's
scheme (issue 14, items 1, 10 and 11).

The proxy is played by the test itself: it connects from 127.0.0.1 and sends the headers a
proxy sends (`X-Forwarded-For`, `X-Forwarded-Proto`).
"""

from __future__ import annotations

import contextlib
import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


def forwarded(client: str, proto: str | None = None) -> dict[str, object]:
    headers = {"X-Forwarded-For": client}
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    return {"additional_headers": headers}


async def refused_status(url: str, **kwargs: object) -> int | None:
    """The HTTP status a handshake is refused with, or None when it is accepted."""
    try:
        async with ws_client(url, **kwargs):
            return None
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_forwarded_addresses_are_not_trusted_by_default(emulator):
    async with start_service_process(emulator, None, "--max-sockets-per-ip", "2") as service:
        async with ws_client(service.ws_url, **forwarded("203.0.113.1")):
            async with ws_client(service.ws_url, **forwarded("203.0.113.2")):
                # Anyone can write the header: untrusted, all three are 127.0.0.1.
                assert await refused_status(service.ws_url, **forwarded("203.0.113.3")) == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(emulator, tmp_path):
    log = tmp_path / "stderr.log"
    flags = ("--max-sockets-per-ip", "2", "--forwarded-allow-ips", "127.0.0.1")
    async with start_service_process(emulator, None, *flags, stderr=log) as service:
        url = service.ws_url
        async with contextlib.AsyncExitStack() as held:
            for client in ("203.0.113.5", "203.0.113.5", "2001:db8::1", "2001:db8::2"):
                await held.enter_async_context(ws_client(url, **forwarded(client)))
            for _ in range(5):
                assert await refused_status(url, **forwarded("203.0.113.5")) == 429
            # What the client wrote itself is left of what the proxy appended: not trusted.
            assert await refused_status(url, **forwarded("198.51.100.9, 203.0.113.5")) == 429
            # IPv6: one /64 is one client, whichever of its addresses it uses.
            assert await refused_status(url, **forwarded("2001:db8::ffff")) == 429
            # Other clients behind the same proxy are served.
            for client in ("198.51.100.7", "2001:db8:0:1::1", "::ffff:192.0.2.1"):
                assert await refused_status(url, **forwarded(client)) is None, client
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="sockets_per_ip"} 7.0' in metrics
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert not [line for line in lines if line["level"] == "error"]
    refusals = [line for line in lines if line["message"].startswith("websocket refused")]
    # Seven refusals of two clients: one INFO line each; and no line per handshake.
    assert sorted(line["client"] for line in refusals) == ["2001:db8::/64", "203.0.113.5"]
    assert all(line["level"] == "info" for line in refusals)
    assert not [line for line in lines if '"WebSocket /ws"' in line["message"]]


async def test_a_replica_holds_at_most_max_sockets(emulator):
    flags = ("--max-sockets", "3", "--forwarded-allow-ips", "127.0.0.1")
    async with start_service_process(emulator, None, *flags) as service:
        url = service.ws_url
        async with contextlib.AsyncExitStack() as held:
            for n in range(3):
                await held.enter_async_context(ws_client(url, **forwarded(f"203.0.113.{n}")))
            assert await refused_status(url, **forwarded("198.51.100.1")) == 503
        assert await refused_status(url, **forwarded("198.51.100.1")) is None
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="sockets"} 1.0' in metrics


async def test_the_origin_check_compares_the_scheme(emulator):
    async with start_service_process(emulator, None) as service:
        own = service.url  # http://127.0.0.1:port
        secure = own.replace("http://", "https://")
        assert await refused_status(service.ws_url, origin=own) is None
        assert await refused_status(service.ws_url, origin=secure) == 403
    flags = ("--forwarded-allow-ips", "127.0.0.1")
    async with start_service_process(emulator, None, *flags) as service:
        # Behind a TLS-terminating proxy the page is https, and the proxy says so.
        own = service.url
        secure = own.replace("http://", "https://")
        via_tls = forwarded("203.0.113.1", proto="https")
        assert await refused_status(service.ws_url, origin=secure, **via_tls) is None
        assert await refused_status(service.ws_url, origin=own, **via_tls) == 403
