"""`queuecast simulate`: run the Amazon Connect emulator as an HTTP server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

import uvicorn

from server.emulator.app import create_emulator_app
from server.emulator.config import DEFAULT_QUEUES, LEAVE_MODES, EmulatorConfig
from server.emulator.delivery import DeliverySettings
from server.emulator.model import QueueSpec
from server.emulator.simulator import Emulator
from server.http.serving import DrainingServer, bind_socket, print_ready, serve_until_stopped
from server.ids import instance_arn

READY_PREFIX = "queuecast-simulate ready "
GRACEFUL_SHUTDOWN_S = 2  # stalled requests (fault injection) must not hold shutdown forever


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `simulate` subcommand; its handler is `run_simulate(args) -> int`."""
    parser = subparsers.add_parser(
        "simulate",
        help="run an Amazon Connect emulator (GetContactMetrics, DescribeContact, /_sim/)",
        description=(
            "Serve Amazon Connect's GetContactMetrics and DescribeContact over the real wire "
            "protocol, answered from a live queue model. Point an AWS SDK or CLI at it with "
            "--endpoint-url and dummy credentials. Control and truth API under /_sim/. Prints "
            "one line 'queuecast-simulate ready {json}' once it serves."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8001, help="port to bind; 0 picks a free one (default 8001)")
    add("--seed", type=int, default=1, help="seed of the model; same seed, same history")
    add("--speed", type=float, default=1.0, help="simulated seconds per real second")
    add("--paused", action="store_true", help="start with simulated time frozen")
    add("--rps", type=float, default=2.0, help="GetContactMetrics quota, requests/s")
    add("--burst", type=int, default=5, help="GetContactMetrics quota burst")
    add("--describe-rps", type=float, default=2.0, help="DescribeContact quota, requests/s")
    add("--describe-burst", type=int, default=5, help="DescribeContact quota burst")
    add(
        "--quota",
        action="append",
        metavar="OPERATION=RPS:BURST",
        help=(
            "quota of another operation (repeatable): getCurrentMetricData (default 5:8), "
            "listQueues, describeQueue, updateContactRoutingData (default 2:5 each), "
            "searchContacts (default 0.5:1)"
        ),
    )
    add(
        "--search-lag",
        type=float,
        default=2.0,
        help="Connect-clock seconds before a contact change shows in SearchContacts (default 2)",
    )
    add("--no-quota", action="store_true", help="disable every quota")
    add("--instances", type=int, default=1, help="Connect instances, each with every queue")
    add(
        "--queue",
        action="append",
        metavar="NAME[:AGENTS[:PER_MINUTE]]",
        help="a queue (repeatable); default: sales, support, billing",
    )
    add("--agents", type=int, default=2, help="agents per queue unless given in --queue")
    add(
        "--arrivals",
        type=float,
        default=2.0,
        help="Poisson arrivals per minute per queue; 0 = API only",
    )
    add("--mean-service", type=float, default=120.0, help="mean handle time, seconds")
    add(
        "--service-cv", type=float, default=None, help="handle-time CV (gamma); default exponential"
    )
    add(
        "--mean-patience",
        type=float,
        default=600.0,
        help="mean patience, seconds; 0 = never abandon",
    )
    add("--priorities", default="", help="comma-separated priorities drawn for arrivals, e.g. 1,5")
    add("--leave-mode", choices=LEAVE_MODES, default="empty-then-not-found")
    add(
        "--leave-grace", type=float, default=30.0, help="real seconds of 'empty' before 'not found'"
    )
    add(
        "--events-url",
        default=None,
        help="POST contact events to this URL as an EventBridge API destination does",
    )
    add(
        "--events-key",
        default=None,
        help="API key sent with each event in X-Queuecast-Events-Key "
        "(default: $QUEUECAST_EVENTS_KEY, else none)",
    )
    add(
        "--events-delay",
        default="0",
        metavar="MIN[:MAX]",
        help="seconds each event waits before it is sent, drawn uniformly from MIN..MAX; "
        "a spread wider than the gap between two events reorders them",
    )
    add("--events-loss", type=float, default=0.0, help="probability an event is never sent")
    add(
        "--events-duplication",
        type=float,
        default=0.0,
        help="probability an event is sent twice (each copy its own delay)",
    )
    add(
        "--events-concurrency",
        type=int,
        default=32,
        help="event requests in flight at once (an API destination sends in parallel)",
    )
    add(
        "--events-queue-size",
        type=int,
        default=20_000,
        help="event copies waiting to be sent at the most; beyond, the oldest is dropped",
    )
    add("--region", default="us-east-1")
    add("--account-id", default="123456789012")
    parser.set_defaults(func=run_simulate)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The `EmulatorConfig` the parsed flags describe.

    Raises:
        ValueError: a flag value out of range or a malformed --queue.
    """
    priorities = tuple(int(p) for p in args.priorities.split(",") if p.strip())
    low, _, high = args.events_delay.partition(":")
    min_delay, max_delay = float(low), float(high or low)
    patience = args.mean_patience or None

    def spec(name: str, agents: int, per_minute: float) -> QueueSpec:
        return QueueSpec(
            name, agents, per_minute, args.mean_service, args.service_cv, patience, priorities
        )

    operation_quotas = {}
    for text in args.quota or ():
        operation, _, limits = text.partition("=")
        rps, _, burst = limits.partition(":")
        try:
            operation_quotas[operation] = (float(rps), int(burst))
        except ValueError:
            raise ValueError(f"bad --quota {text!r}: expected OPERATION=RPS:BURST") from None
    queues = []
    for text in args.queue or [q.name for q in DEFAULT_QUEUES]:
        name, *rest = text.split(":")
        if not name or len(rest) > 2:
            raise ValueError(f"bad --queue {text!r}: expected NAME[:AGENTS[:PER_MINUTE]]")
        agents = int(rest[0]) if rest else args.agents
        per_minute = float(rest[1]) if len(rest) > 1 else args.arrivals
        queues.append(spec(name, agents, per_minute))
    return EmulatorConfig(
        seed=args.seed,
        speed=args.speed,
        paused=args.paused,
        instances=args.instances,
        queues=tuple(queues),
        quota_enabled=not args.no_quota,
        rps=args.rps,
        burst=args.burst,
        describe_quota_enabled=not args.no_quota,
        operation_quotas_enabled=not args.no_quota,
        operation_quotas=operation_quotas,
        describe_rps=args.describe_rps,
        describe_burst=args.describe_burst,
        leave_mode=args.leave_mode,
        leave_grace=args.leave_grace,
        search_lag_s=args.search_lag,
        events_url=args.events_url,
        events_key=args.events_key or os.environ.get("QUEUECAST_EVENTS_KEY") or None,
        event_delivery=DeliverySettings(
            min_delay=min_delay,
            max_delay=max_delay,
            loss=args.events_loss,
            duplication=args.events_duplication,
        ),
        events_concurrency=args.events_concurrency,
        events_queue_size=args.events_queue_size,
        region=args.region,
        account_id=args.account_id,
    )


def ready_info(emulator: Emulator, endpoint_url: str) -> dict[str, Any]:
    config = emulator.config
    return {
        "endpoint_url": endpoint_url,
        "region": config.region,
        "instances": [
            {
                "id": instance_id,
                "arn": instance_arn(config.region, config.account_id, instance_id),
                "queues": [{"id": q.queue_id, "name": q.spec.name} for q in queues],
            }
            for instance_id, queues in emulator.model.instances.items()
        ],
    }


def _announce(info: dict[str, Any]) -> None:
    first = info["instances"][0]
    print(f"Amazon Connect emulator at {info['endpoint_url']} (region {info['region']})")
    for instance in info["instances"]:
        print(f"  instance {instance['id']}")
        for queue in instance["queues"]:
            print(f"    queue {queue['name']}: {queue['id']}")
    print("  control and truth API: GET /_sim/state, POST /_sim/contacts, PUT /_sim/config")
    print(
        "  try: AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws connect get-contact-metrics"
        f" --endpoint-url {info['endpoint_url']} --region {info['region']}"
        f" --instance-id {first['id']} --contact-id <contactId from /_sim/state>"
        " --metrics Name=POSITION_IN_QUEUE Name=ESTIMATED_WAIT_TIME"
    )
    print_ready("queuecast-simulate", info)


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    sock = bind_socket(host, port)
    app = create_emulator_app(config)
    server = DrainingServer(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )

    def announce(url: str) -> None:
        _announce(ready_info(app.state.emulator, url))

    await serve_until_stopped(server, sock, announce)


def run_simulate(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit status 0 on either, 2 on a bad configuration."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"queuecast simulate: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, args.host, args.port))
    return 0
