"""`/ws` is served before the HTTP middleware (server/app.py `QueuecastApp`): a WebSocket to
any other path is still refused by the router, and HTTP responses still carry the security
headers."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


async def test_only_ws_takes_websockets_and_http_keeps_its_headers(emulator):
    async with start_service_process(emulator, None) as service:
        for path in ("/ws/", "/wsx", "/", "/static/demo.html", "/ws/extra"):
            with pytest.raises(InvalidStatus) as refused:
                async with ws_client(service.ws_url.removesuffix("/ws") + path, token=None):
                    pass
            assert refused.value.response.status_code == 403, path
        async with ws_client(service.ws_url) as ws:
            await ws.send({"op": "ping"})
            assert (await ws.next())["type"] == "pong"
        async with httpx.AsyncClient(base_url=service.url) as anonymous:
            for path in ("/healthz", "/ws", "/no-such-page"):
                response = await anonymous.get(path)
                assert response.headers["x-content-type-options"] == "nosniff", path
                assert "frame-ancestors" in response.headers["content-security-policy"], path
