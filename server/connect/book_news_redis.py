"""The book-news log on Redis: one stream, `XADD MAXLEN ~` to append, `XREAD BLOCK` to follow.

Stream ids carry Redis's own clock, so a cursor taken before an outage still orders what comes
after it, whichever replica appended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.bus._redis_errors import redis_call
from server.bus.keys import BOOK_NEWS_KEY
from server.connect.book_news import BookNews
from server.connect.book_news_log import MAX_ENTRIES, BookNewsLog, NewsRead
from server.connect.redis_stream import read_stream

PAYLOAD_FIELD = b"n"


class RedisBookNewsLog(BookNewsLog):
    """The log on an injected `redis.asyncio` client, which the caller owns.

    Args:
        client: a `Redis` or a `RedisCluster` (one key: it lives in one slot).
        max_entries: the stream's approximate bound.
        op_timeout: seconds a command may take beyond any blocking it asked for.
        wall: the clock the replay window is measured on.
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        max_entries: int = MAX_ENTRIES,
        op_timeout: float = 3.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._max_entries = max_entries
        self._op_timeout = op_timeout
        self._wall = wall

    async def append(self, news: Sequence[BookNews]) -> None:
        if not news:
            return
        pipe = self._client.pipeline(transaction=False)
        for item in news:
            pipe.xadd(
                BOOK_NEWS_KEY,
                {PAYLOAD_FIELD: item.to_json()},
                maxlen=self._max_entries,
                approximate=True,
            )
        await redis_call(pipe.execute(), self._op_timeout)

    async def replay_cursor(self, replay_s: float) -> str:
        return f"{max(0, int((self._wall() - replay_s) * 1000))}-0"

    async def read_after(self, cursor: str, *, block_s: float, count: int) -> NewsRead:
        cursor, news = await read_stream(
            self._client,
            BOOK_NEWS_KEY,
            cursor,
            field=PAYLOAD_FIELD,
            parse=BookNews.from_json,
            block_s=block_s,
            count=count,
            op_timeout=self._op_timeout,
        )
        return NewsRead(cursor, news)
