"""SearchContacts: answers read, the queue book completed by a listing, and QueueLister's
rounds (pages, the quota, incremental listings, failures) with a fake Connect client."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from server.connect.answers import ContactSummary, Outcome, SearchPage, parse_search_contacts
from server.connect.budget import LocalBudget
from server.connect.queue_book import QueueBook
from server.connect.queue_listing import MARGIN, QueueLister
from tests.support import TIMEOUT_SCALE

INST, Q, Q2 = "inst", "q1", "q2"
WAIT = 5.0 * TIMEOUT_SCALE


def ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- answers ---------------------------------------------------------------------------------


def test_summaries_say_who_is_still_waiting() -> None:
    page = parse_search_contacts(
        {
            "Contacts": [
                {"Id": "waiting", "QueueInfo": {"Id": Q, "EnqueueTimestamp": ts(100)}},
                {
                    "Id": "served",
                    "QueueInfo": {"Id": Q, "EnqueueTimestamp": ts(90)},
                    "AgentInfo": {"Id": "agent", "ConnectedToAgentTimestamp": ts(95)},
                },
                {
                    "Id": "transferred",  # talked to an agent, then queued again
                    "QueueInfo": {"Id": Q2, "EnqueueTimestamp": ts(120)},
                    "AgentInfo": {"Id": "agent", "ConnectedToAgentTimestamp": ts(110)},
                },
                {
                    "Id": "hung-up",
                    "QueueInfo": {"Id": Q, "EnqueueTimestamp": ts(80)},
                    "DisconnectTimestamp": ts(85),
                },
                {"Id": "in-ivr"},  # never queued
                {"QueueInfo": {"Id": Q}},  # no id: skipped
            ],
            "NextToken": "more",
        }
    )
    assert page.outcome is Outcome.OK and page.next_token == "more"
    waiting = {c.contact: c.waiting for c in page.contacts}
    assert waiting == {
        "waiting": True,
        "served": False,
        "transferred": True,
        "hung-up": False,
        "in-ivr": False,
    }
    assert page.contacts[0].enqueued_at == 100.0


def test_last_page_has_no_token() -> None:
    assert parse_search_contacts({"Contacts": [], "NextToken": ""}).next_token is None


# -- the queue book --------------------------------------------------------------------------


def test_contacts_a_listing_shows_waiting_join_in_enqueue_order() -> None:
    book = QueueBook()
    assert book.listed(Q, INST, [("c", 103.0), ("a", 101.0), ("b", 102.0)], seen_at=0.0) == {Q}
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3}
    assert book.member("a").placed_by == "search"  # type: ignore[union-attr]


def test_a_listing_is_no_roll_call() -> None:
    """Queued voice contacts are not listed: a member the listing does not show stays."""
    book = QueueBook()
    for i, contact in enumerate("abc"):
        book.queued(contact, INST, Q, at=100.0 + i)
    assert book.listed(Q, INST, [("c", 102.0)], seen_at=0.0) == set()
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3}


def test_a_read_placed_member_gets_its_own_enqueue_time() -> None:
    book = QueueBook()
    book.read("b", INST, Q, position=2, ewt=None, at=100.0, now=1.0)
    book.listed(Q, INST, [("b", 102.0)], seen_at=0.0)
    assert book.member("b").enqueued_at == 102.0  # type: ignore[union-attr]
    book.queued("a", INST, Q, at=101.0)  # enqueued before it: ahead of it
    assert book.positions(Q) == {"a": 1, "b": 2}


def test_a_member_a_count_guessed_gone_is_cleared_by_a_later_listing_showing_it() -> None:
    """Someone behind the front hung up: the count marks the front-most a suspect (a guess);
    a listing taken after the guess that shows it waiting clears it."""
    book = QueueBook()
    for i, contact in enumerate("abc"):
        book.queued(contact, INST, Q, at=100.0 + i)
    book.figures(Q, waiting=2, oldest_age=0.0, at=200.0, now=1.0)  # "b" left
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3}  # its end event may be on its way
    book.figures(Q, waiting=2, oldest_age=0.0, at=203.0, now=4.0)  # none came: "a" guessed
    assert book.positions(Q) == {"b": 1, "c": 2}
    book.listed(Q, INST, [("a", 100.0)], seen_at=202.0)  # seen before the guess: no proof
    assert book.positions(Q) == {"b": 1, "c": 2}
    book.listed(Q, INST, [("a", 100.0)], seen_at=204.0)
    assert book.positions(Q) == {"a": 1, "b": 2, "c": 3}
    book.left("b", at=199.0, reason="disconnected")  # the listing's end of "b"
    assert book.positions(Q) == {"a": 1, "c": 2}


def test_an_end_of_someone_else_clears_the_counts_guess() -> None:
    """Voice contacts are not listed: the end of "b" (an event, or a listing of ends) is
    what clears the guess that "a" had left."""
    book = QueueBook()
    for i, contact in enumerate("abc"):
        book.queued(contact, INST, Q, at=100.0 + i)
    book.figures(Q, waiting=2, oldest_age=0.0, at=200.0, now=1.0)  # "b" left
    book.figures(Q, waiting=2, oldest_age=0.0, at=203.0, now=4.0)  # no end event yet: a guess
    assert book.positions(Q) == {"b": 1, "c": 2}
    book.left("b", at=199.0, reason="disconnected")
    assert book.positions(Q) == {"a": 1, "c": 2}


def test_an_ended_contact_is_not_brought_back_by_a_lagging_listing() -> None:
    book = QueueBook()
    book.queued("a", INST, Q, at=100.0)
    book.left("a", at=105.0, reason="connected")
    book.listed(Q, INST, [("a", 100.0), ("b", 101.0)], seen_at=0.0)
    assert book.positions(Q) == {"b": 1}


# -- the lister ------------------------------------------------------------------------------


class FakeSearch:
    """SearchContacts over `contacts`, `page_size` per page, or the outcomes in `failures`."""

    def __init__(self, contacts: Sequence[ContactSummary], page_size: int = 2) -> None:
        self.contacts = list(contacts)
        self.page_size = page_size
        self.failures: list[Outcome] = []
        self.ranges: list[tuple[float, float, str | None]] = []

    async def search_contacts(
        self,
        instance: str,
        queue_ids: list[str],
        *,
        enqueued_from: float,
        enqueued_to: float,
        next_token: str | None = None,
    ) -> SearchPage:
        self.ranges.append((enqueued_from, enqueued_to, next_token))
        if self.failures:
            return SearchPage(self.failures.pop(0), detail="injected")
        found = [
            c
            for c in self.contacts
            if c.queue in queue_ids
            and c.enqueued_at is not None
            and enqueued_from <= c.enqueued_at <= enqueued_to
        ]
        start = int(next_token or 0)
        end = start + self.page_size
        return SearchPage(
            Outcome.OK, tuple(found[start:end]), str(end) if end < len(found) else None
        )


class Listings:
    def __init__(self) -> None:
        self.seen: list[tuple[list[str], list[str]]] = []

    def __call__(
        self,
        instance: str,
        queues: Sequence[str],
        contacts: Sequence[ContactSummary],
        *,
        seen_at: float,
    ) -> None:
        assert seen_at == NOW - 2.0
        self.seen.append((list(queues), [c.contact for c in contacts]))


def waiting(contact: str, enqueued_at: float, queue: str = Q) -> ContactSummary:
    return ContactSummary(contact, queue, enqueued_at, None, None)


NOW = 1_000_000.0


def lister(search: FakeSearch, listings: Listings, **kwargs) -> QueueLister:
    oldest = kwargs.pop("oldest", {Q: NOW - 100.0})
    return QueueLister(
        search,
        LocalBudget(1000.0, 10, 0.0),
        wanted=lambda: kwargs.get("wanted", {Q: INST}),
        oldest=oldest.get,
        connect_offset=lambda: None,
        on_listing=listings,
        interval=0.01,
        lag=2.0,
        wall=lambda: NOW,
    )


async def test_first_listing_goes_back_to_the_oldest_and_reads_every_page() -> None:
    search = FakeSearch([waiting(c, NOW - 100.0 + i) for i, c in enumerate("abcde")])
    listings = Listings()
    the_lister = lister(search, listings)
    assert await the_lister._list(INST, [Q])
    assert [r[2] for r in search.ranges] == [None, "2", "4"]  # three pages
    assert search.ranges[0][0] == NOW - 100.0 - MARGIN
    assert listings.seen == [([Q], list("abcde"))]
    assert the_lister.status()["listings"] == {"complete": 1}


async def test_a_failed_page_gives_an_incomplete_listing_and_is_reported() -> None:
    search = FakeSearch([waiting(c, NOW - 90.0 + i) for i, c in enumerate("abcd")])
    listings = Listings()
    the_lister = lister(search, listings)
    original = search.search_contacts
    calls = 0

    async def second_page_fails(*args, **kwargs) -> SearchPage:
        nonlocal calls
        calls += 1
        if calls == 2:
            return SearchPage(Outcome.SERVER_ERROR, detail="injected")
        return await original(*args, **kwargs)

    search.search_contacts = second_page_fails  # type: ignore[method-assign]
    assert not await the_lister._list(INST, [Q])
    # What the first page showed is still taken.
    assert listings.seen == [([Q], ["a", "b"])]
    assert the_lister.status()["listings"] == {"incomplete": 1}
    assert "server_error" in (the_lister.status()["lastError"] or "")
    assert await the_lister._list(INST, [Q])
    assert the_lister.status()["lastError"] is None


async def test_throttled_slows_the_budget_down() -> None:
    search = FakeSearch([])
    search.failures = [Outcome.THROTTLED]
    the_lister = lister(search, Listings())
    before = the_lister.budget.rate(0.0)
    assert not await the_lister._list(INST, [Q])
    assert the_lister.budget.rate(0.0) < before


async def test_queues_without_figures_wait_and_the_task_runs_and_closes() -> None:
    search = FakeSearch([waiting("a", NOW - 10.0), waiting("x", NOW - 10.0, Q2)])
    listings = Listings()
    the_lister = lister(search, listings, wanted={Q: INST, Q2: INST})
    async with the_lister:
        async with asyncio.timeout(WAIT):
            while len(listings.seen) < 2:
                await asyncio.sleep(0.01)
        assert the_lister.running
    assert not the_lister.running
    await the_lister.close()  # idempotent
    assert all(queues == [Q] for queues, _ in listings.seen)  # Q2: no figures yet


@pytest.mark.parametrize("outcome", [Outcome.ACCESS_DENIED, Outcome.TIMEOUT])
async def test_a_round_that_fails_backs_off_and_lists_again(outcome: Outcome) -> None:
    search = FakeSearch([waiting("a", NOW - 10.0)])
    search.failures = [outcome]
    listings = Listings()
    async with lister(search, listings) as the_lister:
        async with asyncio.timeout(WAIT):
            while not listings.seen:
                await asyncio.sleep(0.01)
        assert the_lister.status()["calls"][outcome.value] == 1
