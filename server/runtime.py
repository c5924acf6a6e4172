"""The long-lived parts of a running service, as the lifespan assembled them."""

from __future__ import annotations

from dataclasses import dataclass

from server.browser.gateway import Gateway
from server.bus import Bus
from server.connect.book_news_exchange import BookNewsExchange
from server.connect.client import ConnectClient
from server.connect.event_feed import ContactEventFeed
from server.connect.event_ingest import ContactEventIngest
from server.connect.poller import ContactPoller
from server.connect.queue_directory import QueueDirectory
from server.connect.queue_figures import QueueFiguresPoller
from server.connect.queue_listing import QueueLister
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    bus: Bus
    connect: ConnectClient
    poller: ContactPoller
    gateway: Gateway
    directory: QueueDirectory
    figures: QueueFiguresPoller
    listing: QueueLister
    contact_events: ContactEventIngest
    contact_event_feed: ContactEventFeed
    book_news: BookNewsExchange | None

    async def drain(self) -> None:
        """Stop applying contact events and polling, then close every socket with 1001
        (SIGTERM's first step)."""
        await self.contact_event_feed.close()
        if self.book_news is not None:
            await self.book_news.close()
        await self.poller.close()
        await self.gateway.drain()
