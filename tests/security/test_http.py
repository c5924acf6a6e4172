"""The HTTP API needs a service token; health, readiness, metrics and static files stay open;
every response carries the security headers."""

from __future__ import annotations

import httpx
import pytest

from tests.support.service import mint_test_token, start_service_process

pytestmark = pytest.mark.e2e


async def test_http_api_needs_a_service_token(emulator):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, None) as service:
        async with httpx.AsyncClient(base_url=service.url) as anonymous:
            for method, path in [
                ("GET", f"/v1/contacts/{mine}"),
                ("PUT", f"/v1/contacts/{mine}"),
                ("DELETE", f"/v1/contacts/{mine}"),
                ("GET", "/v1/status"),
            ]:
                missing = await anonymous.request(method, path)
                assert missing.status_code == 401, path
                assert missing.json()["code"] == "unauthorized"
                assert missing.headers["www-authenticate"].startswith("Bearer")
                for token in ("garbage", mint_test_token(secret="z" * 40)):
                    forged = await anonymous.request(
                        method, path, headers={"Authorization": f"Bearer {token}"}
                    )
                    assert forged.status_code == 401, path
                for scope, claims in [
                    ("contact", {"contact": mine}),
                    ("queues", {"queues": ["*"]}),
                ]:
                    token = mint_test_token(scope, **claims)
                    wrong = await anonymous.request(
                        method, path, headers={"Authorization": f"Bearer {token}"}
                    )
                    assert wrong.status_code == 403, (path, scope)
                    assert wrong.json()["code"] == "forbidden"
            for path in ("/healthz", "/readyz", "/metrics"):
                response = await anonymous.get(path)
                assert response.status_code == 200, path
                assert response.headers["x-content-type-options"] == "nosniff"
                assert response.headers["referrer-policy"] == "no-referrer"
                assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
            # Nothing was tracked by any of them.
        status = await service.status()
        assert status["tracked"] == 0
        put = await service.http.put(f"/v1/contacts/{mine}")
        assert put.status_code == 202
        huge = await service.http.put(f"/v1/contacts/{mine}", content=b"x" * 100_000)
        assert huge.status_code == 413
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="body_size"}' in metrics
        assert 'queuecast_limit_hits_total{limit="scope"} 8.0' in metrics
