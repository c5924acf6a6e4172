"""Poll efficiency: GetContactMetrics calls per contact do not depend on watchers or sockets.

Issue 7 asks for emulator counts showing that the number of GetContactMetrics calls depends on
neither the number of watchers per contact (1, 10, 100) nor the number of sockets per replica.
One run, loopback only, stops by itself (~2 minutes):

1. a redis-server of its own and the paused emulator (no agents, no arrivals, quota off), so
   positions never change and the emulator never throttles; C contacts created once;
2. per scenario, fresh `queuecast serve` replicas on that Redis (poll interval 0.5 s, an
   account budget ten times what the contacts need, so only the interval paces the polls);
   sockets from the lean load client (`bench/_wsload.py`) subscribe and each subscription is
   answered with a snapshot;
3. warm-up: every contact polled once by this scenario's replicas, then one more second;
4. the emulator's stats are reset, `--window` seconds pass, and its `getContactMetrics.byContact`
   counts are read: the calls each contact cost while W sockets watched it.

Scenarios, in one run: the baseline (1 watcher per contact, one socket each), 10 and 100
watchers per contact (one socket per watcher), 100 watchers per contact on fewer sockets that
each hold several subscriptions (5 each, then every contact on each socket), and 100 watchers
per contact split over two replicas. Exit status 1 when a contact's calls in any scenario
differ from the baseline's median by more than one (a poll can straddle the window's edges),
or when the baseline itself is off the poll interval.

    .venv/bin/python bench/poll_efficiency.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from _harness import (
    SERVICE_ENV,
    Child,
    child,
    print_result,
    quiet_contact_center,
    raise_nofile,
    service_command,
)
from _wsload import LoadClient, open_clients

from tests.support.emulator import EmulatorHandle

SERVE_READY = "queuecast-serve ready "
QUEUES = ("sales", "support", "billing")
MAX_SUBSCRIPTIONS = 50  # `queuecast serve`'s default --max-subscriptions, left as it is


@dataclass(frozen=True)
class Scenario:
    name: str
    watchers: int  # sockets subscribed to each contact
    per_socket: int  # contacts each socket subscribes to
    replicas: int = 1

    def sockets(self, contacts: int) -> int:
        return contacts * self.watchers // self.per_socket


def scenarios(contacts: int) -> list[Scenario]:
    """The baseline first: every other scenario is compared with it."""
    return [
        Scenario("baseline", 1, 1),
        Scenario("10 watchers", 10, 1),
        Scenario("100 watchers", 100, 1),
        Scenario("100 watchers, 5 per socket", 100, 5),
        Scenario("100 watchers, all per socket", 100, contacts),
        Scenario("100 watchers, 2 replicas", 100, 1, replicas=2),
    ]


def socket_plan(scenario: Scenario, contacts: Sequence[str]) -> list[list[str]]:
    """The contacts of each socket: subscription i is contact i mod C, so every contact gets
    exactly `watchers` subscriptions and one socket's contacts are all different."""
    k, n = scenario.per_socket, len(contacts)
    return [[contacts[(s * k + j) % n] for j in range(k)] for s in range(scenario.sockets(n))]


@dataclass
class Replies:
    """What the sockets received; filled in the protocol callbacks."""

    snapshots: int = 0
    updates: int = 0
    errors: list[str] = field(default_factory=list)

    def on_message(self, _client: LoadClient, payload: bytes, _now: float) -> None:
        if payload.startswith(b'{"type":"snapshot"'):
            self.snapshots += 1
        elif payload.startswith((b'{"type":"update"', b'{"type":"ended"')):
            self.updates += 1  # not expected (nothing moves), but not a failure of the count
        else:
            self.errors.append(payload[:200].decode(errors="replace"))


