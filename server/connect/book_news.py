"""BookNews: what one replica learnt about a queue, for every other replica's queue book.

No I/O. Contact events reach every replica through the shared contact-event log; what a
replica learns by its own calls (a GetContactMetrics read, a DescribeContact answer, a queue's
figures, a poll that found a contact gone) would otherwise stay in its own book, and the other
replicas would go on showing what that call corrected until they spent reads of their own.
So each such piece of news is told to the others (server/connect/book_news_exchange.py) and
applied to their books as if they had made the call.

Times are wall-clock epoch seconds: the replicas share no monotonic clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from server.connect.queue_book import EndReason

NewsKind = Literal["read", "described", "figures", "left"]
_KINDS = frozenset(get_args(NewsKind))


@dataclass(frozen=True, slots=True)
class BookNews:
    """One piece of news, with the members its kind uses (the others stay `None`).

    - `read`: `contact` in `queue` was at `position` with wait `ewt` at `at`.
    - `described`: `contact` was enqueued in `queue` at `enqueued_at` with `priority` and
      `age_adjustment` (DescribeContact).
    - `figures`: `waiting` contacts in `queue`, the oldest `oldest_age` seconds old at `at`.
    - `left`: `contact` left its queue at `at`, `reason` says how (`EndReason`).
    """

    kind: NewsKind
    replica: str
    at: float
    instance: str | None = None
    queue: str | None = None
    contact: str | None = None
    position: int | None = None
    ewt: int | None = None
    enqueued_at: float | None = None
    priority: int | None = None
    age_adjustment: float | None = None
    waiting: int | None = None
    oldest_age: float | None = None
    reason: EndReason | None = None

    def to_json(self) -> bytes:
        """The compact form the log stores: members that are `None` are left out."""
        fields = {name: value for name, value in asdict(self).items() if value is not None}
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> BookNews:
        """Read back what `to_json` wrote.

        Raises:
            ValueError: not what `to_json` writes, or without the members its kind needs.
        """
        try:
            news = cls(**json.loads(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not stored book news: {exc}") from None
        if news.kind not in _KINDS:
            raise ValueError(f"not stored book news: unknown kind {news.kind!r}")
        if not isinstance(news.replica, str) or not _is_number(news.at):
            raise ValueError("not stored book news: `replica` and `at` are required")
        needed = _NEEDS[news.kind]
        missing = [name for name in needed if getattr(news, name) is None]
        if missing:
            raise ValueError(f"not stored book news: {news.kind} without {', '.join(missing)}")
        if news.reason is not None and news.reason not in get_args(EndReason):
            raise ValueError(f"not stored book news: unknown reason {news.reason!r}")
        return news


_NEEDS: dict[str, tuple[str, ...]] = {
    "read": ("instance", "queue", "contact", "position"),
    "described": ("instance", "queue", "contact", "enqueued_at", "age_adjustment"),
    "figures": ("queue", "waiting", "oldest_age"),
    "left": ("contact", "reason"),
}


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)
