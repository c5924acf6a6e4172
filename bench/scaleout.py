"""Scale-out figures: replicas on one Redis polling as one.

Runs a redis-server of its own, the emulator and N service replicas (all real processes on
loopback), tracks C contacts with one WebSocket subscriber each spread over the replicas, then:

1. steady state: GetContactMetrics calls per contact per interval, ThrottlingException count
   with the emulator's quota equal to the configured account rate;
2. SIGKILL of one replica: time until every contact has been polled again (takeover), and the
   changes its survivors' subscribers missed when the queues moved right after the kill.

Bounded in time, loopback only, stops by itself:

    .venv/bin/python -m bench.scaleout --replicas 3 --contacts 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import tempfile
import time
from pathlib import Path

from tests.support.emulator import start_emulator_process
from tests.support.redis import running_redis
from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

QUEUES = ("sales", "support")


async def run(replica_count: int, contact_count: int, rps: float, interval: float) -> dict:
    lease_ttl = 5.0
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            running_redis(Path(tmp)) as redis,
            start_emulator_process(
                "--arrivals",
                "0",
                "--agents",
                "0",
                "--mean-patience",
                "0",
                "--rps",
                str(rps),
                "--burst",
                "10",
            ) as emulator,
            contextlib.AsyncExitStack() as stack,
        ):
            flags = (
                "--rps",
                str(rps),
                "--burst",
                "10",
                "--poll-interval",
                str(interval),
                "--lease-ttl",
                str(lease_ttl),
                # One bench client subscribes many contacts at once.
                "--max-messages-per-second",
                "1000",
                "--max-subscriptions",
                "500",
            )
            services = [
                await stack.enter_async_context(
                    start_service_process(emulator, redis.url, "--replica-id", f"r{i}", *flags)
                )
                for i in range(replica_count)
            ]
            contacts = [
                (await emulator.create_contact(QUEUES[i % len(QUEUES)]))["contactId"]
                for i in range(contact_count)
            ]
            clients = [await stack.enter_async_context(ws_client(s.ws_url)) for s in services]
            # Two subscribers per contact on two replicas: after one replica dies every
            # contact is still wanted, so its takeover can be timed.
            homes = {
                c: (i % replica_count, (i + 1) % replica_count) for i, c in enumerate(contacts)
            }
            for contact, pair in homes.items():
                for i in pair:
                    await clients[i].subscribe(contact)
            for i, client in enumerate(clients):
                waiting_for = {c for c, pair in homes.items() if i in pair}
                while waiting_for:
                    message = await client.next(timeout=60)
                    if message.get("type") not in ("snapshot", "update", "ended"):
                        raise RuntimeError(f"unexpected {message}")
                    waiting_for.discard(message["contact"])

            # 1. steady state
            await asyncio.sleep(2 * interval)
            await emulator.reset_stats()
            window = 5 * interval
            await asyncio.sleep(window)
            stats = (await emulator.sim_stats())["getContactMetrics"]
            per_contact = [stats["byContact"].get(c, 0) for c in contacts]
            effective = max(interval, contact_count / rps)
            steady = {
                "window_s": window,
                "effective_interval_s": effective,
                "polls_per_contact_min": min(per_contact),
                "polls_per_contact_max": max(per_contact),
                "expected_per_contact": window / effective,
                "throttles": stats["byOutcome"].get("ThrottlingException", 0),
                "calls": stats["total"],
                "tracked_per_replica": [(await s.status())["tracked"] for s in services],
            }

            # 2. SIGKILL one replica
            victim = services[0]
            await emulator.reset_stats()
            victim.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await victim.proc.wait()
            takeover = None
            deadline = killed + 4 * lease_ttl
            while time.monotonic() < deadline:
                counts = (await emulator.sim_stats())["getContactMetrics"]["byContact"]
                if all(counts.get(c, 0) for c in contacts):
                    takeover = time.monotonic() - killed
                    break
                await asyncio.sleep(0.05)

            # Move every queue by one right after the kill: each survivor's subscriber of a
            # contact still waiting must see its position change.
            heads = []
            for queue in QUEUES:
                waiting = await emulator.waiting(queue)
                heads.append(waiting[0]["contactId"])
                await emulator.connect(waiting[0]["contactId"])
            expected = {
                (i, c) for c, pair in homes.items() for i in pair if i != 0 and c not in heads
            }
            got: set[tuple[int, str]] = set()
            end = time.monotonic() + 4 * effective + 2 * lease_ttl
            for i, client in enumerate(clients[1:], start=1):
                mine = {(j, c) for j, c in expected if j == i}
                while mine - got and time.monotonic() < end:
                    with contextlib.suppress(TimeoutError):
                        message = await client.next(timeout=max(0.1, end - time.monotonic()))
                        if message.get("type") == "update":
                            got.add((i, message["contact"]))
                got &= expected
            return {
                "replicas": replica_count,
                "contacts": contact_count,
                "rps": rps,
                "poll_interval_s": interval,
                "lease_ttl_s": lease_ttl,
                "steady": steady,
                "takeover_s": None if takeover is None else round(takeover, 2),
                "changes_expected_on_survivors": len(expected),
                "changes_missed_on_survivors": len(expected - got),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    args = parser.parse_args()
    result = asyncio.run(
        asyncio.wait_for(run(args.replicas, args.contacts, args.rps, args.poll_interval), 300)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
