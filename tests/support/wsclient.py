"""A small WebSocket client for tests, on the `websockets` library (a real client).

`ws_client(url)` authenticates with a `service` token signed with the test secret and reads
the `authenticated` reply; pass `token=` for another token, or `token=None` to stay silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from tests.support import TIMEOUT_SCALE
from tests.support.service import mint_test_token

RECV_TIMEOUT = 10.0 * TIMEOUT_SCALE


class WsClient:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.conn.send(message if isinstance(message, str) else json.dumps(message))

    async def subscribe(self, contact: str | None = None, **fields: Any) -> None:
        body = {"op": "subscribe", **fields}
        if contact is not None:
            body["contact"] = contact
        await self.send(body)

    async def next(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        self.seen.append(message)
        return message

    async def next_matching(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = RECV_TIMEOUT
    ) -> dict[str, Any]:
        """Read until a message matches; the skipped ones stay in `seen`."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if predicate(message):
                    return message

    async def expect_silence(self, seconds: float) -> None:
        """Assert that nothing arrives for `seconds`."""
        with contextlib.suppress(TimeoutError):
            message = await asyncio.wait_for(self.conn.recv(), seconds)
            raise AssertionError(f"expected no message, got {message!r}")

    async def auth(self, token: str) -> dict[str, Any]:
        """Send `{"op":"auth"}` and return the reply (`authenticated` or an error)."""
        await self.send({"op": "auth", "token": token})
        return await self.next()


_SERVICE_TOKEN = object()


@contextlib.asynccontextmanager
async def ws_client(
    url: str, *, token: str | object | None = _SERVICE_TOKEN, **kwargs: Any
) -> AsyncIterator[WsClient]:
    async with websockets.connect(url, open_timeout=RECV_TIMEOUT, **kwargs) as conn:
        client = WsClient(conn)
        if token is _SERVICE_TOKEN:
            token = mint_test_token()
        if isinstance(token, str):
            reply = await client.auth(token)
            assert reply["type"] == "authenticated", reply
        yield client
