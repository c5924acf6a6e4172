"""The book-news log's contract on memory, a real redis-server and a real Redis Cluster
(server/connect/book_news_log.py, book_news_redis.py), driven through `BookNewsExchange` as the
replicas use it: each replica on its own client, as two processes would be."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import redis_client
from server.bus import BusUnavailable
from server.bus.keys import BOOK_NEWS_KEY
from server.connect.book_news import BookNews
from server.connect.book_news_exchange import BookNewsExchange, NewsOutbox
from server.connect.book_news_log import BookNewsLog, MemoryBookNewsLog
from server.connect.book_news_redis import RedisBookNewsLog
from tests.bus.conftest import eventually
from tests.support.redis import RedisServer, running_redis


def read(n: int, replica: str) -> BookNews:
    return BookNews("read", replica, 1.0 + n, instance="i", queue="q", contact=f"c-{n}", position=n)


class Logs:
    """One log per replica on one implementation (memory: one shared object)."""

    def __init__(self, url: str | None = None, server: RedisServer | None = None) -> None:
        self.url, self.server = url, server
        self.shared = MemoryBookNewsLog()
        self.clients: list = []

    def log(self, **options) -> BookNewsLog:
        if self.url is None:
            return MemoryBookNewsLog(**options) if options else self.shared
        client = redis_client(self.url, timeout=1.0)
        self.clients.append(client)
        return RedisBookNewsLog(client, op_timeout=1.0, **options)

    async def aclose(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def logs(request, tmp_path: Path) -> AsyncIterator[Logs]:
    if request.param == "memory":
        yield Logs()
    elif request.param == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster_nodes")
        cluster.flush()
        async with contextlib.aclosing(Logs(cluster.url)) as harness:
            yield harness
    else:
        async with running_redis(tmp_path) as server:
            async with contextlib.aclosing(Logs(server.url, server)) as harness:
                yield harness


class Replica:
    def __init__(self, news_log: BookNewsLog, name: str) -> None:
        self.outbox = NewsOutbox(name)
        self.applied: list[BookNews] = []
        self.exchange = BookNewsExchange(news_log, self.outbox, self.applied.append, block_s=0.2)

    @property
    def contacts(self) -> list[str | None]:
        return [news.contact for news in self.applied]


async def test_each_replica_gets_the_others_news_in_order(logs) -> None:
    a, b, c = (Replica(logs.log(), name) for name in "abc")
    async with a.exchange, b.exchange, c.exchange:
        await eventually(lambda: all(r.exchange.connected for r in (a, b, c)))
        for n in range(1, 4):
            a.outbox.put(read(n, "a"))
        b.outbox.put(read(9, "b"))
        await eventually(lambda: len(c.applied) == 4 and len(b.applied) == 3)
        assert [n for n in c.contacts if n != "c-9"] == ["c-1", "c-2", "c-3"]
        assert b.contacts == ["c-1", "c-2", "c-3"]
        assert a.contacts == ["c-9"]


async def test_a_starting_replica_reads_recent_news(logs) -> None:
    a = Replica(logs.log(), "a")
    async with a.exchange:
        a.outbox.put(read(1, "a"))
        await eventually(lambda: a.exchange.told == 1)
    late = Replica(logs.log(), "late")
    async with late.exchange:
        await eventually(lambda: late.contacts == ["c-1"])


async def test_the_log_is_bounded(logs) -> None:
    news_log = logs.log(max_entries=10)
    await news_log.append([read(n, "a") for n in range(1000)])
    late = Replica(news_log, "late")
    async with late.exchange:
        await eventually(lambda: late.applied and late.applied[-1].contact == "c-999")
        # Redis trims whole stream nodes (MAXLEN ~): the bound is approximate there.
        assert len(late.applied) <= (10 if logs.url is None else 200)


async def test_malformed_entries_are_skipped(tmp_path: Path) -> None:
    async with running_redis(tmp_path) as server, contextlib.aclosing(Logs(server.url)) as logs:
        raw = redis_client(server.url, timeout=1.0)
        logs.clients.append(raw)
        b = Replica(logs.log(), "b")
        async with b.exchange:
            await eventually(lambda: b.exchange.connected)
            await raw.xadd(BOOK_NEWS_KEY, {"n": b"{not json"})
            await raw.xadd(BOOK_NEWS_KEY, {"other": b"1"})
            await logs.log().append([read(1, "a")])
            await eventually(lambda: b.contacts == ["c-1"])


async def test_redis_away_drops_news_and_the_exchange_comes_back(tmp_path: Path) -> None:
    async with running_redis(tmp_path) as server, contextlib.aclosing(Logs(server.url)) as logs:
        a, b = Replica(logs.log(), "a"), Replica(logs.log(), "b")
        async with a.exchange, b.exchange:
            a.outbox.put(read(1, "a"))
            await eventually(lambda: b.contacts == ["c-1"])
            await server.kill()
            with pytest.raises(BusUnavailable):
                await logs.log().append([read(0, "x")])
            a.outbox.put(read(2, "a"))
            await eventually(lambda: a.exchange.status()["dropped"] == 1)
            await eventually(lambda: not b.exchange.connected)
            assert b.exchange.last_error
            await server.start()  # same port, empty
            await eventually(lambda: b.exchange.connected)
            # a's first append after the restart may meet a dead pooled connection: that news
            # is dropped too (news is advice); what follows flows again.
            for n in range(3, 100):
                a.outbox.put(read(n, "a"))
                await asyncio.sleep(0.1)
                if len(b.applied) > 1:
                    break
            assert b.contacts[0] == "c-1" and b.contacts[1] in {"c-3", "c-4", "c-5"}
            assert a.exchange.told == len(b.applied)
