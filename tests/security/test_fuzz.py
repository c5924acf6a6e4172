"""Hostile clients in bulk: hypothesis generates thousands of arbitrary frames (random JSON,
protocol-shaped messages with wrong values, forged and foreign tokens, bytes, deep nesting,
huge numbers, unicode), sent from many sockets at once, while a well-behaved widget watches
its contact and a wallboard watches its queue.

Properties: the service never crashes; the widget and wallboard only ever receive messages
about what their tokens allow and keep getting real updates promptly; no fuzzing socket
receives an event outside its own token; and the service's log (its stderr, at DEBUG) holds
no token, no secret, and no raw contact id (`log_contact_ids=hash`, the default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.security.conftest import dump, is_event
from tests.support.emulator import EmulatorHandle
from tests.support.service import TEST_SECRET, mint_test_token, start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

FRAMES = 3000
SOCKETS = 24
UPDATE_WITHIN = 10.0  # generous: a real update reaches the good clients within this
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def generate_frames(ids: list[str], tokens: list[str], count: int) -> list[str | bytes]:
    """`count` frames drawn by hypothesis (generation only: the property is checked on the
    service afterwards, not per example)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**200), max_value=2**200)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=40)
        | st.sampled_from(ids)
    )
    json_values = st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=20,
    )
    shaped = st.fixed_dictionaries(
        {"op": st.sampled_from(["subscribe", "unsubscribe", "ping", "auth", "SUBSCRIBE", ""])},
        optional={
            "contact": st.sampled_from(ids) | scalars,
            "queue": st.sampled_from(["*", "sales", *ids]) | scalars,
            "instance": st.sampled_from(ids) | scalars,
            "since": st.integers(min_value=-(2**70), max_value=2**70) | scalars,
            "token": st.sampled_from(tokens) | st.text(max_size=60),
        },
    )
    frames = st.one_of(
        shaped.map(json.dumps),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.text(max_size=200),
        st.binary(max_size=200),
        st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
        st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
        st.integers(min_value=300, max_value=4000).map(lambda n: "9" * n),
    )
    drawn: list[str | bytes] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[__import__("hypothesis").Phase.generate],
    )
    @given(frames)
    def collect(frame: str | bytes) -> None:
        drawn.append(frame)

    collect()
    return drawn


