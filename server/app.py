"""The Starlette application: one lifespan owns the bus, the Connect client, the poller and
the gateway, entered in that order and closed in reverse."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from server import metrics
from server._internals import fast_path_states
from server.access.cross_origin import CrossOriginMiddleware, CrossOriginPolicy
from server.access.policy import (
    AccessPolicy,
    SecurityHeadersMiddleware,
    secrets_to_scrub,
    security_headers,
)
from server.access.redaction import Redactor, install_log_redaction
from server.browser.config import GatewayConfig
from server.browser.gateway import Gateway
from server.bus import Bus, BusBackend, MemoryBackend
from server.bus.redis import RedisBackend, RedisClient
from server.bus.redis_cluster import cluster_client, is_cluster_url
from server.connect.book_news_exchange import BookNewsExchange, NewsOutbox
from server.connect.book_news_redis import RedisBookNewsLog
from server.connect.budget import Budget, LocalBudget, SharedBudget
from server.connect.client import ConnectClient
from server.connect.coordination import BudgetName, RedisCoordinator
from server.connect.event_feed import ContactEventFeed
from server.connect.event_ingest import ContactEventIngest
from server.connect.event_log import ContactEventLog, MemoryContactEventLog
from server.connect.event_log_redis import RedisContactEventLog
from server.connect.figures_lead import LocalFiguresLead, RedisFiguresLead
from server.connect.poller import ContactPoller, PollerConfig
from server.connect.queue_directory import QueueDirectory
from server.connect.queue_figures import QueueFiguresPoller, queues_wanted
from server.connect.queue_listing import QueueLister
from server.connect.queue_names import LocalNameStore, RedisNameStore
from server.http import api as http_api
from server.http import events as http_events
from server.http import queues
from server.http.static_assets import static_directory
from server.runtime import Runtime
from server.settings import Settings

log = logging.getLogger("queuecast")

REDIS_POOL_SIZE = 64


def redis_client(url: str, timeout: float = 3.0) -> RedisClient:
    """A client whose failures surface at once: the bus owns the one retry policy.

    The pool blocks (up to `timeout`) when all its connections are busy: redis-py's default
    pool raises MaxConnectionsError at once, so a burst of 5,000 subscribes (a reconnect storm)
    answered most clients `unavailable` (docs/benchmarks.md).

    A `redis+cluster://host:port,...` URL gives a Redis Cluster client (`cluster_client`).
    """
    if is_cluster_url(url):
        return cluster_client(url, timeout)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_POOL_SIZE,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)


def poller_config(settings: Settings) -> PollerConfig:
    return PollerConfig(
        rps=settings.rps,
        burst=settings.burst,
        describe_rps=settings.describe_rps,
        describe_burst=settings.describe_burst,
        poll_interval=settings.poll_interval,
        ewt_threshold=settings.ewt_threshold,
        stale_after=settings.stale_after,
        tombstone_ttl=settings.tombstone_ttl,
        state_ttl=settings.state_ttl,
        linger=settings.linger,
        max_in_flight=settings.max_in_flight,
    )


def coordinator_for(settings: Settings, client: RedisClient, bus: Bus) -> RedisCoordinator:
    """Replicas on one Redis poll as one: leases, global interest, one account budget."""
    return RedisCoordinator(
        client,
        bus,
        budgets={
            "metrics": (settings.rps, settings.burst),
            "describe": (settings.describe_rps, settings.describe_burst),
            "current_metrics": (settings.current_metrics_rps, settings.current_metrics_burst),
            "list_queues": (settings.queue_names_rps, settings.queue_names_burst),
            "describe_queue": (settings.queue_names_rps, settings.queue_names_burst),
            "search": (settings.search_rps, settings.search_burst),
        },
        lease_ttl=settings.lease_ttl,
        replica_id=settings.replica_id,
    )


def _budget(
    coordinator: RedisCoordinator | None, name: BudgetName, rps: float, burst: int
) -> Budget:
    if coordinator is None:
        return LocalBudget(rps, burst, time.monotonic())
    return SharedBudget(coordinator, name, rps)


def queue_directory_for(
    settings: Settings,
    connect: ConnectClient,
    client: RedisClient | None,
    coordinator: RedisCoordinator | None,
) -> QueueDirectory:
    """Queue names; with Redis, one replica lists per period and shares the names."""
    store = (
        LocalNameStore()
        if client is None or coordinator is None
        else RedisNameStore(client, coordinator.replica_id, keep=3 * settings.queue_names_refresh)
    )
    rps, burst = settings.queue_names_rps, settings.queue_names_burst
    return QueueDirectory(
        connect,
        store,
        instance=settings.primary_instance,
        list_budget=_budget(coordinator, "list_queues", rps, burst),
        describe_budget=_budget(coordinator, "describe_queue", rps, burst),
        refresh=settings.queue_names_refresh,
    )


def queue_figures_for(
    settings: Settings,
    *,
    connect: ConnectClient,
    bus: Bus,
    poller: ContactPoller,
    gateway: Gateway,
    directory: QueueDirectory,
    client: RedisClient | None,
    coordinator: RedisCoordinator | None,
) -> QueueFiguresPoller:
    """The queues' figures; with Redis, one replica (the leader) reads every wanted queue."""
    lead = (
        LocalFiguresLead()
        if client is None or coordinator is None
        else RedisFiguresLead(client, coordinator.replica_id, ttl=settings.lease_ttl)
    )

    def wanted() -> dict[str, str]:
        watched = {queue for session in gateway.sessions for queue in session.queues}
        return queues_wanted(
            poller.book, poller.contacts.values(), watched, settings.primary_instance
        )

    interval = settings.queue_figures_interval
    return QueueFiguresPoller(
        connect,
        bus,
        lead,
        _budget(
            coordinator,
            "current_metrics",
            settings.current_metrics_rps,
            settings.current_metrics_burst,
        ),
        wanted=wanted,
        names=directory.name,
        on_read=poller.apply_queue_figures,
        interval=interval,
        stale_after=max(settings.stale_after, 2 * interval),
    )


