"""Shared WebSocket frames: a message is framed once and its bytes written to every socket.

Server-to-client frames are not masked (RFC 6455 5.1), so with per-message compression off the
encoded frame of a text message is the same bytes for every socket. uvicorn's sans-I/O
protocol frames the payload again for each `send`; `FramingProtocol` instead offers the
application a `FrameWriter` in the ASGI scope (`scope["extensions"][FRAME_WRITER]`) that takes
the shared bytes as they are.

Each frame is one `transport.write` (one `send()` system call while the socket's buffer is
empty). For the steady state the writer also lends out a `Sink` (`frame_sink`) whose `send` is
the socket's own `send`, valid while the transport's buffer is empty, with a callback for the
moment the socket stops taking frames that way: the fan-out (server/browser/fanout.py) then
writes frames with no Python per socket in between, neither ours nor asyncio's
(`transport.write` is ~0.6 us of Python around the system call, a sixth of the fan-out's user
time; docs/benchmarks.md).

Batching a socket's frames until the loop's next turn was tried and dropped: a socket
gets one frame per fan-out, so batches held one frame and only added bookkeeping
(docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from asyncio import Transport
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from websockets.http11 import Request
from websockets.protocol import State

from server._internals import fast_paths, probe_uvicorn
from server.access.policy import LIMIT_HITS
from server.browser._waitable import Flag, MessageQueue
from server.browser.limits import Admission, MessageRate

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as _SansIOProtocol,
    )
else:
    # uvicorn's class, found by server/_internals.py; without it this class is never used
    # (uvicorn runs its own protocol: `server.http.serving.uvicorn_config`).
    _SansIOProtocol = probe_uvicorn()[0] or object

FRAME_WRITER = "queuecast.frames"
# Bytes a connection may have waiting to be written: well above what the app's own sends
# leave there (they wait for the buffer to drain below uvicorn's high-water mark, and a socket
# that does not drain is closed after send_timeout), so only a client that makes the server
# write without reading (pongs to its pings) gets here; it is aborted, not left to grow.
MAX_WRITE_BUFFER = 1 << 20
_FIN_TEXT = 0x81


def text_frame(text: str) -> bytes:
    """The unmasked, final, uncompressed text frame carrying `text`."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((_FIN_TEXT, length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, length)
    return header + payload


class Sink(Protocol):
    """Where the fan-out writes an attached socket's frames (server/browser/fanout.py)."""

    # Takes what it can of a frame at once and returns how many bytes it took; an OSError
    # counts as none (a socket's `send`). An attribute, not a method: the fan-out calls it
    # once per socket and message, so it should be a C function, not a Python wrapper.
    send: Callable[[bytes], int]

    def finish(self, rest: memoryview) -> None:
        """Write the rest of a frame `send` did not take whole, after its first bytes, the
        ordinary way (buffered, or failing the connection); the sink is not used again."""


class FrameWriter(Protocol):
    def write_frame(self, frame: bytes) -> bool:
        """Write a complete frame from `text_frame` now, after everything written before.

        When this returns True the frame is in the transport's buffer, so nothing sent later
        the ordinary way can overtake it. Returns False, having written nothing, when the
        socket cannot take it without waiting (not open, closing, or its buffer is over the
        high-water mark) or a message from the client waits to be received: the caller then
        sends the message the ordinary way, which waits and keeps the app's order.
        """

    def frame_sink(self, blocked: Callable[[], None]) -> Sink | None:
        """A `Sink` that writes complete frames as `write_frame` would, without its checks,
        valid until `blocked` is called; None when it would not be valid now.

        Its `send` writes straight to the socket, so it is valid only while the transport
        buffers nothing (a frame sent then would overtake what is buffered), besides when
        `write_frame` takes frames. `blocked` is called once, synchronously, by whatever
        ends that (something left in the buffer, a client message arriving, a close, the
        connection lost), before anything else can write. Calling `frame_sink` again
        replaces it.
        """


