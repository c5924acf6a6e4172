"""WebSocket authentication and scopes, against a running service: every rule, both ways."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest
import websockets

from tests.security.conftest import expect_close, is_event
from tests.support.service import TEST_SECRET, mint_test_token, start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

KEY_2 = "second-key-for-rotation-0123456789abcdef"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def test_tokens_accepted_and_refused(emulator):
    """Good tokens (default key, a rotated key by kid) authenticate; each bad one gets
    `unauthorized` and 1008; so do a subscription before auth and a silent socket."""
    extra = ("--token-keys", f"k2:{KEY_2}", "--auth-timeout", "1")
    async with start_service_process(emulator, None, *extra) as service:
        for token, scope in [
            (mint_test_token(), "service"),
            (mint_test_token(secret=KEY_2, kid="k2"), "service"),
            (mint_test_token("queues", queues=["*"]), "queues"),
        ]:
            async with ws_client(service.ws_url, token=None) as ws:
                reply = await ws.auth(token)
                assert reply["type"] == "authenticated" and reply["scope"] == scope
                assert abs(reply["exp"] - (time.time() + 3600)) < 60

        now = time.time()
        bad = {
            "garbage": "not-a-token",
            "bad signature": mint_test_token(secret="x" * 40),
            "wrong kid": mint_test_token(secret=KEY_2, kid="k9"),
            "kid of another key": mint_test_token(kid="k2"),
            "expired": mint_test_token(ttl=60, now=now - 3600),
            "wrong aud": mint_test_token(audience="another-service"),
            "too long-lived": mint_test_token(ttl=10 * 86400),
            "alg none": jwt.encode(
                {"aud": "queuecast", "exp": int(now) + 60, "scope": "service"}, None, "none"
            ),
        }
        for case, token in bad.items():
            async with ws_client(service.ws_url, token=None) as ws:
                await ws.send({"op": "auth", "token": token})
                [error] = await expect_close(ws, 1008)
                assert error["type"] == "error" and error["code"] == "unauthorized", case
                assert token not in error["message"]

        async with ws_client(service.ws_url, token=None) as ws:
            await ws.subscribe(UNKNOWN)
            [error] = await expect_close(ws, 1008)
            assert error["code"] == "unauthorized"
            assert "contact" not in error

        async with ws_client(service.ws_url, token=None) as ws:  # says nothing at all
            started = time.monotonic()
            [error] = await expect_close(ws, 1008, timeout=5)
            assert error["code"] == "unauthorized"
            assert 0.8 < time.monotonic() - started < 4

        async with ws_client(service.ws_url, token=None) as ws:  # pings are not auth
            for _ in range(3):
                await ws.send({"op": "ping"})
                assert (await ws.next())["type"] == "pong"
                await asyncio.sleep(0.25)
            await expect_close(ws, 1008, timeout=5)

        metrics = (await service.http.get("/metrics")).text
        for outcome in ("ok", "bad_signature", "unknown_kid", "expired", "wrong_audience"):
            assert f'queuecast_auth_total{{outcome="{outcome}"}}' in metrics, outcome
        assert 'queuecast_limit_hits_total{limit="auth_timeout"}' in metrics
        assert TEST_SECRET not in metrics and "eyJ" not in metrics


async def test_token_in_subprotocol(emulator):
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, None) as service:
        token = mint_test_token("contact", contact=mine)
        async with websockets.connect(
            service.ws_url, subprotocols=["queuecast.v1", f"bearer.{token}"]
        ) as conn:
            assert conn.subprotocol == "queuecast.v1"
            assert token not in str(conn.response.headers)
            ws = ws_client_of(conn)
            assert (await ws.next())["type"] == "authenticated"
            await ws.subscribe(mine)
            assert (await ws.next())["contact"] == mine
        forged = mint_test_token("contact", contact=mine, secret="f" * 40)
        async with websockets.connect(
            service.ws_url, subprotocols=["queuecast.v1", f"bearer.{forged}"]
        ) as conn:
            ws = ws_client_of(conn)
            [error] = await expect_close(ws, 1008)
            assert error["code"] == "unauthorized"


def ws_client_of(conn):
    from tests.support.wsclient import WsClient  # noqa: PLC0415

    return WsClient(conn)


async def test_contact_token_sees_its_contact_only(emulator):
    ahead, mine, other = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
    support = (await emulator.create_contact("support"))["contactId"]
    async with start_service_process(emulator, None) as service:
        # Someone else watches the other contacts, so they exist and are polled.
        async with ws_client(service.ws_url) as backend:
            for contact in (other, support):
                await backend.subscribe(contact)
            await backend.next_matching(lambda m: m.get("contact") == other)
            token = mint_test_token("contact", contact=mine, instance=emulator.instance_id)
            async with ws_client(service.ws_url, token=token) as widget:
                replies = []
                for request in (
                    {"contact": other},  # exists, polled
                    {"contact": UNKNOWN},  # never existed
                    {"contact": mine, "instance": str(uuid.uuid4())},  # another instance
                    {"queue": emulator.queues["sales"]},
                ):
                    await widget.subscribe(**request)
                    replies.append(await widget.next())
                assert all(r == replies[0] for r in replies), replies
                assert replies[0]["type"] == "error" and replies[0]["code"] == "forbidden"
                assert set(replies[0]) == {"type", "code", "message"}
                await widget.subscribe(mine)
                snapshot = await widget.next()
                assert snapshot["contact"] == mine and snapshot["type"] == "snapshot"
                # The first position may be inferred (the queue book) before a read confirms it.
                if snapshot["position"] != 2 or snapshot["stale"]:
                    await widget.next_matching(lambda m: m.get("position") == 2 and not m["stale"])
                await emulator.connect(ahead)
                update = await widget.next()
                assert update["contact"] == mine and update["position"] == 1
                await emulator.connect(support)  # an event the backend gets, not the widget
                await backend.next_matching(lambda m: m.get("contact") == support)
                await widget.send({"op": "ping"})
                assert await widget.next() == {"type": "pong"}
                assert all(m.get("contact") in (None, mine) for m in widget.seen)


async def test_queues_token_sees_its_queues_only(emulator):
    sales = [(await emulator.create_contact("sales"))["contactId"] for _ in range(2)]
    support = (await emulator.create_contact("support"))["contactId"]
    async with start_service_process(emulator, None) as service:
        async with ws_client(service.ws_url) as backend:
            for contact in (*sales, support):
                await backend.subscribe(contact)
            for _ in range(3):
                await backend.next()
            token = mint_test_token("queues", queues=[emulator.queues["sales"]])
            async with ws_client(service.ws_url, token=token) as board:
                for request in ({"queue": emulator.queues["support"]}, {"contact": sales[0]}):
                    await board.subscribe(**request)
                    error = await board.next()
                    assert error["code"] == "forbidden" and "contact" not in error
                await board.subscribe(queue=emulator.queues["sales"])
                snapshots = [await board.next() for _ in sales]
                assert {s["contact"] for s in snapshots} == set(sales)
                await emulator.connect(support)
                await emulator.connect(sales[0])
                ended = await board.next_matching(lambda m: m["type"] == "ended")
                assert ended["contact"] == sales[0]
                await board.send({"op": "ping"})
                await board.next_matching(lambda m: m["type"] == "pong")
                events = [m for m in board.seen if is_event(m)]
                assert all(m["queue"] == emulator.queues["sales"] for m in events)
            any_queue = mint_test_token("queues", queues=["*"])
            async with ws_client(service.ws_url, token=any_queue) as board:
                await board.subscribe(queue=emulator.queues["support"])
                await board.send({"op": "ping"})
                # Allowed: no error before the pong (a snapshot of the support contact may come
                # first if its end has not been polled yet).
                await board.next_matching(lambda m: m["type"] == "pong")
                assert not [m for m in board.seen if m["type"] == "error"]


async def test_token_expiring_mid_stream_then_reauth_on_the_same_socket(emulator):
    ahead = [(await emulator.create_contact("sales"))["contactId"] for _ in range(2)]
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with start_service_process(emulator, None, "--token-leeway", "0") as service:
        short = mint_test_token("contact", contact=mine, ttl=3)
        async with ws_client(service.ws_url, token=short) as widget:
            await widget.subscribe(mine)
            assert (await widget.next())["position"] == 3
            expired = await widget.next(timeout=6)
            assert expired["type"] == "error" and expired["code"] == "token_expired"
            await emulator.connect(ahead[0])  # position 2: not for an expired socket
            await widget.expect_silence(2.0)
            await widget.subscribe(mine)
            assert (await widget.next())["code"] == "token_expired"
            fresh = mint_test_token("contact", contact=mine)
            assert (await widget.auth(fresh))["type"] == "authenticated"
            resumed = await widget.next()
            assert resumed["type"] == "snapshot" and resumed["position"] == 2
            await emulator.connect(ahead[1])
            update = await widget.next()
            assert update["type"] == "update" and update["position"] == 1
