"""`SessionAccess` with a fake owner: what it asks of its session, when."""

from __future__ import annotations

import asyncio
import json

from server.access.policy import AccessPolicy
from server.access.tokens import Grant, TokenVerifier, mint
from server.browser.config import GatewayConfig
from server.browser.session_access import SessionAccess

SECRET = "session-access-unit-test-secret-0123456789"


class Owner:
    """Records what the access asks of its session."""

    def __init__(self) -> None:
        self.said: list[tuple[str, ...]] = []
        self.granted_with: list[tuple[str, bool]] = []

    def send_error(self, code: str, message: str, contact: str | None = None) -> None:
        self.said.append(("error", code))

    def send_control(self, frame: str) -> None:
        self.said.append(("control", json.loads(frame)["type"]))

    def request_close(self, code: int, reason: str) -> None:
        self.said.append(("close", str(code), reason))

    def token_expired(self) -> None:
        self.said.append(("expired",))

    async def granted(self, grant: Grant, resuming: bool) -> None:
        self.granted_with.append((grant.scope, resuming))


def access(**config: object) -> SessionAccess:
    config.setdefault("access", AccessPolicy(TokenVerifier({None: SECRET}, leeway=0)))
    return SessionAccess(GatewayConfig(**config))  # type: ignore[arg-type]


async def test_anonymous_mode_admits_events_from_the_start() -> None:
    a = SessionAccess(GatewayConfig(access=AccessPolicy(TokenVerifier(), allow_anonymous=True)))
    assert a.admits_events
    owner = Owner()
    await a.authenticate("anything", owner)
    assert owner.said == [("error", "unsupported")], "no keys to check a token with"


async def test_no_token_within_auth_timeout_closes() -> None:
    a, owner = access(auth_timeout=0.02), Owner()
    await a.start(None, owner)
    assert not a.admits_events
    await asyncio.sleep(0.05)
    assert owner.said == [("error", "unauthorized"), ("close", "1008", "authentication timeout")]


async def test_a_bad_token_closes_and_a_good_one_grants() -> None:
    a, owner = access(), Owner()
    await a.authenticate("not-a-token", owner)
    assert owner.said == [("error", "unauthorized"), ("close", "1008", "unauthorized")]
    a, owner = access(auth_timeout=0.02), Owner()
    await a.start(mint(SECRET, scope="service"), owner)
    await asyncio.sleep(0.05)
    assert a.admits_events
    assert owner.said == [("control", "authenticated")], "the auth deadline was cancelled"
    assert owner.granted_with == [("service", False)]
    a.cancel_deadline()


async def test_expiry_stops_events_then_reauth_resumes_or_the_deadline_closes() -> None:
    a, owner = access(reauth_timeout=0.05), Owner()
    await a.authenticate(mint(SECRET, scope="service", ttl=1), owner)
    async with asyncio.timeout(3):
        while a.admits_events:
            await asyncio.sleep(0.01)
    assert owner.said[-2:] == [("expired",), ("error", "token_expired")]
    await a.authenticate(mint(SECRET, scope="service"), owner)
    assert owner.granted_with[-1] == ("service", True), "resuming"
    await asyncio.sleep(0.1)
    assert ("close", "1008", "token expired") not in owner.said
    a.cancel_deadline()

    a, owner = access(reauth_timeout=0.05), Owner()
    await a.authenticate(mint(SECRET, scope="service", ttl=1), owner)
    async with asyncio.timeout(3):
        while ("close", "1008", "token expired") not in owner.said:
            await asyncio.sleep(0.01)


async def test_the_clock_counts_even_before_the_timer_runs() -> None:
    a, owner = access(), Owner()
    await a.authenticate(mint(SECRET, scope="service", ttl=1), owner)
    a.cancel_deadline()  # as if the timer had not run yet
    assert not a.lapsed(owner)
    await asyncio.sleep(1.05)
    assert a.lapsed(owner)
    assert not a.admits_events and ("expired",) in owner.said
    a.cancel_deadline()
