"""Book news between replicas: the record's stored form, the bounded outbox, the exchange on
the memory log (each replica's news reaches the others, not itself; failures are counted and
the exchange goes on), and what a poller's book does with each kind of news."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.bus import Bus, BusUnavailable, MemoryBackend
from server.connect.book_news import BookNews
from server.connect.book_news_exchange import BookNewsExchange, NewsOutbox
from server.connect.book_news_log import MemoryBookNewsLog, NewsRead
from server.connect.client import QueueFigures
from server.connect.poller import NEWS_MAX_AGE, ContactPoller, PollerConfig
from tests.bus.conftest import eventually

INSTANCE, QUEUE = "i-1", "q-1"


def read(contact: str, position: int, at: float, replica: str = "a") -> BookNews:
    return BookNews(
        "read", replica, at, instance=INSTANCE, queue=QUEUE, contact=contact, position=position
    )


def described(contact: str, enqueued_at: float, replica: str = "a") -> BookNews:
    return BookNews(
        "described",
        replica,
        enqueued_at,
        instance=INSTANCE,
        queue=QUEUE,
        contact=contact,
        enqueued_at=enqueued_at,
        priority=None,
        age_adjustment=0.0,
    )


# -- the record --------------------------------------------------------------------------------


def test_news_round_trips_and_leaves_out_what_its_kind_does_not_use() -> None:
    news = read("c-1", 3, 100.5)
    stored = news.to_json()
    assert b"enqueued_at" not in stored
    assert BookNews.from_json(stored) == news
    left = BookNews("left", "b", 7.0, contact="c-2", reason="connected")
    assert BookNews.from_json(left.to_json()) == left


@pytest.mark.parametrize(
    ("stored", "says"),
    [
        (b"not json", "not stored book news"),
        (b"[1]", "not stored book news"),
        (b'{"kind":"read","replica":"a","at":1,"stranger":1}', "stranger"),
        (b'{"kind":"gossip","replica":"a","at":1}', "unknown kind 'gossip'"),
        (b'{"kind":"read","replica":"a","at":"soon"}', "`replica` and `at`"),
        (b'{"kind":"read","replica":"a","at":1,"contact":"c"}', "read without instance, queue"),
        (b'{"kind":"left","replica":"a","at":1,"contact":"c","reason":"bored"}', "reason 'bored'"),
    ],
)
def test_malformed_news_is_refused_with_what_is_wrong(stored: bytes, says: str) -> None:
    with pytest.raises(ValueError, match="not stored book news") as raised:
        BookNews.from_json(stored)
    assert says in str(raised.value)


# -- the outbox and the exchange -----------------------------------------------------------------


async def test_a_full_outbox_drops_and_counts() -> None:
    outbox = NewsOutbox("a", size=2)
    for i in range(3):
        outbox.put(read(f"c-{i}", 1, 1.0))
    assert len(outbox) == 2 and outbox.dropped == 1
    assert [n.contact for n in await outbox.take(5)] == ["c-0", "c-1"]


class Sink:
    def __init__(self, fail_on: str | None = None) -> None:
        self.news: list[BookNews] = []
        self.fail_on = fail_on

    def apply(self, news: BookNews) -> None:
        self.news.append(news)
        if news.contact == self.fail_on:
            raise RuntimeError("the book did not like it")


async def test_each_replica_applies_the_others_news_in_order_not_its_own() -> None:
    log = MemoryBookNewsLog()
    out_a, out_b = NewsOutbox("a"), NewsOutbox("b")
    sink_a, sink_b = Sink(), Sink(fail_on="c-2")
    async with (
        BookNewsExchange(log, out_a, sink_a.apply, block_s=0.05) as a,
        BookNewsExchange(log, out_b, sink_b.apply, block_s=0.05) as b,
    ):
        for i in range(1, 4):
            out_a.put(read(f"c-{i}", i, 1.0, replica="a"))
        out_b.put(read("c-9", 9, 1.0, replica="b"))
        await eventually(lambda: len(sink_b.news) == 3 and len(sink_a.news) == 1)
        assert [n.contact for n in sink_b.news] == ["c-1", "c-2", "c-3"]
        assert [n.contact for n in sink_a.news] == ["c-9"]
        assert a.status()["told"] == 3 and b.status()["told"] == 1
        assert b.status()["failed"] == 1 and b.status()["running"]  # c-2 raised; c-3 applied
    assert not a.status()["running"]
    await a.close()  # idempotent


class FlakyLog(MemoryBookNewsLog):
    """Unreachable for the first `down` calls of each kind."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.appends_down = self.reads_down = down

    async def append(self, news: Sequence[BookNews]) -> None:
        if self.appends_down:
            self.appends_down -= 1
            raise BusUnavailable("redis: ConnectionError")
        await super().append(news)

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> NewsRead:
        if self.reads_down:
            self.reads_down -= 1
            raise BusUnavailable("redis: ConnectionError")
        return await super().read_after(cursor, block_s=block_s, count=count)


