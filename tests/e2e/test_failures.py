"""Every way Amazon Connect can answer badly, and what subscribers see."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import TIMEOUT_SCALE
from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("leave_mode", "reason"),
    # "empty": the metrics answer without the metrics; the DescribeContact that follows says
    # the caller hung up. "invalid": InvalidRequestException, nothing more is asked.
    [("empty", "disconnected"), ("not-found", "not_found"), ("invalid", "left_queue")],
)
async def test_each_leave_mode_ends_the_contact(emulator, redis_server, leave_mode, reason):
    await emulator.put_config(leaveMode=leave_mode)
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            assert (await ws.next())["type"] == "snapshot"
            await emulator.abandon(mine)
            ended = await ws.next()
            assert ended["type"] == "ended"
            assert ended["reason"] == reason
        stats = await emulator.sim_stats()
        polls = stats["getContactMetrics"]["byContact"][mine]
        await asyncio.sleep(1.5)
        stats = await emulator.sim_stats()
        assert stats["getContactMetrics"]["byContact"][mine] == polls


async def test_invalid_parameter_ends_with_reason_invalid(emulator, redis_server):
    mine = (await emulator.create_contact("sales"))["contactId"]
    await emulator.put_config(faults={"rates": {"InvalidParameterException": 1.0}})
    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            ended = await ws.next()
            assert ended["type"] == "ended"
            assert ended["reason"] == "invalid"


async def test_server_errors_go_stale_then_recover(emulator, redis_server):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url, "--stale-after", "1.5") as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            first = await ws.next()
            assert first["stale"] is False
            await emulator.put_config(faults={"rates": {"InternalServiceException": 1.0}})
            stale = await ws.next(timeout=10)
            assert stale["stale"] is True
            assert stale["position"] == first["position"]
            assert stale["seq"] > first["seq"]
            # The contact stays tracked and keeps being retried (with backoff).
            assert (await service.status())["tracked"] == 1
            await emulator.put_config(faults={"rates": {}})
            fresh = await ws.next(timeout=15)
            assert fresh["stale"] is False
            assert fresh["seq"] > stale["seq"]


async def test_timeouts_go_stale_then_recover(emulator, redis_server):
    mine = (await emulator.create_contact("sales"))["contactId"]
    extra = ("--stale-after", "1.5", "--read-timeout", "0.5", "--connect-timeout", "0.5")
    async with start_service_process(emulator, redis_server.url, *extra) as service:
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            await ws.next()
            await emulator.put_config(faults={"stall": True})
            stale = await ws.next(timeout=10)
            assert stale["stale"] is True
            await emulator.put_config(faults={"stall": False})
            fresh = await ws.next(timeout=20)
            assert fresh["stale"] is False


async def test_access_denied_is_reported_and_keeps_the_contact(emulator, redis_server):
    """AccessDenied shows in /v1/status (not /readyz: it is the account's, not the
    replica's, tests/security/test_readiness.py) and the contact stays tracked."""
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, redis_server.url) as service:
        await emulator.put_config(faults={"rates": {"AccessDeniedException": 1.0}})
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            async with asyncio.timeout(10):
                while not (status := await service.status())["connect"]["accessDenied"]:
                    await asyncio.sleep(0.1)
            assert status["tracked"] == 1
            assert (await service.http.get("/readyz")).status_code == 200


async def test_quota_at_the_configured_rate_is_never_exceeded(emulator, redis_server):
    """Emulator quota 2/s burst 5 (the default) = the service's budget: zero throttles."""
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(12)]

    async def unpolled() -> list[str]:
        by_contact = (await emulator.sim_stats())["getContactMetrics"]["byContact"]
        return [c for c in contacts if by_contact.get(c, 0) < 1]

    async with start_service_process(emulator, redis_server.url) as service:
        async with ws_client(service.ws_url) as ws:
            for contact in contacts:
                await ws.subscribe(contact)
            # At 2/s the last of 12 first polls comes ~6 s in (the earliest-due ones are
            # polled again meanwhile); wait for it rather than for a fixed time, which left
            # 0.2 s to spare on an idle machine.
            async with asyncio.timeout(20 * TIMEOUT_SCALE):
                while await unpolled():
                    await asyncio.sleep(0.1)
            status = await service.status()
    stats = await emulator.sim_stats()
    assert stats["getContactMetrics"]["byOutcome"].get("ThrottlingException", 0) == 0
    # 12 contacts at 2/s stretch the interval to 6 s, and every contact was polled.
    assert status["effectiveInterval"] == pytest.approx(6.0)
    assert await unpolled() == []


async def test_throttling_slows_down_and_drops_nothing(emulator, redis_server):
    """The emulator's quota is below the configured rate: AIMD finds it, no contact is lost."""
    await emulator.put_config(quota={"enabled": True, "rps": 1.0, "burst": 1})
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(4)]
    async with start_service_process(emulator, redis_server.url, "--rps", "4") as service:
        async with ws_client(service.ws_url) as ws:
            for contact in contacts:
                await ws.subscribe(contact)
            got = set()
            async with asyncio.timeout(20):
                while len(got) < len(contacts):
                    got.add((await ws.next())["contact"])
            await asyncio.sleep(4.0)
            status = await service.status()
    assert status["budget"]["throttles"] >= 1
    assert status["budget"]["currentRate"] < 4
    assert status["tracked"] == 4