class _SocketSink:
    """A `Sink` over one connection: its socket's `send`, and its protocol for the rest."""

    __slots__ = ("_protocol", "send")

    def __init__(self, protocol: FramingProtocol, send: Callable[[bytes], int]) -> None:
        self._protocol = protocol
        self.send = send

    def finish(self, rest: memoryview) -> None:
        self._protocol.write_rest(rest)


def _socket_send(transport: Transport) -> Callable[[bytes], int]:
    """The socket's own `send` under asyncio's plain socket transport, the one transport whose
    (private) `_sock` is the connection's own socket with nothing between a `send` and the
    kernel but what the transport buffers. Anything else (TLS, another event loop's
    transports, an asyncio without it: server/_internals.py) is written through
    `transport.write`, which buffers."""
    paths = fast_paths()
    if paths.socket_send and type(transport) is paths.selector_socket_transport:
        sock = getattr(transport, "_sock", None)
        if isinstance(sock, socket.socket):
            return sock.send

    def send(data: bytes) -> int:
        transport.write(data)
        return len(data)

    return send


# Every attribute uvicorn's protocol sets (0.54). Named in `__slots__` of the subclass, they are
# stored in the instance itself rather than its `__dict__`: CPython shares an instance dict's
# keys among instances only up to 30 attributes, and past that each socket has a dict of its
# own (~1.6 KB for these 37). An attribute a later uvicorn adds still works, in the dict
# (tests/unit/test_handshake_memory.py notices).
_UVICORN_ATTRIBUTES = (
    "config",
    "app",
    "loop",
    "logger",
    "root_path",
    "asgi_version",
    "app_state",
    "connections",
    "tasks",
    "default_headers",
    "transport",
    "server",
    "client",
    "scheme",
    "queue",
    "handshake_initiated",
    "handshake_complete",
    "close_sent",
    "disconnected",
    "close_timer",
    "close_timeout",
    "initial_response",
    "conn",
    "read_paused",
    "writable",
    "ping_interval",
    "ping_timeout",
    "ping_timer",
    "pong_timer",
    "pending_ping_payload",
    "ping_sent_at",
    "last_ping_rtt",
    "frames",
    "curr_msg_data_type",
    "request",
    "response",
    "scope",
)


