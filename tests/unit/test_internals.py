"""server/_internals.py: the private internals the fast paths use are there in the pinned
versions; when one is missing (simulated here by taking it away) or the switch is set, its
public path is chosen, with one warning, instead of a failure."""

from __future__ import annotations

import asyncio
import logging
import socket
from asyncio import selector_events
from collections.abc import Iterator

import pytest
import redis.asyncio.connection as redis_connection
from uvicorn.protocols.websockets import websockets_sansio_impl

from server import _internals
from server._internals import FORCE_PUBLIC_PATHS, fast_paths
from server.browser.ws_protocol import FramingProtocol, _socket_send
from server.http.serving import uvicorn_config
from server.settings import Settings


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(FORCE_PUBLIC_PATHS, raising=False)
    fast_paths.cache_clear()
    yield
    fast_paths.cache_clear()


def test_the_pinned_libraries_have_every_internal(caplog: pytest.LogCaptureFixture) -> None:
    """Fails when a pinned version (constraints.txt) loses one: widen nothing before this passes."""
    with caplog.at_level(logging.WARNING, logger="queuecast"):
        paths = fast_paths()
    assert paths.all_on and paths.missing == ()
    assert paths.sansio_protocol is websockets_sansio_impl.WebSocketsSansIOProtocol
    assert paths.selector_socket_transport is selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    assert not caplog.records
    ws = uvicorn_config(object(), Settings()).ws
    assert isinstance(ws, type) and issubclass(ws, FramingProtocol)


def test_the_switch_takes_every_public_path_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(FORCE_PUBLIC_PATHS, "1")
    with caplog.at_level(logging.WARNING, logger="queuecast"):
        paths = fast_paths()
        fast_paths()  # probed once per process: no second warning
    assert not (paths.framing_protocol or paths.socket_send or paths.bulk_redis_reader)
    [warning] = caplog.records
    assert FORCE_PUBLIC_PATHS in warning.getMessage()
    assert uvicorn_config(object(), Settings()).ws == "websockets-sansio"


def test_a_uvicorn_without_a_hook_runs_its_own_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = websockets_sansio_impl.WebSocketsSansIOProtocol
    monkeypatch.delattr(protocol, "send_keepalive_ping")
    paths = fast_paths()
    assert not paths.framing_protocol and paths.socket_send and paths.bulk_redis_reader
    assert "send_keepalive_ping" in paths.missing[0]
    assert uvicorn_config(object(), Settings()).ws == "websockets-sansio"


def test_a_uvicorn_without_the_protocol_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(websockets_sansio_impl, "WebSocketsSansIOProtocol")
    protocol, missing = _internals.probe_uvicorn()
    assert protocol is None and missing is not None


def test_an_asyncio_without_the_socket_transport_writes_through_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(selector_events, "_SelectorSocketTransport")
    paths = fast_paths()
    assert not paths.socket_send and paths.framing_protocol
    assert "_SelectorSocketTransport" in paths.missing[0]


async def test_socket_send_is_the_sockets_own_only_on_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    try:
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        send = _socket_send(transport)  # type: ignore[arg-type]
        assert getattr(send, "__self__", None) is ours  # the socket's own bound `send`
        monkeypatch.setenv(FORCE_PUBLIC_PATHS, "1")
        fast_paths.cache_clear()
        public = _socket_send(transport)  # type: ignore[arg-type]
        assert getattr(public, "__self__", None) is not ours
        assert public(b"frame") == 5
        await asyncio.sleep(0)
        assert theirs.recv(16) == b"frame"
        transport.close()
    finally:
        theirs.close()


def test_a_redis_py_without_the_reader_stream_lets_redis_py_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def _connect(self: object) -> None:  # a rewrite that keeps no `_reader`
        return None

    monkeypatch.setattr(redis_connection.Connection, "_connect", _connect)
    paths = fast_paths()
    assert not paths.bulk_redis_reader and paths.framing_protocol and paths.socket_send
    assert "_reader" in paths.missing[0]
