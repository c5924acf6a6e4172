"""An HTTP protocol for uvicorn that gives each request a deadline to arrive.

uvicorn times out idle keep-alive connections, but not one that sends a request slowly: a
byte now and then keeps it from being idle (slowloris); such sockets would pile up until file
descriptors run out. So every request, the first and each one after on a kept-alive
connection, must have sent its headers and its body within `timeout` seconds of the
connection opening or of the previous response. WebSocket handshakes are HTTP requests, so
they are covered too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from server.access.policy import LIMIT_HITS


def with_handshake_timeout(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing connections whose next request (headers and body)
    takes longer than `timeout` seconds to arrive (pass the class as `uvicorn.Config(http=...)`)."""

    class HandshakeTimeoutProtocol(H11Protocol):
        _handshake_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_handshake_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Kept alive: the next request gets its own deadline (it may have begun already,
            # pipelined; it is then counted from here, which is later, so no stricter).
            if not self.transport.is_closing():
                self._arm_handshake_timer()

        def _arm_handshake_timer(self) -> None:
            self._cancel_handshake_timer()
            self._handshake_timer = self.loop.call_later(timeout, self._handshake_expired)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_handshake_timer()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self, event: Any) -> None:
            # The request headers are in, so the deadline is met; and the pending timer would
            # keep this protocol (its h11 state, buffers and scope) alive for `timeout` seconds
            # after the upgrade: 4.8 KB of RSS per socket after a burst of 5,000 handshakes
            # (bench/idle_memory.py).
            self._cancel_handshake_timer()
            super().handle_websocket_upgrade(event)

        def _cancel_handshake_timer(self) -> None:
            if self._handshake_timer is not None:
                self._handshake_timer.cancel()
                self._handshake_timer = None

        def _handshake_expired(self) -> None:
            self._handshake_timer = None
            # `cycle` is the request being served, or the last one served; an upgraded
            # connection belongs to the WebSocket protocol by now.
            cycle = self.cycle
            arriving = cycle is None or cycle.response_complete or cycle.more_body
            if (
                arriving
                and self.transport.get_protocol() is self
                and not self.transport.is_closing()
            ):
                LIMIT_HITS.labels("handshake_timeout").inc()
                self.transport.close()

    return HandshakeTimeoutProtocol
