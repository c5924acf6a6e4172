"""The private internals of other libraries that queuecast's fast paths use, probed in one place.

Three fast paths reach past public APIs; pyproject.toml pins each library to the versions the
tests prove:

- `uvicorn`: `FramingProtocol` subclasses uvicorn's websockets-sansio protocol class and hooks
  its methods and attributes (server/browser/ws_protocol.py). Public path: uvicorn's own
  `ws="websockets-sansio"`; the app then sends every frame the ordinary way, and client
  pings and unwritten bytes go unlimited (those limits live in the subclass).
- `asyncio`: bus writers send straight to a connection's socket, the `_sock` of asyncio's
  selector socket transport (`ws_protocol._socket_send`). Public path: `transport.write`.
- `redis`: the subscriber connection is read in bulk with hiredis from redis-py's
  `Connection._reader` stream (server/bus/subscriber.py). Public path: redis-py reads each
  reply itself (`Connection.read_response`, what `PubSub.get_message` does underneath).

`fast_paths()` probes them once per process. One that is not there (a library newer than the
pins allow) is replaced by its public path, with one warning in the log, instead of failing
at start or on the first socket. `QUEUECAST_FORCE_PUBLIC_PATHS=1` takes every public path: a
test and debugging switch (the WebSocket end-to-end tests run both ways), not a setting.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from dataclasses import dataclass
from types import FunctionType
from typing import Any

log = logging.getLogger("queuecast")

FORCE_PUBLIC_PATHS = "QUEUECAST_FORCE_PUBLIC_PATHS"

# What FramingProtocol overrides (each calls the original) and what it reads or sets that the
# base class's __init__ sets up; the rest (transport, scope, request...) is set per connection.
UVICORN_HOOKS = (
    "handle_connect",
    "handle_ping",
    "send",
    "send_keepalive_ping",
    "start_keepalive",
    "data_received",
    "connection_lost",
    "pause_writing",
    "keepalive_timeout",
    "shutdown",
)
UVICORN_INIT_ATTRIBUTES = (
    "queue",
    "writable",
    "conn",
    "close_sent",
    "disconnected",
    "handshake_complete",
    "ping_interval",
    "loop",
)


@dataclass(frozen=True, slots=True)
class FastPaths:
    """Which fast paths this process takes, and the private class each one needs."""

    framing_protocol: bool
    socket_send: bool
    bulk_redis_reader: bool
    sansio_protocol: type | None  # uvicorn's WebSocketsSansIOProtocol
    selector_socket_transport: type | None  # asyncio's _SelectorSocketTransport
    missing: tuple[str, ...] = ()  # why a fast path is off, one line each

    @property
    def all_on(self) -> bool:
        return self.framing_protocol and self.socket_send and self.bulk_redis_reader


def _unmentioned(function: Any, names: tuple[str, ...]) -> list[str]:
    """Those of `names` that `function`'s code never mentions: it neither sets nor reads them
    (a rename upstream shows here, without running the code)."""
    code = getattr(function, "__code__", None)
    mentioned = set(code.co_names) if code is not None else set()
    return [name for name in names if name not in mentioned]


def probe_uvicorn() -> tuple[type | None, str | None]:
    try:
        module = importlib.import_module("uvicorn.protocols.websockets.websockets_sansio_impl")
    except ImportError as exc:
        return None, f"uvicorn has no websockets-sansio protocol ({exc})"
    protocol = getattr(module, "WebSocketsSansIOProtocol", None)
    if not isinstance(protocol, type):
        return None, "uvicorn's websockets_sansio_impl has no WebSocketsSansIOProtocol"
    hooks = [
        name
        for name in UVICORN_HOOKS
        if not isinstance(getattr(protocol, name, None), FunctionType)
    ]
    unset = _unmentioned(vars(protocol).get("__init__"), UVICORN_INIT_ATTRIBUTES)
    if hooks or unset:
        return protocol, (
            f"uvicorn's WebSocketsSansIOProtocol lacks {', '.join([*hooks, *unset])}: "
            "the frame writer is off"
        )
    return protocol, None


def probe_asyncio() -> tuple[type | None, str | None]:
    from asyncio import selector_events  # noqa: PLC0415

    transport = getattr(selector_events, "_SelectorSocketTransport", None)
    base = getattr(selector_events, "_SelectorTransport", None)
    if not isinstance(transport, type) or base is None:
        return None, "asyncio has no _SelectorSocketTransport: sockets are written by the transport"
    if _unmentioned(base.__init__, ("_sock",)):
        return (
            None,
            "asyncio's socket transport keeps no _sock: sockets are written by the transport",
        )
    return transport, None


def probe_redis() -> str | None:
    try:
        connection = importlib.import_module("redis.asyncio.connection")
    except ImportError as exc:
        return f"redis.asyncio.connection does not import ({exc})"
    opened = getattr(getattr(connection, "Connection", None), "_connect", None)
    if opened is None or _unmentioned(opened, ("_reader",)):
        return "redis-py's Connection keeps no _reader stream: redis-py reads the bus replies"
    return None


@functools.cache
def fast_paths() -> FastPaths:
    """Probe once per process; log one warning when a fast path is off."""
    sansio, uvicorn_missing = probe_uvicorn()
    transport, asyncio_missing = probe_asyncio()
    redis_missing = probe_redis()
    missing = [reason for reason in (uvicorn_missing, asyncio_missing, redis_missing) if reason]
    forced = os.environ.get(FORCE_PUBLIC_PATHS, "").strip().lower() in {"1", "true", "yes", "on"}
    if forced:
        missing.insert(0, f"{FORCE_PUBLIC_PATHS} is set")
    paths = FastPaths(
        framing_protocol=not forced and uvicorn_missing is None,
        socket_send=not forced and asyncio_missing is None,
        bulk_redis_reader=not forced and redis_missing is None,
        sansio_protocol=sansio,
        selector_socket_transport=transport,
        missing=tuple(missing),
    )
    if missing:
        log.warning(
            "public (slower) paths in use: %s",
            "; ".join(missing),
            extra={"fast_paths": _labels(paths)},
        )
    return paths


def _labels(paths: FastPaths) -> dict[str, bool]:
    return {
        "framing_protocol": paths.framing_protocol,
        "socket_send": paths.socket_send,
        "bulk_redis_reader": paths.bulk_redis_reader,
    }


def fast_path_states() -> dict[str, bool]:
    """Each fast path by name, on or off (for /metrics)."""
    return _labels(fast_paths())