async def wait_until(ready: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await ready():  # noqa: ASYNC110 (polls other processes)
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise RuntimeError(f"waited {seconds} s for {what}") from None


def replica_flags(args: argparse.Namespace, redis_url: str) -> list[str]:
    return [
        "--redis-url",
        redis_url,
        "--poll-interval",
        str(args.poll_interval),
        # The account budget must not pace anything: the interval alone should.
        *("--rps", str(args.rps), "--burst", "50"),
        *("--describe-rps", str(args.rps), "--describe-burst", "50"),
        # A socket sends all its subscribes at once (up to every contact).
        *("--max-messages-per-second", "100"),
    ]


async def open_watchers(
    replicas: Sequence[Child], plan: list[list[str]], replies: Replies
) -> list[LoadClient]:
    """Socket s goes to replica s mod R and sends one subscribe per contact of its plan."""
    clients: list[LoadClient] = []
    for r, replica in enumerate(replicas):
        mine = plan[r :: len(replicas)]
        host, port = replica.info["url"].removeprefix("http://").rsplit(":", 1)
        opened = await open_clients(host, int(port), len(mine), replies.on_message)
        for client in opened:
            for contact in mine[client.tag]:
                client.send_text(json.dumps({"op": "subscribe", "contact": contact}))
        clients += opened
    return clients


async def per_contact_calls(emulator: EmulatorHandle, contacts: Sequence[str]) -> list[int]:
    counts = (await emulator.sim_stats())["getContactMetrics"]["byContact"]
    return [counts.get(c, 0) for c in contacts]


async def warm_up(emulator: EmulatorHandle, contacts: Sequence[str], seconds: float) -> None:
    # Snapshots come from the state stored in Redis by earlier scenarios, so they do not prove
    # that this scenario's replicas poll yet: wait until each contact has been polled again.
    await emulator.reset_stats()

    async def all_polled() -> bool:
        return min(await per_contact_calls(emulator, contacts)) > 0

    await wait_until(all_polled, 30, "every contact to be polled")
    await asyncio.sleep(seconds)


async def replica_status(replicas: Sequence[Child]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        answers = [await http.get(f"{r.info['url']}/v1/status") for r in replicas]
    return [a.raise_for_status().json() for a in answers]


async def run_scenario(
    scenario: Scenario,
    contacts: Sequence[str],
    emulator: EmulatorHandle,
    command: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Start the scenario's replicas and sockets, warm up, count one window's calls."""
    plan = socket_plan(scenario, contacts)
    replies = Replies()
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                child(f"replica-{i}", command, core=None, ready_prefix=SERVE_READY, env=SERVICE_ENV)
            )
            for i in range(scenario.replicas)
        ]
        t_open = time.monotonic()
        clients = await open_watchers(replicas, plan, replies)
        subscriptions = sum(map(len, plan))

        async def all_answered() -> bool:
            if replies.errors:
                raise RuntimeError(f"{scenario.name}: {replies.errors[:3]}")
            return replies.snapshots >= subscriptions

        await wait_until(all_answered, 60, f"{subscriptions} snapshots")
        subscribed_s = time.monotonic() - t_open
        await warm_up(emulator, contacts, args.warmup)

        await emulator.reset_stats()
        t0 = time.monotonic()
        await asyncio.sleep(args.window)
        t1 = time.monotonic()
        stats = (await emulator.sim_stats())["getContactMetrics"]
        status = await replica_status(replicas)
        closed = sum(1 for c in clients if c.closed.done())
        for c in clients:
            c.close()
    calls = [stats["byContact"].get(c, 0) for c in contacts]
    return {
        "scenario": scenario.name,
        "replicas": scenario.replicas,
        "sockets": len(plan),
        "subscriptions_per_socket": scenario.per_socket,
        "watchers_per_contact": scenario.watchers,
        "sockets_per_replica": [s["sockets"] for s in status],
        "tracked_per_replica": [s["tracked"] for s in status],
        "subscribe_s": round(subscribed_s, 2),
        "window_s": round(t1 - t0, 3),
        "calls": sum(calls),
        "calls_per_contact": calls,
        "min": min(calls),
        "median": statistics.median(calls),
        "max": max(calls),
        "outcomes": stats["byOutcome"],
        "updates_seen": replies.updates,
        "sockets_closed": closed,
    }


def judge(results: list[dict[str, Any]], expected: float) -> list[str]:
    """Every contact within one call of the baseline's median; the baseline on the interval.

    A contact is due one interval after its last poll *ended*, so the baseline runs a little
    under `expected`; a tenth under it means the interval is not what paces the polls."""
    base = results[0]
    failures = []
    if not 0.9 * expected <= base["median"] <= expected + 1:
        failures.append(f"baseline median {base['median']} calls, expected ~{expected:g}")
    for r in results:
        r["ratio"] = round(r["calls"] / base["calls"], 3) if base["calls"] else None
        r["max_deviation"] = max(abs(n - base["median"]) for n in r["calls_per_contact"])
        if r["max_deviation"] > 1:
            failures.append(
                f"{r['scenario']}: a contact is {r['max_deviation']} calls off the baseline's"
                f" {base['median']} ({r['min']}..{r['max']})"
            )
        if r["sockets_closed"] or sum(r["sockets_per_replica"]) != r["sockets"]:
            failures.append(
                f"{r['scenario']}: {r['sockets_closed']} sockets closed, the replicas counted"
                f" {r['sockets_per_replica']} of {r['sockets']}"
            )
    return failures


def table(results: list[dict[str, Any]], expected: float) -> str:
    rows = [
        "| scenario | replicas | sockets (per replica) | subscriptions/socket | watchers/contact"
        " | calls | calls/contact min / median / max | expected | vs baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per_replica = " / ".join(f"{n:,}" for n in r["sockets_per_replica"])
        rows.append(
            f"| {r['scenario']} | {r['replicas']} | {r['sockets']:,} ({per_replica})"
            f" | {r['subscriptions_per_socket']} | {r['watchers_per_contact']} | {r['calls']:,}"
            f" | {r['min']} / {r['median']:g} / {r['max']} | {expected:g} | {r['ratio']:.3f} |"
        )
    return "\n".join(rows)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with (
        quiet_contact_center(None, "--no-quota") as (redis, emu),
        httpx.AsyncClient(base_url=emu.info["endpoint_url"], timeout=10) as http,
    ):
        info = emu.info
        emulator = EmulatorHandle(info["endpoint_url"], info["region"], info["instances"], http)
        contacts = [
            (await emulator.create_contact(QUEUES[i % len(QUEUES)]))["contactId"]
            for i in range(args.contacts)
        ]
        command = service_command(info, *replica_flags(args, redis.url))
        results = []
        for scenario in scenarios(args.contacts):
            result = await run_scenario(scenario, contacts, emulator, command, args)
            print(
                f"{scenario.name}: {result['sockets']} sockets, {result['calls']} calls"
                f" ({result['min']}..{result['max']} per contact)",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds after every poll")
    parser.add_argument(
        "--rps", type=float, help="account budget (default: 10 x contacts / poll interval)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this long")
    args = parser.parse_args()
    if not 1 <= args.contacts <= MAX_SUBSCRIPTIONS:
        parser.error(f"--contacts: 1 to {MAX_SUBSCRIPTIONS} (one socket holds them all)")
    if args.rps is None:
        args.rps = 10 * args.contacts / args.poll_interval
    raise_nofile()
    results = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    expected = args.window / args.poll_interval
    failures = judge(results, expected)
    summary = {
        "bench": "poll_efficiency",
        "contacts": args.contacts,
        "poll_interval_s": args.poll_interval,
        "window_s": args.window,
        "rps": args.rps,
        "expected_per_contact": expected,
        "ok": not failures,
        "failures": failures,
        "scenarios": results,
    }
    print_result(table(results, expected), summary)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
