"""Several replicas of the service on one redis-server and one emulator, all real processes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.emulator import EmulatorHandle, start_emulator_process
from tests.support.redis import RedisServer, running_redis
from tests.support.service import ServiceHandle, start_service_process

pytestmark = pytest.mark.e2e

QUIET_FLAGS = ("--arrivals", "0", "--agents", "0", "--mean-patience", "0")
LEASE_TTL = 2.0


@pytest.fixture
async def redis_server(tmp_path) -> AsyncIterator[RedisServer]:
    async with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with start_emulator_process(*QUIET_FLAGS, "--no-quota") as handle:
        yield handle


@contextlib.asynccontextmanager
async def replicas(
    emulator: EmulatorHandle, redis_url: str, count: int, *extra: str
) -> AsyncIterator[list[ServiceHandle]]:
    flags = ("--lease-ttl", str(LEASE_TTL), *extra)
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(
                start_service_process(emulator, redis_url, "--replica-id", f"r{i}", *flags)
            )
            for i in range(count)
        ]
        yield started
