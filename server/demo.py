"""`queuecast demo`: the emulator and the service in one process, and the demo page.

One event loop runs two uvicorn servers: an accelerated Amazon Connect emulator with a few
staffed queues and arrivals, and the queue-status service pointed at it (in-process bus). A
feeder tracks every contact the emulator enqueues, so the wallboard fills up on its own; the
demo-only routes under `/demo/` let a visitor join a queue as a simulated customer. `serve`
never mounts them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server._lifecycle import AsyncCloseable, cancel_and_wait
from server.access import tokens
from server.app import create_app
from server.emulator import Emulator, EmulatorConfig, QueueSpec, create_emulator_app
from server.emulator.delivery import DeliverySettings
from server.emulator.model import UnknownQueueError
from server.events import utc_iso
from server.http.serving import (
    DrainingServer,
    bind_socket,
    print_ready,
    socket_url,
    uvicorn_config,
)
from server.logs import configure_logging
from server.runtime import Runtime
from server.settings import Settings

log = logging.getLogger("queuecast.demo")

# Staffed a little under the arrival rate, so queues form and drain; patience bounds them.
DEMO_QUEUES = (
    QueueSpec("Sales", agents=3, arrivals_per_minute=1.9, mean_service_s=120, mean_patience_s=480),
    QueueSpec(
        "Support", agents=2, arrivals_per_minute=1.3, mean_service_s=150, mean_patience_s=480
    ),
    QueueSpec(
        "Billing", agents=1, arrivals_per_minute=0.6, mean_service_s=150, mean_patience_s=600
    ),
)
# Contacts waiting at start-up (beyond the agents who take the first ones), per queue.
INITIAL_WAITING = {"Sales": 4, "Support": 5, "Billing": 2}
FEED_INTERVAL_S = 0.5
DEMO_RPS = 50.0  # the emulator's quota and the service's budget, both raised for the demo
STARTUP_TIMEOUT_S = 20.0
TOKEN_TTL_S = 4 * 3600
ANONYMOUS_WARNING = (
    "DEMO MODE: anonymous access is on (any client may watch anything without a token). "
    "Never expose this server to a network."
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `demo` subcommand; its handler is `run_demo(args) -> int`."""
    parser = subparsers.add_parser(
        "demo",
        help="run an emulated contact center and the service, with the demo page",
        description=(
            "Run an accelerated Amazon Connect emulator and the queue-status service in one "
            "process, and print the URL of the demo page, where you join a queue as a "
            "simulated customer and watch the widget and the wallboard. Anonymous access: "
            "for your own machine only."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8000, help="the service's port; 0 picks a free one")
    add("--emulator-port", type=int, default=0, help="the emulator's port (default: a free one)")
    add("--speed", type=float, default=5.0, help="simulated seconds per real second (default 5)")
    add("--seed", type=int, default=1, help="seed of the emulated contact center")
    add("--log-level", default="WARNING", help="log level of the service (default WARNING)")
    parser.set_defaults(func=run_demo)


# Contact events reach the service a little late and out of order, as EventBridge's do.
DEMO_EVENT_DELIVERY = DeliverySettings(min_delay=0.1, max_delay=0.5)


def emulator_config(
    speed: float, seed: int, *, events_url: str | None = None, events_key: str | None = None
) -> EmulatorConfig:
    return EmulatorConfig(
        seed=seed,
        speed=speed,
        events_url=events_url,
        events_key=events_key,
        event_delivery=DEMO_EVENT_DELIVERY,
        queues=DEMO_QUEUES,
        rps=DEMO_RPS,
        burst=int(DEMO_RPS),
        describe_rps=DEMO_RPS,
        describe_burst=int(DEMO_RPS),
        leave_mode="empty",
    )


def service_settings(
    host: str,
    port: int,
    emulator_url: str,
    instance: str,
    level: str,
    *,
    secret: str,
    events_key: str | None = None,
) -> Settings:
    return Settings(
        host=host,
        port=port,
        connect_endpoint_url=emulator_url,
        instance_id=instance,
        rps=DEMO_RPS,
        burst=int(DEMO_RPS),
        describe_rps=DEMO_RPS,
        describe_burst=int(DEMO_RPS),
        poll_interval=1.0,
        linger=5.0,
        log_level=level.upper(),
        log_format="text",
        secret=secret,
        events_key=events_key,
        allow_anonymous=True,
    )


def _secret(settings: Settings) -> str:
    if settings.secret is None:
        raise RuntimeError("the demo's settings carry a secret")
    return settings.secret


def mint_tokens(settings: Settings, contact: str | None) -> str:
    """A token for the widget (`contact` scope) or the wallboard (`queues` scope, every queue).

    The demo runs anonymous, so pages would work without; they get tokens anyway so that the
    demo shows the real flow (and keeps working if anonymous access is switched off).
    """
    secret = _secret(settings)
    if contact is None:
        return tokens.mint(secret, scope="queues", queues=[tokens.ANY_QUEUE], ttl=TOKEN_TTL_S)
    return tokens.mint(
        secret,
        scope="contact",
        contact=contact,
        instance=settings.instance_id,
        ttl=TOKEN_TTL_S,
    )


def _first_instance(emulator: Emulator) -> str:
    return next(iter(emulator.model.instances))


def demo_routes(
    emulator: Emulator, service: Starlette, settings: Settings, emulator_url: str
) -> list[BaseRoute]:
    """`GET /demo/queues` and `POST /demo/join`."""

    def queues_json() -> list[dict[str, Any]]:
        emulator.advance()
        [instance] = [i for i in emulator.snapshot() if i["id"] == _first_instance(emulator)]
        return [
            {
                "id": q["id"],
                "name": q["name"],
                "agents": q["agents"],
                "waiting": len(q["waiting"]),
            }
            for q in instance["queues"]
        ]

    async def queues(request: Request) -> Response:
        return JSONResponse(
            {
                "instanceId": _first_instance(emulator),
                "now": utc_iso(emulator.model.now),  # simulated: it runs `speed` times faster
                "speed": emulator.clock.speed,
                "anonymous": True,
                "emulator": emulator_url,
                "wallboardToken": mint_tokens(settings, None),
                "queues": queues_json(),
            }
        )

    async def join(request: Request) -> Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            body = None
        name = body.get("queue") if isinstance(body, dict) else None
        if not isinstance(name, str):
            return JSONResponse({"error": "bad-request", "message": 'send {"queue": name}'}, 400)
        emulator.advance()
        try:
            queue = emulator.model.find_queue(name, _first_instance(emulator))
        except UnknownQueueError:
            return JSONResponse({"error": "unknown-queue", "message": f"no queue {name!r}"}, 404)
        # A free agent would take the visitor at once; other callers get there first.
        while queue.free > 0:
            emulator.model.enqueue(queue)
        contact = emulator.model.enqueue(queue)
        emulator.advance()
        await _track(service, settings, contact.contact_id, contact.instance_id)
        return JSONResponse(
            {
                "contactId": contact.contact_id,
                "instanceId": contact.instance_id,
                "queueId": queue.queue_id,
                "queueName": queue.spec.name,
                "token": mint_tokens(settings, contact.contact_id),
            }
        )

    return [
        Route("/demo/queues", queues, methods=["GET"]),
        Route("/demo/join", join, methods=["POST"]),
    ]


async def _track(service: Starlette, settings: Settings, contact: str, instance: str) -> None:
    """PUT /v1/contacts/{contact} on the service itself, through its public API.

    Without a `queueId`: the poller then asks DescribeContact, which also tells when the
    contact was enqueued (the wallboard's "time in queue").
    """
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        token = tokens.mint(_secret(settings), scope="service", ttl=60)
        response = await client.put(
            f"/v1/contacts/{contact}",
            json={"instanceId": instance},
            headers={"Authorization": f"Bearer {token}"},
        )
    if response.status_code >= 400:
        log.warning("tracking failed", extra={"contact": contact, "status": response.status_code})


class ContactFeeder(AsyncCloseable):
    """Tracks every contact the emulator enqueues, so the wallboard shows whole queues."""

    def __init__(self, emulator: Emulator, service: Starlette, settings: Settings) -> None:
        self._emulator = emulator
        self._service = service
        self._settings = settings
        self._seen: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ContactFeeder:
        self._task = asyncio.create_task(self._run(), name="demo-feeder")
        return self

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FEED_INTERVAL_S)
            runtime: Runtime | None = getattr(self._service.state, "runtime", None)
            if runtime is None:
                continue
            self._emulator.advance()
            waiting: set[str] = set()
            for instance in self._emulator.snapshot():
                for queue in instance["queues"]:
                    for contact in queue["waiting"]:
                        waiting.add(contact["contactId"])
                        if contact["contactId"] not in self._seen:
                            self._seen.add(contact["contactId"])
                            await _track(
                                self._service, self._settings, contact["contactId"], instance["id"]
                            )
            self._seen &= waiting  # only waiting ones can come back; keep the set small


