"""GetContactMetrics calls do not depend on how many sockets watch a contact.

Two groups of contacts polled by one service over the same window: one watched by a single
socket each, one by twenty sockets each. The emulator's own counts must match per contact
within one call (a poll can straddle the window's edges). Counts, not speed: no timing asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics

import pytest

from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

WATCHERS = 20


async def test_calls_per_contact_do_not_depend_on_watchers(emulator, redis_server):
    await emulator.put_config(quota={"enabled": False})
    lone = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
    crowded = [(await emulator.create_contact("support"))["contactId"] for _ in range(3)]
    async with (
        start_service_process(emulator, redis_server.url, "--rps", "50") as service,
        contextlib.AsyncExitStack() as stack,
    ):
        plan = [(c, 1) for c in lone] + [(c, WATCHERS) for c in crowded]
        sockets = []
        for contact, watchers in plan:
            for _ in range(watchers):
                ws = await stack.enter_async_context(ws_client(service.ws_url))
                await ws.subscribe(contact)
                sockets.append(ws)
        for ws in sockets:
            assert (await ws.next())["type"] == "snapshot"

        await emulator.reset_stats()
        await asyncio.sleep(3.0)  # six poll intervals of 0.5 s
        calls = (await emulator.sim_stats())["getContactMetrics"]["byContact"]

    lone_calls = [calls.get(c, 0) for c in lone]
    crowded_calls = [calls.get(c, 0) for c in crowded]
    assert all(n >= 3 for n in lone_calls + crowded_calls), calls
    reference = statistics.median(lone_calls)
    for n in crowded_calls:
        assert abs(n - reference) <= 1, (lone_calls, crowded_calls)
