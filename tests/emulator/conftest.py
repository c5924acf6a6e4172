"""Emulator fixtures (to be lifted into tests/conftest.py).

- `emulator`: the emulator served by uvicorn inside the test's event loop (fast); quiet
  configuration from `quiet_config()`: no arrivals, no agents, nobody abandons, no quota, so
  contacts only come and go through the `/_sim/` API.
- `emulator_process`: `python -m server simulate` in a subprocess with the same quiet flags.
- `connect_client`: parametrized over boto3 and aioboto3; a `ConnectCaller` bound to `emulator`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aioboto3
import boto3
import pytest

from server.emulator import EmulatorConfig, QueueSpec
from tests.support.emulator import (
    EmulatorHandle,
    run_emulator_in_process,
    start_emulator_process,
)

QUIET_FLAGS = ("--arrivals", "0", "--agents", "0", "--mean-patience", "0", "--no-quota")


def quiet_config(**overrides: Any) -> EmulatorConfig:
    queue = QueueSpec("q", agents=0, arrivals_per_minute=0, mean_patience_s=None)
    queues = tuple(replace(queue, name=name) for name in ("sales", "support"))
    base: dict[str, Any] = {
        "queues": queues,
        "quota_enabled": False,
        "describe_quota_enabled": False,
        "operation_quotas_enabled": False,
    }
    return EmulatorConfig(**{**base, **overrides})


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator_in_process(quiet_config()) as handle:
        yield handle


@pytest.fixture
async def emulator_process() -> AsyncIterator[EmulatorHandle]:
    async with start_emulator_process(*QUIET_FLAGS) as handle:
        yield handle


class ConnectCaller:
    """One face for a boto3 (run in a thread, so the in-loop server keeps serving) or an
    aioboto3 Connect client: `await caller.call("get_contact_metrics", ...)`, `.exceptions`."""

    def __init__(self, kind: str, client: Any) -> None:
        self.kind, self.client, self.exceptions = kind, client, client.exceptions

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self.client, operation)
        if self.kind == "boto3":
            return await asyncio.to_thread(method, **params)
        return await method(**params)


@pytest.fixture(params=["boto3", "aioboto3"])
async def connect_client(request, emulator) -> AsyncIterator[ConnectCaller]:
    if request.param == "boto3":
        client = boto3.session.Session().client("connect", **emulator.boto_kwargs())
        try:
            yield ConnectCaller("boto3", client)
        finally:
            client.close()
    else:
        async with aioboto3.Session().client("connect", **emulator.boto_kwargs()) as client:
            yield ConnectCaller("aioboto3", client)
