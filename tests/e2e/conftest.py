"""End-to-end fixtures: real processes on loopback only.

- `redis_server`: a redis-server of our own on a free port (never 6379).
- `emulator`: `queuecast simulate` as a subprocess: no arrivals, no agents, nobody abandons,
  so contacts move only through the `/_sim/` API; the account quota at its default 2/s burst 5.
- `bus_url`: parametrized over the two bus backends, "redis" (a real server) and "memory".
- `ws_paths`: parametrized over "fast" (the fast paths past uvicorn's, asyncio's and
  redis-py's public APIs) and "public" (QUEUECAST_FORCE_PUBLIC_PATHS=1 in the services the
  test starts: their public, slower paths, as when a library lacks those internals).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server._internals import FORCE_PUBLIC_PATHS
from tests.support.emulator import EmulatorHandle, start_emulator_process
from tests.support.redis import RedisServer, running_redis

pytestmark = pytest.mark.e2e

QUIET_FLAGS = ("--arrivals", "0", "--agents", "0", "--mean-patience", "0")


@pytest.fixture
async def redis_server(tmp_path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with start_emulator_process(*QUIET_FLAGS) as handle:
        yield handle


@pytest.fixture(params=["redis", "memory"])
async def bus_url(request, tmp_path) -> AsyncIterator[str | None]:
    if request.param == "memory":
        yield None
        return
    async with running_redis(tmp_path) as server:
        yield server.url


@pytest.fixture(params=["fast", "public"])
def ws_paths(request, monkeypatch) -> str:
    """Services started by the test inherit the environment (tests/support/service.py)."""
    if request.param == "public":
        monkeypatch.setenv(FORCE_PUBLIC_PATHS, "1")
    else:
        monkeypatch.delenv(FORCE_PUBLIC_PATHS, raising=False)
    return str(request.param)
