"""Running an ASGI app under uvicorn: sockets bound here (so port 0 works and the real port is
known), a machine-readable ready line, and a drain step before uvicorn's own shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn

from server._internals import fast_paths
from server.browser.ws_protocol import framing_protocol
from server.http.header_timeout import with_handshake_timeout
from server.settings import Settings

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; with port 0 the kernel picks a free port.

    The explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    `proto` says TCP, and `socket.socket()` leaves it 0. Without NODELAY, Nagle plus delayed
    ACKs stall each keep-alive response by ~40 ms (measured: 22 requests/s per connection).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited when accepted
        sock.bind((host, port))
        sock.listen(2048)  # connections made before uvicorn accepts wait in the backlog
    except OSError:
        sock.close()
        raise
    return sock


# Young-generation threshold for a process holding thousands of sockets (~200 tracked objects
# each). With the default 700, anything living ~25 ms reaches the old generation, which then
# fills fast and is collected every ~4 s: a full pass over ~1M objects, a 400-500 ms stall
# (p99 524 ms at 10,000 frames/s to 5,000 sockets; 4 ms with this setting, docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc_for_many_sockets() -> None:
    """Collect the young generation less often so that short-lived objects die young."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


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
        # uvicorn's own version re-raises the signal after a graceful shutdown, so the process
        # would die of SIGTERM; a drained stop is a clean exit (status 0) here.
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            before, self._before_shutdown = self._before_shutdown, None
            await before()
        await super().shutdown(sockets)


async def serve_until_stopped(
    server: uvicorn.Server, sock: socket.socket, on_ready: Callable[[str], None]
) -> None:
    """Serve on `sock` until a signal (or `server.should_exit`) stops it.

    Args:
        on_ready: called with the base URL once the app's lifespan startup has completed.
    """
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        # uvicorn offers no started event; poll its flag, at start-up only.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            on_ready(socket_url(sock))
        await serving
    finally:
        if not serving.done():
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
        sock.close()


GRACEFUL_SHUTDOWN_SECONDS = 5


def uvicorn_config(app: object, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for queuecast's app (the service, or the demo's copy of it)."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=with_handshake_timeout(settings.handshake_timeout),
        # uvicorn's websockets-sansio protocol, plus writing a shared frame to many sockets;
        # uvicorn's own if this uvicorn lacks what FramingProtocol hooks (server/_internals.py).
        ws=(
            framing_protocol(settings.max_messages_per_second, settings.rate_limit_strikes)
            if fast_paths().framing_protocol
            else "websockets-sansio"
        ),
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # Messages are ~200 bytes; compression would cost ~50 KiB of zlib state per socket.
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        # Trusted proxies only: a forwarded address is what the per-client limits count.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
