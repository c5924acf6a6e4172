"""Security tests against real processes: the emulator, `queuecast serve`, WebSocket and HTTP
clients on loopback. Each test starts the service with the limits it exercises."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.emulator import EmulatorHandle, start_emulator_process
from tests.support.redis import RedisServer, running_redis
from tests.support.wsclient import WsClient

QUIET_FLAGS = ("--arrivals", "0", "--agents", "0", "--mean-patience", "0")


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with start_emulator_process(*QUIET_FLAGS) as handle:
        yield handle


@pytest.fixture
async def redis_server(tmp_path) -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own on a free port (never 6379)."""
    async with running_redis(tmp_path) as server:
        yield server


async def expect_close(ws: WsClient, code: int, timeout: float = 10) -> list[dict[str, Any]]:
    """Read until the server closes; assert its close code; return what came before."""
    before: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            before.append(await ws.next(timeout))
    assert closed.value.rcvd is not None, "the server did not send a close frame"
    assert closed.value.rcvd.code == code, (closed.value.rcvd, before)
    return before


def is_event(message: dict[str, Any]) -> bool:
    return message.get("type") in ("snapshot", "update", "ended")


def dump(messages: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(m) for m in messages)