def queue_listing_for(
    settings: Settings,
    *,
    connect: ConnectClient,
    poller: ContactPoller,
    gateway: Gateway,
    coordinator: RedisCoordinator | None,
) -> QueueLister:
    """Who waits in the wanted queues (SearchContacts), for the poller's queue book."""

    def wanted() -> dict[str, str]:
        watched = {queue for session in gateway.sessions for queue in session.queues}
        return queues_wanted(
            poller.book, poller.contacts.values(), watched, settings.primary_instance
        )

    return QueueLister(
        connect,
        _budget(coordinator, "search", settings.search_rps, settings.search_burst),
        wanted=wanted,
        oldest=poller.queue_oldest,
        connect_offset=poller.book.connect_offset,
        on_listing=poller.apply_listing,
        interval=settings.queue_listing_interval,
        lag=settings.search_lag,
    )


WEBSOCKET_PATH = "/ws"


class QueuecastApp(Starlette):
    """Starlette, with the WebSocket endpoint dispatched before the middleware and router.

    A socket's task stays suspended in every ASGI layer it passed through for as long as the
    socket is open: with the full stack that is ~10 coroutine frames, their closures and a
    second `WebSocket` per socket, 5 KB of RSS per idle socket (bench/idle_memory.py). None
    of those layers does anything for a WebSocket here: the security headers are for HTTP
    responses, and neither the error middleware nor the exception handlers handle what the
    gateway raises (it propagates to uvicorn either way). Everything else, including a
    WebSocket to any other path (refused by the router), takes the ordinary way.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WEBSOCKET_PATH:
            runtime: Runtime = self.state.runtime
            await runtime.gateway.handle(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, backend: BusBackend | None = None) -> QueuecastApp:
    """Build the service.

    Args:
        settings: the configuration.
        backend: a bus backend to use instead of the one `settings.redis_url` implies.

    Raises:
        ValueError: a token key that does not load, or no static folder to serve.
    """
    access = AccessPolicy.from_settings(settings)
    for path, on in fast_path_states().items():
        metrics.FAST_PATHS.labels(path).set(1 if on else 0)
    install_log_redaction(Redactor(secrets_to_scrub(settings), settings.log_contact_ids))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            chosen = backend
            client = None
            if chosen is None and settings.redis_url:
                client = redis_client(settings.redis_url)
                stack.push_async_callback(client.aclose)
                chosen = RedisBackend(client)
            bus = await stack.enter_async_context(Bus(chosen or MemoryBackend()))
            coordinator = None if client is None else coordinator_for(settings, client, bus)
            connect = await stack.enter_async_context(
                ConnectClient(
                    settings.region,
                    settings.connect_endpoint_url,
                    connect_timeout=settings.connect_timeout,
                    read_timeout=settings.read_timeout,
                    max_pool=settings.max_in_flight + 2,
                )
            )
            # With Redis, replicas tell each other what their own calls taught their queue
            # books (server/connect/book_news.py); alone, there is nobody to tell.
            news_out = None if coordinator is None else NewsOutbox(coordinator.replica_id)
            poller = await stack.enter_async_context(
                ContactPoller(poller_config(settings), connect, bus, coordinator, news_out=news_out)
            )
            book_news = None
            if client is not None and news_out is not None:
                book_news = await stack.enter_async_context(
                    BookNewsExchange(RedisBookNewsLog(client), news_out, poller.apply_book_news)
                )
            # Every replica applies every contact event, whichever replica took it.
            event_log: ContactEventLog = (
                MemoryContactEventLog() if client is None else RedisContactEventLog(client)
            )
            feed = await stack.enter_async_context(
                ContactEventFeed(event_log, poller.apply_contact_event)
            )
            gateway = Gateway(
                GatewayConfig(
                    default_instance=access.instances.single,
                    max_subscriptions=settings.max_subscriptions,
                    send_timeout=settings.send_timeout,
                    allowed_origins=settings.allowed_origins,
                    access=access,
                    auth_timeout=settings.auth_timeout,
                    reauth_timeout=settings.reauth_timeout,
                    max_sockets_per_ip=settings.max_sockets_per_ip,
                    max_sockets=settings.max_sockets,
                    max_polled_per_token=settings.max_polled_per_token,
                    max_polled_per_ip=settings.max_polled_per_ip,
                    max_polled_anonymous=settings.max_polled_anonymous,
                    max_messages_per_second=settings.max_messages_per_second,
                    rate_limit_strikes=settings.rate_limit_strikes,
                ),
                bus,
                poller,
            )
            directory = await stack.enter_async_context(
                queue_directory_for(settings, connect, client, coordinator)
            )
            figures = await stack.enter_async_context(
                queue_figures_for(
                    settings,
                    connect=connect,
                    bus=bus,
                    poller=poller,
                    gateway=gateway,
                    directory=directory,
                    client=client,
                    coordinator=coordinator,
                )
            )
            listing = await stack.enter_async_context(
                queue_listing_for(
                    settings,
                    connect=connect,
                    poller=poller,
                    gateway=gateway,
                    coordinator=coordinator,
                )
            )
            runtime = Runtime(
                settings,
                bus,
                connect,
                poller,
                gateway,
                directory,
                figures,
                listing,
                ContactEventIngest(event_log, settings.instance_id),
                feed,
                book_news,
            )
            stack.push_async_callback(runtime.drain)
            app.state.runtime = runtime
            log.info("queuecast ready", extra={"settings": settings.redacted()})
            yield

    static_dir = static_directory(settings)

    async def home(request: Request) -> Response:
        return RedirectResponse("/static/demo.html")

    routes = [
        # Served by `QueuecastApp.__call__`; the route still serves it under a root path.
        WebSocketRoute(WEBSOCKET_PATH, _websocket_endpoint),
        *http_api.routes,
        *http_events.routes,
        *queues.routes,
        Route("/", home, methods=["GET"]),
        Mount("/static", StaticFiles(directory=static_dir), name="static"),
    ]
    app = QueuecastApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeadersMiddleware, headers=security_headers(settings)),
            Middleware(CrossOriginMiddleware, policy=CrossOriginPolicy(settings.allowed_origins)),
        ],
    )
    app.state.access = access
    return app


async def _websocket_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    await runtime.gateway.handle(websocket)