async def test_news_told_while_the_log_is_away_is_dropped_and_counted_and_the_rest_flows() -> None:
    log = FlakyLog(down=2)
    out_a, out_b = NewsOutbox("a"), NewsOutbox("b")
    sink = Sink()
    async with (
        BookNewsExchange(log, out_a, Sink().apply, block_s=0.05) as a,
        BookNewsExchange(log, out_b, sink.apply, block_s=0.05),
    ):
        out_a.put(read("lost-1", 1, 1.0))
        await eventually(lambda: a.status()["dropped"] == 1)
        out_a.put(read("lost-2", 1, 1.0))
        await eventually(lambda: a.status()["dropped"] == 2)
        out_a.put(read("kept", 1, 1.0))
        await eventually(lambda: [n.contact for n in sink.news] == ["kept"])
        assert a.status()["connected"] and a.status()["lastError"] is None


# -- what a poller's book does with news ---------------------------------------------------------


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_000.0
        self.mono = 50.0


def poller(replica: str, clocks: Clocks) -> ContactPoller:
    """A poller that is never started: only its book and its news are used here."""
    return ContactPoller(
        PollerConfig(),
        None,  # type: ignore[arg-type]  # no call to Connect is made
        Bus(MemoryBackend()),
        news_out=NewsOutbox(replica),
        clock=lambda: clocks.mono,
        wall=lambda: clocks.wall,
    )


async def test_another_replicas_news_moves_this_replicas_book() -> None:
    clocks = Clocks()
    b = poller("b", clocks)
    b.apply_book_news(described("c-1", 900.0))
    b.apply_book_news(described("c-2", 910.0))
    # A read elsewhere: one caller nobody here knows waits between them.
    b.apply_book_news(read("c-2", 3, clocks.wall - 0.2))
    assert b.book.positions(QUEUE) == {"c-1": 1, "c-2": 3}
    # The front left (another replica's poll saw it go): everyone behind moves up here too.
    b.apply_book_news(BookNews("left", "a", clocks.wall, contact="c-1", reason="left_queue"))
    assert b.book.positions(QUEUE) == {"c-2": 2}
    # A read from before an outage would take the book back in time: ignored, counted.
    b.apply_book_news(read("c-2", 7, clocks.wall - NEWS_MAX_AGE - 1))
    assert b.book.positions(QUEUE) == {"c-2": 2}
    # Queue figures: one contact waits in all, so the unknown caller is gone.
    b.apply_book_news(
        BookNews("figures", "a", clocks.wall, queue=QUEUE, waiting=1, oldest_age=90.0)
    )
    assert b.book.positions(QUEUE) == {"c-2": 1}
    assert dict(b.news_applied) == {
        "described": 2,
        "read": 1,
        "left": 1,
        "tooOld": 1,
        "figures": 1,
    }
    assert len(b._news_out or ()) == 0  # news from elsewhere is not told again


async def test_what_a_replica_learns_by_its_own_calls_is_told() -> None:
    clocks = Clocks()
    a = poller("a", clocks)
    a.apply_book_news(described("c-1", 900.0, replica="b"))
    a.apply_queue_figures(
        QUEUE,
        QueueFigures(contacts_in_queue=3, oldest_contact_age_s=100.0),
        clocks.wall,
        clocks.mono,
    )
    told = await a._news_out.take(10)  # type: ignore[union-attr]
    assert [(n.kind, n.replica, n.waiting) for n in told] == [("figures", "a", 3)]
    line = a.book.line(QUEUE)
    assert line is not None and line.waiting == 3  # the count is taken here too


async def test_a_left_contact_is_not_brought_back_by_a_late_answer() -> None:
    clocks = Clocks()
    b = poller("b", clocks)
    b.apply_book_news(BookNews("left", "a", clocks.wall, contact="c-1", reason="connected"))
    b.apply_book_news(described("c-1", 900.0))
    assert b.book.positions(QUEUE) == {}
    await asyncio.sleep(0)
