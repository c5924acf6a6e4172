"""`/readyz` says whether this replica can serve, in reason codes only (issue 14, item 4).

Amazon Connect denying access is the account's problem, shared by every replica: it must not
take them all out of the load balancer. Its details (and a Redis outage's) go to the logs and
to `/v1/status`, which needs a service token, never to the open `/readyz`.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

REASON_CODE = re.compile(r"[a-z_]+")


async def test_access_denied_keeps_the_replica_ready_and_says_so_only_to_services(
    emulator, redis_server, tmp_path
):
    mine = (await emulator.create_contact("sales"))["contactId"]
    log = tmp_path / "stderr.log"
    async with start_service_process(emulator, redis_server.url, stderr=log) as service:
        await emulator.put_config(faults={"rates": {"AccessDeniedException": 1.0}})
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(mine)
            async with asyncio.timeout(10):
                while not (status := await service.status())["connect"]["accessDenied"]:
                    await asyncio.sleep(0.1)
            assert "AccessDeniedException" in status["connect"]["accessDenied"]
            async with httpx.AsyncClient(base_url=service.url) as anonymous:
                for _ in range(5):
                    ready = await anonymous.get("/readyz")
                    assert ready.status_code == 200, ready.text
                    assert ready.json() == {"ready": True}
                    await asyncio.sleep(0.2)
    assert "Amazon Connect denied access" in log.read_text()


async def test_an_unreachable_bus_is_a_reason_code_without_details(emulator, redis_server):
    async with start_service_process(emulator, redis_server.url) as service:
        async with httpx.AsyncClient(base_url=service.url) as anonymous:
            assert (await anonymous.get("/readyz")).json() == {"ready": True}
            await redis_server.kill()
            async with asyncio.timeout(10):
                while (ready := await anonymous.get("/readyz")).status_code == 200:
                    await asyncio.sleep(0.1)
            assert ready.status_code == 503
            body = ready.json()
            assert body["ready"] is False and body["reasons"], body
            assert all(REASON_CODE.fullmatch(reason) for reason in body["reasons"]), body
            assert str(redis_server.port) not in ready.text
            # It recovers by itself once Redis is back.
            await redis_server.start()
            async with asyncio.timeout(15):
                while (await anonymous.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.1)