def _seed_queues(emulator: Emulator) -> None:
    instance = _first_instance(emulator)
    for name, count in INITIAL_WAITING.items():
        queue = emulator.model.find_queue(name, instance)
        for _ in range(queue.spec.agents + count):
            emulator.model.enqueue(queue)
    emulator.advance()


def _announce(url: str, emulator_url: str, instance: str) -> None:
    print(f"\n  queuecast demo is running.  {ANONYMOUS_WARNING}\n")
    print(f"  Demo page   {url}/static/demo.html")
    print(f"  Wallboard   {url}/static/wallboard.html")
    print(f"  Widget      {url}/static/queue-status.js")
    print(f"  Emulator    {emulator_url}/_sim/state   (instance {instance})")
    print("\n  Press Ctrl+C to stop.\n", flush=True)
    print_ready(
        "queuecast-demo",
        {
            "url": url,
            "ws": url.replace("http", "ws", 1) + "/ws",
            "demo": f"{url}/static/demo.html",
            "wallboard": f"{url}/static/wallboard.html",
            "emulator": emulator_url,
            "instance": instance,
            "anonymous": True,
        },
    )


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> bool:
    async with asyncio.timeout(STARTUP_TIMEOUT_S):
        # uvicorn offers no started event; poll its flag, at start-up only.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return server.started


