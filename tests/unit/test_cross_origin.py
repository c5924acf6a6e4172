"""Which headers go where for pages of other origins: the policy alone, then through the app
(static files, preflights) over ASGI. In Chromium: tests/browser/test_cross_origin.py."""

from __future__ import annotations

import httpx
import pytest

from server.access.cross_origin import CrossOriginPolicy, Exposure, exposure_of
from server.app import create_app
from server.settings import Settings

SHOP = "https://shop.example.com"
STRANGER = "https://evil.example.net"


@pytest.mark.parametrize(
    ("path", "exposure"),
    [
        ("/static/queue-status.js", Exposure.PUBLIC_ASSET),
        ("/static/wallboard.html", Exposure.PUBLIC_ASSET),
        ("/v1/queues", Exposure.BROWSER_API),
        ("/v1/queues/q-1", Exposure.BROWSER_API),
        ("/v1/queuesX", Exposure.SAME_ORIGIN),
        ("/v1/contacts/abc", Exposure.SAME_ORIGIN),
        ("/v1/status", Exposure.SAME_ORIGIN),
        ("/metrics", Exposure.SAME_ORIGIN),
        ("/static", Exposure.SAME_ORIGIN),
    ],
)
def test_paths_by_exposure(path: str, exposure: Exposure) -> None:
    assert exposure_of(path) is exposure


def test_static_files_allow_listed_origins_only_and_vary() -> None:
    policy = CrossOriginPolicy((SHOP,))
    headers = dict(policy.response_headers("/static/queue-status.js", SHOP))
    assert headers == {
        "vary": "Origin",
        "cross-origin-resource-policy": "cross-origin",
        "access-control-allow-origin": SHOP,
    }
    refused = dict(policy.response_headers("/static/queue-status.js", STRANGER))
    assert "access-control-allow-origin" not in refused
    assert refused["vary"] == "Origin"  # a cache must not hand one origin's answer to another
    assert "access-control-allow-origin" not in dict(policy.response_headers("/static/x", None))


def test_any_origin_gets_a_wildcard() -> None:
    policy = CrossOriginPolicy(("*",))
    assert (
        dict(policy.response_headers("/static/x.js", STRANGER))["access-control-allow-origin"]
        == "*"
    )
    assert (
        dict(policy.response_headers("/v1/queues", STRANGER))["access-control-allow-origin"] == "*"
    )
    assert policy.preflight("/v1/queues/q", STRANGER, "GET", ["authorization"]).status == 204


def test_backend_paths_never_answer_other_origins() -> None:
    policy = CrossOriginPolicy(("*",))
    for path in ("/v1/contacts/c", "/v1/status", "/metrics", "/healthz"):
        assert policy.response_headers(path, SHOP) == [
            ("cross-origin-resource-policy", "same-origin")
        ]
        answer = policy.preflight(path, SHOP, "GET", ["authorization"])
        assert (answer.status, answer.headers) == (403, ())


def test_preflights_for_the_wallboards_reads() -> None:
    policy = CrossOriginPolicy((SHOP,))
    ok = policy.preflight("/v1/queues/q", SHOP, "GET", [" Authorization"])
    assert ok.status == 204 and ok.refusal is None
    assert dict(ok.headers) == {
        "access-control-allow-origin": SHOP,
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": "Authorization",
        "access-control-max-age": "600",
        "vary": "Origin",
    }
    for origin, method, asked in [
        (STRANGER, "GET", ["authorization"]),
        (SHOP, "DELETE", ["authorization"]),
        (SHOP, "GET", ["authorization", "x-custom"]),
    ]:
        refused = policy.preflight("/v1/queues/q", origin, method, asked)
        assert refused.status == 403 and refused.refusal, (origin, method, asked)
    # Static files need no request headers: asking for one is refused.
    assert policy.preflight("/static/x.js", SHOP, "GET", ["authorization"]).status == 403
    assert policy.preflight("/static/x.js", SHOP, "GET", [""]).status == 204


def test_configured_origins_are_compared_as_browsers_send_them() -> None:
    settings = Settings.load(
        environ={
            "QUEUECAST_ALLOWED_ORIGINS": "HTTPS://Shop.Example.com:443,http://b:80,http://c:81"
        }
    )
    assert settings.allowed_origins == ("https://shop.example.com", "http://b", "http://c:81")
    assert Settings.load(environ={"QUEUECAST_ALLOWED_ORIGINS": "*"}).allowed_origins == ("*",)


@pytest.fixture
def client() -> httpx.AsyncClient:
    # No lifespan: static files and preflights need none of the runtime.
    app = create_app(Settings(allowed_origins=(SHOP,), allow_anonymous=True))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def test_the_app_sends_them_on_static_files_and_answers_preflights(client) -> None:
    async with client:
        script = await client.get("/static/queue-status.js", headers={"Origin": SHOP})
        assert script.status_code == 200
        assert script.headers["access-control-allow-origin"] == SHOP
        assert script.headers["cross-origin-resource-policy"] == "cross-origin"
        assert script.headers["vary"] == "Origin"
        assert (
            "frame-ancestors 'self' https://shop.example.com"
            in (script.headers["content-security-policy"])
        )
        # A revalidation answers 304 with the same headers, or the browser's cached copy
        # would be refused on the next page load.
        again = await client.get(
            "/static/queue-status.js",
            headers={"Origin": SHOP, "If-None-Match": script.headers["etag"]},
        )
        assert again.status_code == 304
        assert again.headers["access-control-allow-origin"] == SHOP

        stranger = await client.get("/static/queue-status.js", headers={"Origin": STRANGER})
        assert stranger.status_code == 200  # readable by anything but a browser page
        assert "access-control-allow-origin" not in stranger.headers

        preflight = await client.options(
            "/v1/queues/q-1",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-headers"] == "Authorization"
        refused = await client.options(
            "/v1/contacts/c-1",
            headers={"Origin": SHOP, "Access-Control-Request-Method": "PUT"},
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        assert "access-control-allow-origin" not in refused.headers

        health = await client.get("/healthz", headers={"Origin": SHOP})
        assert "access-control-allow-origin" not in health.headers
        assert health.headers["cross-origin-resource-policy"] == "same-origin"
