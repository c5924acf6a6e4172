"""How many contacts a client can make the service poll (issue 14, the quota).

Whoever can create contacts (a public chat entry point) and get tokens minted for them could
spread everyone's polls thinner. Contacts the backend tracks explicitly come first and never
count; subscriber-only contacts count per address (IPv4, IPv6 /64), per token, and for all
anonymous clients together, at subscribe time.
"""

from __future__ import annotations

import contextlib

import pytest

from server.connect.interest import EXPLICIT_WEIGHT, InterestBook
from tests.support.service import mint_test_token, start_service_process
from tests.support.wsclient import ws_client

INSTANCE = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"


def test_explicit_tracks_are_data_the_scheduler_ranks_first():
    book = InterestBook(linger=10)
    book.watch("guessed", "another-instance")
    book.track("guessed", INSTANCE)  # the backend knows better than the subscriber
    assert book.wanted(include_explicit=True)["guessed"].instance == INSTANCE
    assert book.wanted(include_explicit=True)["guessed"].explicit
    book.watch("watched", INSTANCE)
    assert book.tracked_explicitly("guessed") and not book.tracked_explicitly("watched")
    assert book.weight("guessed") == EXPLICIT_WEIGHT > book.weight("watched")
    # Tracked through another replica (the explicit tracks live in Redis then).
    book.explicit_elsewhere({"watched"})
    assert book.tracked_explicitly("watched") and book.weight("watched") == EXPLICIT_WEIGHT
    book.explicit_elsewhere(())
    assert not book.tracked_explicitly("watched")


async def _subscribe(stack, url: str, contact: str) -> dict:
    token = mint_test_token("contact", contact=contact)
    ws = await stack.enter_async_context(ws_client(url, token=token))
    await ws.subscribe(contact)
    return await ws.next_matching(lambda m: m.get("contact") == contact or m["type"] == "error")


@pytest.mark.e2e
async def test_one_address_makes_at_most_its_share_of_contacts_polled(emulator):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(4)]
    async with start_service_process(emulator, None, "--max-polled-per-ip", "2") as service:
        url = service.ws_url
        async with contextlib.AsyncExitStack() as first:
            assert (await _subscribe(first, url, contacts[0]))["type"] == "snapshot"
            assert (await _subscribe(first, url, contacts[1]))["type"] == "snapshot"
            # The same contact again (a second tab) needs no more room.
            assert (await _subscribe(first, url, contacts[1]))["type"] == "snapshot"
            refused = await _subscribe(first, url, contacts[2])
            assert refused["type"] == "error" and refused["code"] == "too_many_contacts"
            # A contact the backend tracks does not count.
            assert (await service.http.put(f"/v1/contacts/{contacts[3]}")).status_code == 202
            assert (await _subscribe(first, url, contacts[3]))["type"] == "snapshot"
            assert (await service.status())["tracked"] == 3  # the refused one is not polled
        # Its sockets gone, the address has room again.
        async with contextlib.AsyncExitStack() as again:
            assert (await _subscribe(again, url, contacts[2]))["type"] == "snapshot"
        metrics = (await service.http.get("/metrics")).text
        assert 'queuecast_limit_hits_total{limit="polled_per_ip"} 1.0' in metrics


@pytest.mark.e2e
async def test_anonymous_clients_together_make_at_most_their_share_polled(emulator):
    contacts = [(await emulator.create_contact("sales"))["contactId"] for _ in range(3)]
    flags = ("--allow-anonymous", "--max-polled-anonymous", "2", "--max-polled-per-ip", "0")
    async with start_service_process(emulator, None, *flags, env={"QUEUECAST_SECRET": ""}) as svc:
        async with contextlib.AsyncExitStack() as stack:
            replies = []
            for contact in contacts:
                ws = await stack.enter_async_context(ws_client(svc.ws_url, token=None))
                await ws.subscribe(contact)
                replies.append(await ws.next())
            assert [r["type"] for r in replies] == ["snapshot", "snapshot", "error"], replies
            assert replies[2]["code"] == "too_many_contacts"