class FramingProtocol(_SansIOProtocol):
    """uvicorn's `websockets-sansio` protocol plus a `FrameWriter` in the scope (pass the
    class as `uvicorn.Config(ws=...)`), with less held per idle socket: attributes in slots,
    wait primitives that allocate only while someone waits, and the handshake dropped once
    it is done: the request and response, and the scope's `headers` (emptied after the
    accept, so the app reads what it needs of them before accepting).
    """

    __slots__ = (*_UVICORN_ATTRIBUTES, "_blocked", "_control")

    # Set by `framing_protocol` from the settings: control frames (pings) count against the
    # same rate as messages, but here, since the library answers them without the app.
    control_rate = 10.0
    control_strikes = 20
    max_write_buffer = MAX_WRITE_BUFFER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: MessageQueue[ASGIReceiveEvent] = MessageQueue()  # type: ignore[assignment]
        self.writable = Flag(set_=True)  # type: ignore[assignment]
        self._blocked: Callable[[], None] | None = None
        self._control: MessageRate | None = None  # made at the first ping: most never send one

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and not self.close_sent:
            # The app's task was created but has not run: it sees the writer from the start.
            scope["extensions"][FRAME_WRITER] = self

    def write_frame(self, frame: bytes) -> bool:
        if not self._takes_frames():
            return False
        self.transport.write(frame)
        self._recheck_sink()  # a short write leaves the rest in the buffer
        return True

    def handle_ping(self) -> None:
        """Answer a client's ping, unless it pings faster than it may send messages."""
        now = self.loop.time()
        if self._control is None:
            self._control = MessageRate(self.control_rate, self.control_strikes, now)
        if self._control.admit(now) is Admission.CLOSE:
            LIMIT_HITS.labels("control_frames").inc()
            self._abort()
            return
        super().handle_ping()
        self._check_write_buffer()

    def _check_write_buffer(self) -> None:
        if self.transport.get_write_buffer_size() > self.max_write_buffer:
            LIMIT_HITS.labels("write_buffer").inc()
            self._abort()

    def _abort(self) -> None:
        """Drop the connection now: a close frame would only queue behind what is unread."""
        if not self.transport.is_closing() or self.transport.get_write_buffer_size():
            self.transport.abort()

    def frame_sink(self, blocked: Callable[[], None]) -> Sink | None:
        if not self._sink_valid():
            return None
        self._blocked = blocked
        return _SocketSink(self, _socket_send(self.transport))

    def write_rest(self, rest: memoryview) -> None:
        """The rest of a frame the sink's `send` did not take whole: after its first bytes,
        before anything else (the transport buffers it, or fails the connection)."""
        self.transport.write(rest)
        self._recheck_sink()
        self._check_write_buffer()

    def _takes_frames(self) -> bool:
        return not (
            self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            # Frames shared across sockets are uncompressed; never write them on a socket
            # that negotiated an extension (compression is configured off).
            or self.conn.extensions
            or self.conn.expect_continuation_frame
            or self.transport.is_closing()
            # A client message is waiting for the app (a ping, say): what the app answers
            # goes before events that were pending when it arrived, as through the outbox.
            or not self.queue.empty()
        )

    def _sink_valid(self) -> bool:
        return self._takes_frames() and not self.transport.get_write_buffer_size()

    def _recheck_sink(self) -> None:
        """After anything that can change `_sink_valid`: end the sink if it no longer is."""
        blocked = self._blocked
        if blocked is not None and not self._sink_valid():
            self._blocked = None
            blocked()

    # Every way uvicorn's protocol writes, closes, queues a client message or stops writing
    # runs inside one of these (its timers too: the keep-alive ping and its timeout), so
    # checking after each ends a sink before anything else can write to the socket.

    def send_keepalive_ping(self) -> None:
        super().send_keepalive_ping()
        self._recheck_sink()

    def start_keepalive(self) -> None:
        """The first ping after a random share of the interval, not all of it.

        Each later ping is chained on the pong before it, so sockets keep the phase of their
        first ping for life. Opened together (clients reconnecting after a deploy) they would
        all ping in the same moment every interval: thousands of pings in a few loop turns,
        a stall for every update in flight. Spread this way they ping evenly over the whole
        interval from the first round on (bench/ping_spread.py).
        """
        interval = self.ping_interval
        if interval is not None and interval > 0:
            delay = interval * random.random()
            self.ping_timer = self.loop.call_later(delay, self.send_keepalive_ping)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._recheck_sink()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._recheck_sink()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._recheck_sink()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._recheck_sink()

    def shutdown(self) -> None:
        super().shutdown()
        self._recheck_sink()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A refusal (429, 503) is a complete answer to the handshake; uvicorn 0.54 does
            # not count it as one and logs an ERROR for every refused socket, which anyone
            # could then fill the log with.
            self.handshake_complete = True
        self._recheck_sink()
        if self.handshake_complete and getattr(self, "request", None) is not None:
            self._drop_handshake()

    def _drop_handshake(self) -> None:
        """Only the accept (or a refusal) reads these: ~3 KB of headers per socket."""
        request = self.request
        del self.request
        # websockets' `ServerProtocol.parse` generator still holds the request in its
        # suspended frame for the connection's lifetime; the event is ours, so empty it.
        request.headers.clear()
        with contextlib.suppress(AttributeError):
            del self.response
        scope = getattr(self, "scope", None)
        if scope is not None:
            # Shared with any Starlette `Headers` made of this scope, which empty with it.
            scope["headers"].clear()


def framing_protocol(max_messages_per_second: float, strikes: int) -> type[FramingProtocol]:
    """`FramingProtocol` holding pings to the message rate of the settings (for
    `uvicorn.Config(ws=...)`)."""

    class ConfiguredFramingProtocol(FramingProtocol):
        __slots__ = ()
        control_rate = max_messages_per_second
        control_strikes = strikes

    return ConfiguredFramingProtocol
