"""A queue's figures and name, end to end: the emulator over HTTP (aioboto3), the service as a
process, real Redis, a real WebSocket client subscribed to the queue; and every way
GetCurrentMetricData can fail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from server.emulator import QueueSpec
from tests.e2e.conftest import QUIET_FLAGS
from tests.emulator.conftest import quiet_config
from tests.support import TIMEOUT_SCALE
from tests.support.emulator import (
    EmulatorHandle,
    run_emulator_in_process,
    start_emulator_process,
    stop_process,
)
from tests.support.service import ServiceHandle, start_service_process
from tests.support.wsclient import WsClient, ws_client

pytestmark = pytest.mark.e2e

FAST = ("--queue-figures-interval", "0.3", "--stale-after", "1")
WAIT = 15 * TIMEOUT_SCALE


def emulator_config(**overrides: Any):
    queue = QueueSpec("q", agents=0, arrivals_per_minute=0, mean_patience_s=None)
    queues = (replace(queue, name="Sales"), replace(queue, name="Support desk", agents=3))
    return quiet_config(queues=queues, **overrides)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator_in_process(emulator_config()) as handle:
        yield handle


@contextlib.asynccontextmanager
async def service_with(
    emulator: EmulatorHandle, redis_url: str | None, *extra: str
) -> AsyncIterator[ServiceHandle]:
    async with start_service_process(emulator, redis_url, *FAST, *extra) as service:
        yield service


async def next_figures(ws: WsClient, queue: str, check=lambda e: True) -> dict[str, Any]:
    return await ws.next_matching(
        lambda m: m.get("type") == "queue" and m["queue"] == queue and check(m), timeout=WAIT
    )


async def truth(emulator: EmulatorHandle, name: str) -> dict[str, Any]:
    state = await emulator.sim_state()
    [queue] = [q for q in state["instances"][0]["queues"] if q["name"] == name]
    return queue


async def eventually(check, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def test_a_queue_subscriber_gets_the_emulators_figures_and_name(emulator, bus_url):
    sales, support = emulator.queues["Sales"], emulator.queues["Support desk"]
    contacts = [await emulator.create_contact("Sales") for _ in range(3)]
    async with service_with(emulator, bus_url) as service, ws_client(service.ws_url) as ws:
        await ws.subscribe(queue=sales)
        first = await next_figures(ws, sales, lambda e: e["name"] is not None)
        real = await truth(emulator, "Sales")
        assert first["name"] == "Sales"
        assert first["instance"] == emulator.instance_id
        assert first["waiting"] == len(real["waiting"]) == 3
        assert first["agentsAvailable"] == real["agents"]["free"] == 0
        oldest = min(datetime.fromisoformat(c["enqueuedAt"]) for c in real["waiting"])
        at = datetime.fromisoformat(first["at"])
        assert abs(first["oldest"] - (at - oldest).total_seconds()) <= 2
        assert first["stale"] is False
        assert list(first)[-1] == "seq"

        await ws.subscribe(queue=support)
        desk = await next_figures(ws, support, lambda e: e["name"] is not None)
        assert (desk["name"], desk["waiting"], desk["agentsAvailable"]) == ("Support desk", 0, 3)

        # A contact is answered: the next figures say so, with a higher seq.
        await emulator.connect(contacts[0])
        fewer = await next_figures(ws, sales, lambda e: e["waiting"] == 2)
        assert fewer["seq"] > first["seq"]

        # HTTP serves the same: the figures and the name, and every name the directory knows.
        body = (await service.http.get(f"/v1/queues/{sales}")).json()
        assert body["name"] == "Sales"
        assert body["figures"]["type"] == "queue"
        assert body["figures"]["waiting"] == 2
        listing = (await service.http.get("/v1/queues")).json()
        assert listing["names"] == {sales: "Sales", support: "Support desk"}
        status = await service.status()
        assert status["queueFigures"]["leader"] is True
        assert status["queueNames"]["instances"] == {emulator.instance_id: 2}


async def test_a_new_subscriber_gets_the_latest_figures_at_once(emulator, redis_server):
    sales = emulator.queues["Sales"]
    await emulator.create_contact("Sales")
    async with service_with(emulator, redis_server.url, "--queue-figures-interval", "30") as svc:
        async with ws_client(svc.ws_url) as first:
            await first.subscribe(queue=sales)
            seen = await next_figures(first, sales)
            async with ws_client(svc.ws_url) as late:
                await late.subscribe(queue=sales)
                # Stored: the late subscriber does not wait 30 s for the next read.
                again = await next_figures(late, sales)
                assert again["seq"] == seen["seq"]


async def test_throttled_figures_slow_down_and_keep_coming(emulator, redis_server):
    sales = emulator.queues["Sales"]
    await emulator.put_config(
        quotas={"getCurrentMetricData": {"enabled": True, "rps": 0.5, "burst": 1}}
    )
    extra = ("--queue-figures-interval", "0.2", "--current-metrics-rps", "5")
    async with service_with(emulator, redis_server.url, *extra) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(queue=sales)
            await next_figures(ws, sales)

            async def throttled() -> bool:
                return (await service.status())["queueFigures"]["budget"]["throttles"] > 0

            await eventually(throttled)
            await next_figures(ws, sales)  # still coming, at the rate the quota allows
            status = (await service.status())["queueFigures"]
            assert status["budget"]["currentRate"] < 5
            assert (await service.http.get("/readyz")).status_code == 200
        stats = await emulator.sim_stats()
        assert stats["getCurrentMetricData"]["byOutcome"].get("ThrottlingException", 0) >= 1


async def test_access_denied_goes_stale_then_recovers(emulator, redis_server):
    sales = emulator.queues["Sales"]
    await emulator.create_contact("Sales")
    async with service_with(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(queue=sales)
            fresh = await next_figures(ws, sales)
            await emulator.put_config(faults={"rates": {"AccessDeniedException": 1.0}})
            stale = await next_figures(ws, sales, lambda e: e["stale"])
            assert stale["waiting"] == fresh["waiting"]  # the last known figures
            status = (await service.status())["queueFigures"]
            assert status["accessDenied"] is not None
            body = (await service.http.get(f"/v1/queues/{sales}")).json()
            assert body["figures"]["stale"] is True
            await emulator.put_config(faults={"rates": {}})
            back = await next_figures(ws, sales, lambda e: not e["stale"])
            assert back["seq"] > stale["seq"]


async def test_connect_down_goes_stale_and_the_service_keeps_serving(redis_server):
    async with start_emulator_process(*QUIET_FLAGS) as emulator:
        sales = emulator.queues["sales"]
        extra = ("--read-timeout", "0.5", "--connect-timeout", "0.5")
        async with service_with(emulator, redis_server.url, *extra) as service:
            async with ws_client(service.ws_url) as ws:
                await ws.subscribe(queue=sales)
                first = await next_figures(ws, sales)
                assert first["name"] in (None, "sales")
                assert emulator.proc is not None
                await stop_process(emulator.proc)
                stale = await next_figures(ws, sales, lambda e: e["stale"])
                assert stale["seq"] > first["seq"]
                assert (await service.http.get("/readyz")).status_code == 200
                assert (await service.status())["queueFigures"]["lastError"] is not None
                await ws.send({"op": "ping"})
                assert (await ws.next_matching(lambda m: m["type"] == "pong"))["type"] == "pong"
