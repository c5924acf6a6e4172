"""Keep-alive pings after a reconnect storm: do they cluster, and does the server stall?

For each target (queuecast, then the broadcaster peer on uvicorn's stock protocol, same run):

1. the server starts pinned to core 0 with a short keep-alive (`--interval`, so that a few
   ping rounds fit in a bounded run; the timeout equals the interval as in the defaults);
2. N sockets open at once (`--concurrency` handshakes in flight: clients reconnecting after
   a deploy), each one idle but for answering pings;
3. one more socket, the probe, sends `{"op":"ping"}` every 10 ms and times each `pong`: an
   application round trip through the server's event loop, so a loop turn spent on a burst
   of keep-alive pings shows as a slow pong;
4. for `--rounds` intervals after the last socket opened, every keep-alive ping the clients
   get is timed, and reported: pings per 100 ms window (busiest, and the even spread they
   would have over the interval), and the probe's round trip p50/p99/max.

Loopback only; bounded; stops by itself.

    .venv/bin/python bench/ping_spread.py
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _harness import (
    SERVICE_ENV,
    add_pinned_target_args,
    child,
    quiet_contact_center,
    run_pinned_targets,
    service_command,
)
from _wsload import LoadClient, open_clients

WINDOW = 0.1  # seconds per ping-count bucket
PROBE_EVERY = 0.01


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


class Probe:
    """Times `{"op":"ping"}` -> pong round trips on one socket, one in flight at a time."""

    def __init__(self) -> None:
        self.sent_at: float | None = None
        self.rtts: list[float] = []

    def on_message(self, client: LoadClient, payload: bytes, now: float) -> None:
        if payload.startswith(b'{"type":"pong"') and self.sent_at is not None:
            self.rtts.append(now - self.sent_at)
            self.sent_at = None

    async def run(self, client: LoadClient, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.sent_at is None:
                self.sent_at = time.monotonic()
                client.send_text('{"op":"ping"}')
            elif time.monotonic() - self.sent_at > 1.0:
                self.rtts.append(time.monotonic() - self.sent_at)  # counted as a 1 s+ stall
                self.sent_at = None
            await asyncio.sleep(PROBE_EVERY)


def ignore(_client: LoadClient, _payload: bytes, _now: float) -> None:
    return None


async def run_target(
    name: str, command: list[str], ready: str, args: argparse.Namespace
) -> dict[str, Any]:
    pings: list[float] = []
    async with child(
        name, command, core=args.server_core, ready_prefix=ready, env=SERVICE_ENV
    ) as p:
        host, port = p.info["url"].removeprefix("http://").rsplit(":", 1)
        await asyncio.sleep(1.0)
        probe = Probe()
        [probe_client] = await open_clients(host, int(port), 1, probe.on_message)
        t0 = time.monotonic()
        clients = await open_clients(
            host,
            int(port),
            args.sockets,
            ignore,
            concurrency=args.concurrency,
            on_ping=pings.append,
        )
        opened_s = time.monotonic() - t0
        start = time.monotonic()
        await probe.run(probe_client, args.rounds * args.interval)
        end = time.monotonic()
        closed = sum(1 for c in clients if c.closed.done())
        for client in (*clients, probe_client):
            client.close()
        await asyncio.sleep(0.5)
    seen = [t for t in pings if start <= t < end]
    buckets: dict[int, int] = {}
    for t in seen:
        buckets[int((t - start) / WINDOW)] = buckets.get(int((t - start) / WINDOW), 0) + 1
    busiest = max(buckets.values(), default=0)
    even = args.sockets * WINDOW / args.interval
    rtts = probe.rtts
    return {
        "target": name,
        "sockets": args.sockets,
        "interval_s": args.interval,
        "opened_in_s": round(opened_s, 2),
        "pings": len(seen),
        "busiest_100ms": busiest,
        "even_100ms": round(even, 1),
        "busiest_vs_even": round(busiest / even, 1) if even else None,
        "windows_over_2x_even": sum(1 for n in buckets.values() if n > 2 * even),
        "probe_rtts": len(rtts),
        "probe_p50_ms": round(percentile(rtts, 0.5) * 1000, 2),
        "probe_p99_ms": round(percentile(rtts, 0.99) * 1000, 2),
        "probe_max_ms": round(max(rtts, default=float("nan")) * 1000, 1),
        "probe_over_20ms": sum(1 for r in rtts if r > 0.02),
        "sockets_closed": closed,
    }


def summary(r: dict[str, Any]) -> str:
    return (
        f"{r['target']:>11}: {r['sockets']} sockets opened in {r['opened_in_s']} s, ping every "
        f"{r['interval_s']} s: {r['pings']} pings, busiest 100 ms {r['busiest_100ms']} "
        f"({r['busiest_vs_even']}x the even {r['even_100ms']}), "
        f"{r['windows_over_2x_even']} windows > 2x even; probe round trip p50 "
        f"{r['probe_p50_ms']} ms, p99 {r['probe_p99_ms']} ms, max {r['probe_max_ms']} ms, "
        f"{r['probe_over_20ms']} of {r['probe_rtts']} over 20 ms; {r['sockets_closed']} closed"
    )


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    interval = [str(args.interval)]
    results = []
    async with quiet_contact_center(args.load_core) as (redis, emu):
        targets = {
            "queuecast": (
                service_command(
                    emu.info,
                    *("--redis-url", redis.url),
                    *("--ws-ping-interval", *interval, "--ws-ping-timeout", *interval),
                    # The probe asks 100 times a second; the default limit (10) would drop it.
                    *("--max-messages-per-second", "1000"),
                ),
                "queuecast-serve ready ",
            ),
            "broadcaster": (
                [
                    *service_command(emu.info)[:1],
                    "bench/peers/broadcaster_server.py",
                    *("--redis-url", redis.url, "--port", "0"),
                    *("--ws-ping-interval", *interval, "--ws-ping-timeout", *interval),
                ],
                "broadcaster-peer ready ",
            ),
        }
        for name in args.targets.split(","):
            command, ready = targets[name]
            result = await run_target(name, command, ready, args)
            print(summary(result), flush=True)
            results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=1000, help="handshakes at once")
    parser.add_argument("--interval", type=float, default=4.0, help="keep-alive ping interval")
    parser.add_argument("--rounds", type=float, default=3.0, help="intervals measured")
    parser.add_argument("--targets", default="queuecast,broadcaster")
    add_pinned_target_args(parser)
    return run_pinned_targets(parser.parse_args(), run, summary)


if __name__ == "__main__":
    raise SystemExit(main())