@dataclass
class Fuzzer:
    """One hostile client: reconnects whenever the service closes it, and checks that no
    event it receives is outside the token it is using at the time."""

    url: str
    identities: list[tuple[str | None, set[str], set[str]]]  # token, contacts, queues
    frames: list[str | bytes]
    violations: list[str] = field(default_factory=list)
    sent: int = 0
    closes: int = 0

    async def run(self) -> None:
        rng = random.Random(len(self.frames))
        position = 0
        while position < len(self.frames):
            token, contacts, queues = rng.choice(self.identities)
            try:
                async with websockets.connect(self.url, open_timeout=10, max_size=2**20) as conn:
                    reader = asyncio.create_task(self._read(conn, contacts, queues))
                    try:
                        if token is not None:
                            await conn.send(json.dumps({"op": "auth", "token": token}))
                        while position < len(self.frames):
                            await conn.send(self.frames[position])
                            position += 1
                            self.sent += 1
                            if rng.random() < 0.3:
                                await asyncio.sleep(0)
                        await asyncio.sleep(0.2)
                    finally:
                        reader.cancel()
                        await asyncio.gather(reader, return_exceptions=True)
            except (ConnectionClosed, InvalidStatus, OSError):
                self.closes += 1
                position += 1  # the frame that met a closed socket is skipped

    async def _read(self, conn: Any, contacts: set[str], queues: set[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in conn:
                message = json.loads(raw)
                if not isinstance(message, dict) or "type" not in message:
                    self.violations.append(f"not a message: {raw!r}")
                elif is_event(message) and not (
                    message["contact"] in contacts or message["queue"] in queues
                ):
                    self.violations.append(f"outside its token: {raw}")


def shows_queue(message: dict[str, Any]) -> bool:
    """A contact's event, or the queue's own figures (a `queue` event), that a board gets."""
    return is_event(message) or message.get("type") == "queue"


async def watch(ws, ok, log):
    """Read everything a good client gets; record what is not allowed."""
    with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
        while True:
            message = await ws.next(timeout=3600)
            if not ok(message):
                log.append(message)


async def test_fuzzing_many_sockets_while_good_clients_watch(emulator: EmulatorHandle, tmp_path):
    queue = [(await emulator.create_contact("sales"))["contactId"] for _ in range(8)]
    mine = queue[-1]
    victims = [(await emulator.create_contact("support"))["contactId"] for _ in range(2)]
    sales, support = emulator.queues["sales"], emulator.queues["support"]
    stderr = tmp_path / "service.log"
    flags = (
        "--max-messages-per-second", "500",
        "--rate-limit-strikes", "1000",
        "--max-sockets-per-ip", "200",
        "--auth-timeout", "2",
        "--log-level", "DEBUG",
    )  # fmt: skip
    async with start_service_process(emulator, None, *flags, stderr=stderr) as service:
        widget_token = mint_test_token("contact", contact=mine)
        board_token = mint_test_token("queues", queues=[support])
        victim_tokens = [mint_test_token("contact", contact=v) for v in victims]
        forged = [
            mint_test_token("service", secret="f" * 40),
            mint_test_token("contact", contact=mine, audience="elsewhere"),
            mint_test_token("contact", contact=mine, ttl=1, now=0),
            mint_test_token("queues", queues=["*"], kid="nope"),
        ]
        # Hostile identities: nothing, forged tokens, or honest tokens for other things.
        identities: list[tuple[str | None, set[str], set[str]]] = [
            (None, set(), set()),
            *((t, set(), set()) for t in forged),
            *((t, {v}, set()) for t, v in zip(victim_tokens, victims, strict=True)),
            (
                mint_test_token("queues", queues=["sales-not-this-one"]),
                set(),
                {"sales-not-this-one"},
            ),
        ]
        all_tokens = [widget_token, board_token, *victim_tokens, *forged]
        frames = generate_frames([mine, *victims, UNKNOWN, sales, support], all_tokens, FRAMES)
        # One client even puts its token in the URL (never honoured, never logged).
        url_token = mint_test_token("contact", contact=victims[0])

        widget_bad: list[dict[str, Any]] = []
        board_bad: list[dict[str, Any]] = []
        async with (
            ws_client(service.ws_url, token=widget_token) as widget,
            ws_client(service.ws_url, token=board_token) as board,
        ):
            await widget.subscribe(mine)
            first = await widget.next()
            assert first["contact"] == mine and first["position"] == len(queue)
            for victim in victims:  # tracked by the backend, so the queue has members
                assert (await service.http.put(f"/v1/contacts/{victim}")).status_code == 202
            async with asyncio.timeout(10):
                for victim in victims:
                    while (await service.http.get(f"/v1/contacts/{victim}")).status_code != 200:
                        await asyncio.sleep(0.1)
            await board.subscribe(queue=support)
            for _ in victims:
                assert (await board.next())["queue"] == support
            watchers = [
                asyncio.create_task(
                    watch(widget, lambda m: m.get("contact") == mine and is_event(m), widget_bad)
                ),
                asyncio.create_task(
                    watch(board, lambda m: shows_queue(m) and m["queue"] == support, board_bad)
                ),
            ]
            share = FRAMES // SOCKETS
            fuzzers = [
                Fuzzer(service.ws_url, identities, frames[i * share : (i + 1) * share])
                for i in range(SOCKETS)
            ]
            with contextlib.suppress(InvalidStatus, ConnectionClosed):
                async with websockets.connect(f"{service.ws_url}?token={url_token}") as conn:
                    await conn.send('{"op":"subscribe","contact":"' + victims[0] + '"}')
                    reply = json.loads(await conn.recv())
                    assert reply["code"] == "unauthorized"
            fuzzing = asyncio.gather(*(f.run() for f in fuzzers))
            try:
                # Meanwhile the queue moves; each move reaches the widget promptly.
                expected = len(queue)
                for ahead in queue[:3]:
                    await asyncio.sleep(1.0)
                    await emulator.connect(ahead)
                    expected -= 1
                    async with asyncio.timeout(UPDATE_WITHIN):
                        while widget.seen[-1].get("position") != expected:
                            await asyncio.sleep(0.05)
                await emulator.connect(victims[0])
                async with asyncio.timeout(UPDATE_WITHIN):
                    while not any(
                        m.get("contact") == victims[0] and m["type"] == "ended" for m in board.seen
                    ):
                        await asyncio.sleep(0.05)
                await asyncio.wait_for(fuzzing, 90)
            finally:
                fuzzing.cancel()
                await asyncio.gather(fuzzing, return_exceptions=True)
            # Still serving, and promptly, after the storm.
            await emulator.connect(queue[3])
            async with asyncio.timeout(UPDATE_WITHIN):
                while widget.seen[-1].get("position") != expected - 1:
                    await asyncio.sleep(0.05)
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

        assert sum(f.sent for f in fuzzers) >= FRAMES * 0.9
        assert not [v for f in fuzzers for v in f.violations], [
            v for f in fuzzers for v in f.violations
        ][:5]
        assert not widget_bad, dump(widget_bad)
        assert not board_bad, dump(board_bad)
        assert service.proc.returncode is None
        assert (await service.http.get("/healthz")).status_code == 200
        async with asyncio.timeout(10):
            while (await service.status())["sockets"] != 0:
                await asyncio.sleep(0.1)
        metrics = (await service.http.get("/metrics")).text
    log = stderr.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert '"level":"error"' not in log
    for secret in [TEST_SECRET, url_token, *all_tokens]:
        assert secret not in log and secret[-16:] not in log  # not even its signature's tail
        assert secret not in metrics
    assert not re.search(r"eyJ[A-Za-z0-9_-]{6,}", log)
    assert mine not in log and victims[0] not in log  # hashed (log_contact_ids=hash)
    assert "[token]" in log  # the URL token was scrubbed from uvicorn's access line
