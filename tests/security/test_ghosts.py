"""Wallboards do not fill with ghosts (issue 14, item 5).

A contact whose subscriber closed the page before it was answered stayed a member of its queue
for ever (in Redis and in the in-process bus), shown on every wallboard as live and not stale.
Now a contact that stops being polled without an end is published as stale and leaves its
queue's members; memberships lapse with the contact's state; the in-process bus forgets what
has lapsed.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis

from server.bus import Commit, memory
from server.bus.memory import MemoryBackend
from server.events import encode_head
from tests.support.service import mint_test_token, start_service_process
from tests.support.wsclient import ws_client


async def members(service, queue: str) -> list[str]:
    view = (await service.http.get(f"/v1/queues/{queue}")).json()
    return [c["contact"] for c in view["contacts"]]


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["redis", "memory"])
async def test_a_contact_nobody_watches_leaves_its_queue_stale(emulator, redis_server, backend):
    sales = emulator.queues["sales"]
    mine = (await emulator.create_contact("sales"))["contactId"]
    url = redis_server.url if backend == "redis" else None
    async with start_service_process(emulator, url, "--linger", "1") as service:
        board_token = mint_test_token("queues", queues=[sales])
        async with ws_client(service.ws_url, token=board_token) as board:
            await board.subscribe(queue=sales)
            widget_token = mint_test_token("contact", contact=mine)
            async with ws_client(service.ws_url, token=widget_token) as widget:
                await widget.subscribe(mine)
                live = await widget.next_matching(lambda m: m.get("contact") == mine)
                assert live["stale"] is False
                await board.next_matching(lambda m: m.get("contact") == mine)
                assert await members(service, sales) == [mine]
            # The page closed before the customer was answered: after the linger it is shown
            # stale, and it is no member of the queue any more.
            stale = await board.next_matching(
                lambda m: m.get("contact") == mine and m.get("stale") is True, timeout=15
            )
            assert stale["type"] == "update"
            async with asyncio.timeout(5):
                while await members(service, sales):
                    await asyncio.sleep(0.1)
            state = (await service.http.get(f"/v1/contacts/{mine}")).json()
            assert state["stale"] is True and state["type"] == "snapshot"
            assert (await service.status())["tracked"] == 0
            if backend == "redis":
                client = aioredis.from_url(redis_server.url)
                try:
                    assert await client.zcard(f"qc:queue:{{{sales}}}:contacts") == 0
                finally:
                    await client.aclose()
            # The customer comes back: polled again, live again, a member again.
            async with ws_client(service.ws_url, token=widget_token) as widget:
                await widget.subscribe(mine)
                await widget.next_matching(
                    lambda m: m.get("contact") == mine and m.get("stale") is False, timeout=15
                )
                async with asyncio.timeout(5):
                    while await members(service, sales) != [mine]:
                        await asyncio.sleep(0.1)


async def test_the_in_process_bus_forgets_what_has_lapsed(monkeypatch):
    monkeypatch.setattr(memory, "PRUNE_EVERY", 0.0)
    monkeypatch.setattr(memory, "SEQ_KEPT_BEYOND_STATE", 0.05)
    backend = MemoryBackend()
    for n in range(50):
        head = encode_head(
            "snapshot",
            instance="i",
            contact=f"c{n}",
            queue="q",
            position=n + 1,
            ewt=None,
            at="2026-01-01T00:00:00.000Z",
            stale=False,
            reason=None,
        )
        await backend.commit(Commit(f"c{n}", "q", head, ttl=0.05, ended=False))
    assert backend.held() == {"states": 50, "seqs": 50, "queues": 1, "members": 50}
    await asyncio.sleep(0.15)
    assert await backend.queue_members("q") == []
    assert backend.held() == {"states": 0, "seqs": 0, "queues": 0, "members": 0}


@pytest.mark.e2e
async def test_a_dead_replicas_unwatched_contacts_are_retired_by_the_living(
    emulator, redis_server, tmp_path
):
    """Its poller gone with it, nobody would retire a contact only its sockets watched: one of
    the living does, once the contact's lease is free and a grace for reconnects has passed."""
    sales = emulator.queues["sales"]
    mine = (await emulator.create_contact("sales"))["contactId"]
    async with (
        start_service_process(
            emulator, redis_server.url, "--linger", "1", stderr=tmp_path / "doomed.log"
        ) as doomed,
        start_service_process(emulator, redis_server.url, "--linger", "1") as living,
    ):
        board_token = mint_test_token("queues", queues=[sales])
        widget_token = mint_test_token("contact", contact=mine)
        async with (
            ws_client(living.ws_url, token=board_token) as board,
            contextlib.AsyncExitStack() as dying,
        ):
            await board.subscribe(queue=sales)
            # Never closed by the test: it dies with its replica.
            widget = await dying.enter_async_context(ws_client(doomed.ws_url, token=widget_token))
            await widget.subscribe(mine)
            await widget.next_matching(lambda m: m.get("contact") == mine)
            await board.next_matching(lambda m: m.get("contact") == mine and not m["stale"])
            async with asyncio.timeout(10):  # the doomed replica polls it (its lease)
                while (await doomed.status())["tracked"] != 1:
                    await asyncio.sleep(0.1)
            doomed.proc.kill()
            stale = await board.next_matching(
                lambda m: m.get("contact") == mine and m.get("stale") is True, timeout=30
            )
            assert stale["type"] == "update"
            async with asyncio.timeout(5):
                while await members(living, sales):
                    await asyncio.sleep(0.1)
            assert (await living.status())["tracked"] == 0
