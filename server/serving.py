"""Running an ASGI app under uvicorn: sockets bound here (so port 0 works and the real port is
known), a machine-readable ready line, and a drain step before uvicorn's own shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket; with port 0 the kernel picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def socket_url(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def print_ready(name: str, payload: dict[str, Any]) -> None:
    """One line `<name> ready {json}` on stdout: what tests and scripts wait for."""
    print(f"{name} ready {json.dumps(payload, separators=(',', ':'))}", flush=True)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that runs `before_shutdown` (e.g. close sockets with 1001) first.

    uvicorn itself would close open WebSockets with 1012 before the app's lifespan hears of
    the shutdown; draining here lets the app say 1001 ("going away") and stop polling first.

    Args:
        config: the uvicorn configuration.
        before_shutdown: awaited once when shutdown begins.
        handle_signals: False for a second server in the same process (only one may own the
            signal handlers).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        before_shutdown: Callable[[], Awaitable[None]] | None = None,
        *,
        handle_signals: bool = True,
    ) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            before, self._before_shutdown = self._before_shutdown, None
            await before()
        await super().shutdown(sockets)


async def wait_started(server: uvicorn.Server) -> None:
    """Return once uvicorn has bound and the app's lifespan startup has completed."""
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.02)
