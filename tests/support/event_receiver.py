"""A stand-in API destination for the emulator's contact events: a real HTTP server on a free
loopback port that records every request and answers with the statuses it is told to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.http.serving import bind_socket
from tests.support import TIMEOUT_SCALE


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float  # loop time


@dataclass
class EventReceiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # Statuses to answer, in order, before answering 200 (with `retry_after` on 429/5xx).
    script: list[int] = field(default_factory=list)
    retry_after: str | None = None
    answered: list[int] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        self.requests.append(
            Received(
                await request.json(),
                dict(request.headers),
                asyncio.get_running_loop().time(),
            )
        )
        status = self.script.pop(0) if self.script else 200
        self.answered.append(status)
        self._arrived.set()
        headers = {"Retry-After": self.retry_after} if self.retry_after and status >= 429 else None
        return Response(status_code=status, headers=headers)

    @property
    def taken(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 2xx, in arrival order."""
        return [r.body for r, s in zip(self.requests, self.answered, strict=True) if s < 300]

    def kinds(self) -> list[str]:
        return [body["detail"]["eventType"] for body in self.taken]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `count` requests were answered 2xx."""
        async with asyncio.timeout(timeout * TIMEOUT_SCALE):
            while len(self.taken) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.taken


@contextlib.asynccontextmanager
async def event_receiver(path: str = "/events") -> AsyncIterator[EventReceiver]:
    receiver = EventReceiver()
    app = Starlette(routes=[Route(path, receiver.handle, methods=["POST"])])
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()
