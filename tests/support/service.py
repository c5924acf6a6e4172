"""Run `queuecast serve` for end-to-end tests: a real process under uvicorn on a free port.

The service checks tokens: it starts with `TEST_SECRET` (unless `env` sets QUEUECAST_SECRET
itself, or "" for none), and `ServiceHandle.http` carries a `service` token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from server.access.tokens import mint
from tests.support import TIMEOUT_SCALE
from tests.support.emulator import REPO_ROOT, EmulatorHandle, read_ready, stop_process

READY_PREFIX = "queuecast-serve ready "
TEST_SECRET = "queuecast-test-secret-0123456789abcdef"


def mint_test_token(scope: str = "service", *, secret: str = TEST_SECRET, **claims: Any) -> str:
    """A token signed with the test secret (`mint`'s keyword arguments)."""
    return mint(secret, scope=scope, **claims)  # type: ignore[arg-type]


START_TIMEOUT = 20.0 * TIMEOUT_SCALE


@dataclass
class ServiceHandle:
    url: str
    ws_url: str
    proc: asyncio.subprocess.Process
    http: httpx.AsyncClient

    async def status(self) -> dict[str, Any]:
        response = await self.http.get("/v1/status")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def service_args(emulator: EmulatorHandle, redis_url: str | None, *extra: str) -> list[str]:
    args = [
        "--port",
        "0",
        "--connect-endpoint-url",
        emulator.endpoint_url,
        "--region",
        emulator.region,
        "--instance-id",
        emulator.instance_id,
        "--poll-interval",
        "0.5",
        "--linger",
        "1",
        "--log-format",
        "json",
    ]
    if redis_url is not None:
        args += ["--redis-url", redis_url]
    return [*args, *extra]


@contextlib.asynccontextmanager
async def start_service_process(
    emulator: EmulatorHandle,
    redis_url: str | None = None,
    *extra: str,
    env: dict[str, str] | None = None,
    stderr: Path | None = None,
    command: Sequence[str] = (sys.executable, "-m", "server"),
    cwd: Path = REPO_ROOT,
) -> AsyncIterator[ServiceHandle]:
    """`python -m server serve` against `emulator` (dummy AWS credentials); SIGTERM on exit.

    Args:
        stderr: write the service's stderr (its logs) to this file instead of inheriting it.
        command: what runs `queuecast` (e.g. an installed `.../bin/queuecast`), run in `cwd`.
    """
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "QUEUECAST_SECRET": TEST_SECRET,
        **(env or {}),
    }
    log_file = stderr.open("wb") if stderr is not None else None
    proc = await asyncio.create_subprocess_exec(
        *command,
        "serve",
        *service_args(emulator, redis_url, *extra),
        cwd=cwd,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=log_file,
    )
    try:
        info = await asyncio.wait_for(read_ready(proc, READY_PREFIX), START_TIMEOUT)
        headers = {"Authorization": f"Bearer {mint_test_token()}"}
        async with httpx.AsyncClient(
            base_url=info["url"], timeout=10 * TIMEOUT_SCALE, headers=headers
        ) as http:
            yield ServiceHandle(info["url"], info["ws"], proc, http)
    finally:
        await stop_process(proc)
        if log_file is not None:
            log_file.close()
