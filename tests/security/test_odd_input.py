"""Well-signed but odd input is a clear 4xx, never a 500 or a dead session (issue 14, item 9):
a token whose time claims are not numbers, and deeply nested JSON in a request body."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.security.conftest import expect_close
from tests.support.service import TEST_SECRET, start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e


def odd_token(**claims: object) -> str:
    body = {"aud": "queuecast", "exp": int(time.time()) + 600, "scope": "service", **claims}
    return jwt.encode(body, TEST_SECRET, algorithm="HS256")


ODD_CLAIMS = [
    {"exp": str(int(time.time()) + 600)},
    {"exp": True},
    {"iat": str(int(time.time()))},
    {"iat": [1]},
    {"nbf": "0"},
]


async def test_time_claims_that_are_not_numbers_are_refused(emulator):
    async with start_service_process(emulator, None) as service:
        async with httpx.AsyncClient(base_url=service.url) as client:
            for claims in ODD_CLAIMS:
                response = await client.get(
                    "/v1/status", headers={"Authorization": f"Bearer {odd_token(**claims)}"}
                )
                assert response.status_code == 401, (claims, response.text)
                assert response.json()["code"] == "unauthorized"
        for claims in ODD_CLAIMS:
            async with ws_client(service.ws_url, token=None) as ws:
                await ws.send({"op": "auth", "token": odd_token(**claims)})
                [error] = await expect_close(ws, 1008)
                assert error["code"] == "unauthorized", claims
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_auth_total{outcome="bad_claims"}' in metrics


async def test_deeply_nested_json_body_is_a_400(emulator):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, None) as service:
        for body in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 2500 + b"1" + b"}" * 2500):
            response = await service.http.put(
                f"/v1/contacts/{mine}", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, response.text
            assert response.json()["code"] == "bad_json"
        # The service is fine afterwards.
        assert (await service.http.put(f"/v1/contacts/{mine}")).status_code == 202
