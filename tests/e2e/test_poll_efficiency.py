"""GetContactMetrics calls do not depend on how many sockets watch a contact.

Three groups of contacts polled by one service over the same window: one watched by a single
socket each, one by twenty sockets each, and one by twenty sockets that each subscribe to every
contact of the group (a wallboard-like socket holding several subscriptions). The emulator's
own counts must match per contact within one call (a poll can straddle the window's edges).
Counts, not speed: no timing asserts. `bench/poll_efficiency.py` does the same at 1, 10 and 100
watchers, with fewer sockets and with two replicas.
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
    shared = [(await emulator.create_contact("billing"))["contactId"] for _ in range(3)]
    # The contacts of each socket.
    plan = [[c] for c in lone] + [[c] for c in crowded for _ in range(WATCHERS)]
    plan += [shared] * WATCHERS
    async with (
        start_service_process(emulator, redis_server.url, "--rps", "50") as service,
        contextlib.AsyncExitStack() as stack,
    ):
        sockets = []
        for contacts in plan:
            ws = await stack.enter_async_context(ws_client(service.ws_url))
            for contact in contacts:
                await ws.subscribe(contact)
            sockets.append((ws, contacts))
        for ws, contacts in sockets:
            for _ in contacts:
                assert (await ws.next())["type"] == "snapshot"

        await emulator.reset_stats()
        await asyncio.sleep(3.0)  # six poll intervals of 0.5 s
        calls = (await emulator.sim_stats())["getContactMetrics"]["byContact"]

    lone_calls = [calls.get(c, 0) for c in lone]
    watched_calls = [calls.get(c, 0) for c in crowded + shared]
    assert all(n >= 3 for n in lone_calls + watched_calls), calls
    reference = statistics.median(lone_calls)
    for n in watched_calls:
        assert abs(n - reference) <= 1, (lone_calls, watched_calls)