async def demo(args: argparse.Namespace) -> None:
    """Serve the emulator and the service until SIGINT/SIGTERM."""

    emulator_sock = bind_socket(args.host, args.emulator_port)
    service_sock = bind_socket(args.host, args.port)
    emulator_url = socket_url(emulator_sock)
    # Fresh keys per run: tokens minted for one demo mean nothing to another. The emulator
    # posts its contact events to the service as an EventBridge API destination would.
    secret, events_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    emulator_app = create_emulator_app(
        emulator_config(
            args.speed,
            args.seed,
            events_url=socket_url(service_sock) + "/v1/events",
            events_key=events_key,
        )
    )
    emulator: Emulator = emulator_app.state.emulator
    instance = _first_instance(emulator)
    settings = service_settings(
        args.host,
        args.port,
        emulator_url,
        instance,
        args.log_level,
        secret=secret,
        events_key=events_key,
    )
    service_app = create_app(settings)
    service_app.router.routes.extend(demo_routes(emulator, service_app, settings, emulator_url))
    _seed_queues(emulator)

    emulator_server = DrainingServer(
        uvicorn.Config(
            emulator_app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        ),
        handle_signals=False,
    )

    async def drain() -> None:
        runtime: Runtime | None = getattr(service_app.state, "runtime", None)
        if runtime is not None:
            await runtime.drain()

    service_server = DrainingServer(uvicorn_config(service_app, settings), before_shutdown=drain)
    tasks: list[asyncio.Task[None]] = []
    try:
        tasks.append(asyncio.create_task(emulator_server.serve(sockets=[emulator_sock])))
        if not await _started(emulator_server, tasks[0]):
            raise RuntimeError("the emulator did not start")
        tasks.append(asyncio.create_task(service_server.serve(sockets=[service_sock])))
        if not await _started(service_server, tasks[1]):
            raise RuntimeError("the service did not start")
        async with ContactFeeder(emulator, service_app, settings):
            _announce(socket_url(service_sock), emulator_url, instance)
            # Whichever stops first (a signal stops the service) stops the other.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in (service_server, emulator_server):
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        emulator_sock.close()
        service_sock.close()
    for result in results:
        if isinstance(result, Exception):
            raise result


def _dummy_credentials() -> None:
    # The emulator checks only that requests are signed; any key signs.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def run_demo(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit status 0 on either, 2 on a bad flag."""
    if args.speed <= 0:
        print("queuecast demo: --speed must be > 0", file=sys.stderr)
        return 2
    _dummy_credentials()
    configure_logging(args.log_level.upper(), "text")
    print(ANONYMOUS_WARNING, file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo(args))
    return 0
