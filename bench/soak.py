"""A bounded soak: does anything grow with time? (issue 14)

Two replicas of `queuecast serve` on one redis-server of their own, the emulator with faults on
(5xx, throttling, latency), and for N minutes (default 10) what a contact center does to them:
customers arrive (the emulator's Poisson arrivals), half are tracked by the backend
(`PUT /v1/contacts/{id}`), each opens a widget socket on a random replica and watches its
contact; some close the page before they are answered (their contact keeps waiting: a ghost
unless cleaned up), some reconnect to the other replica with `since`; two wallboards watch every
queue. Every minute it records, per replica, RSS and open sockets, and for Redis its key count,
memory and the size of the queues' member sets; and it counts deliveries:

- duplicated: an event a socket already had (a seq not above the last it got, other than the
  same state re-marked stale or fresh);
- lost: an end the emulator shows (served or abandoned) that a still-watching customer has not
  been told within `END_GRACE` seconds;
- ghosts: contacts a wallboard shows as waiting, not stale, that are not waiting in the
  emulator (`END_GRACE` after they left); `ghosts_stale` those it shows stale. Like the real
  wallboard, each board re-reads its queues (`GET /v1/queues/{id}`) every minute.

Redis keys are counted by kind: per-contact state, seq counter, lease and poll time; per-queue
member sets; everything else.

It prints the first and the last minute side by side, and JSON with every minute.

    .venv/bin/python -m bench.soak --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import websockets

from tests.support.emulator import EmulatorHandle, start_emulator_process
from tests.support.redis import running_redis
from tests.support.service import ServiceHandle, mint_test_token, start_service_process

PAGE = os.sysconf("SC_PAGE_SIZE")
END_GRACE = 20.0  # seconds an end may take to reach a watcher (polling under faults)
LEAVE_SHARE = 0.25  # customers who close the page before they are answered
RECONNECT_SHARE = 0.3  # customers who reconnect (to the other replica) once while waiting
TRACKED_SHARE = 0.5  # contacts the backend tracks explicitly
FAULTS = {
    "rates": {"InternalServiceException": 0.02, "ThrottlingException": 0.02},
    "latencyMs": 20,
    "jitterMs": 80,
}


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


@dataclass
class Tally:
    delivered: int = 0
    duplicated: int = 0
    lost: int = 0
    ghosts: int = 0
    ghosts_stale: int = 0
    reconnects: int = 0
    left_early: int = 0
    customers: int = 0


@dataclass
class Customer:
    contact: str
    instance: str
    watching: bool = True
    last_seq: int = 0
    last_stale: bool | None = None
    ended_seen: bool = False
    gone_at: float | None = None  # when the emulator stopped listing it as waiting


@dataclass
class Soak:
    emulator: EmulatorHandle
    replicas: list[ServiceHandle]
    redis_url: str
    tally: Tally = field(default_factory=Tally)
    customers: dict[str, Customer] = field(default_factory=dict)
    boards: list[dict[str, dict[str, Any]]] = field(default_factory=list)  # contact -> event
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def take(self, customer: Customer, message: dict[str, Any]) -> None:
        if message.get("type") not in ("snapshot", "update", "ended"):
            return
        self.tally.delivered += 1
        seq, stale = message["seq"], message.get("stale")
        repeated = seq < customer.last_seq or (
            seq == customer.last_seq and stale == customer.last_stale
        )
        if repeated:
            self.tally.duplicated += 1
        customer.last_seq = max(customer.last_seq, seq)
        customer.last_stale = stale
        if message["type"] == "ended":
            customer.ended_seen = True

    async def watch(self, customer: Customer) -> None:
        """One customer's page: subscribe, maybe reconnect once, maybe leave early."""
        self.tally.customers += 1
        token = mint_test_token("contact", contact=customer.contact, instance=customer.instance)
        replica = random.randrange(len(self.replicas))
        leaves_after = random.uniform(5, 60) if random.random() < LEAVE_SHARE else None
        reconnects_after = random.uniform(5, 40) if random.random() < RECONNECT_SHARE else None
        started = time.monotonic()
        try:
            while customer.watching and not customer.ended_seen:
                url = self.replicas[replica].ws_url
                async with websockets.connect(url, open_timeout=10) as ws:
                    await ws.send(json.dumps({"op": "auth", "token": token}))
                    body: dict[str, Any] = {"op": "subscribe", "contact": customer.contact}
                    if customer.last_seq:
                        body["since"] = customer.last_seq
                    await ws.send(json.dumps(body))
                    while not customer.ended_seen:
                        age = time.monotonic() - started
                        if leaves_after is not None and age >= leaves_after:
                            customer.watching = False
                            self.tally.left_early += 1
                            return
                        if reconnects_after is not None and age >= reconnects_after:
                            reconnects_after = None
                            self.tally.reconnects += 1
                            replica = 1 - replica
                            break
                        with contextlib.suppress(TimeoutError):
                            self.take(customer, json.loads(await asyncio.wait_for(ws.recv(), 1)))
        except (OSError, websockets.ConnectionClosed, TimeoutError):
            customer.watching = False  # counted below only if an end was then missed

    async def board(self, replica: ServiceHandle, shown: dict[str, dict[str, Any]]) -> None:
        token = mint_test_token("queues", queues=["*"])
        queues = list(self.emulator.queues.values())
        while True:
            with contextlib.suppress(OSError, websockets.ConnectionClosed):
                async with websockets.connect(replica.ws_url, open_timeout=10) as ws:
                    await ws.send(json.dumps({"op": "auth", "token": token}))
                    for queue in queues:
                        await ws.send(json.dumps({"op": "subscribe", "queue": queue}))
                    async for raw in ws:
                        event = json.loads(raw)
                        contact = event.get("contact")
                        if event.get("type") == "ended":
                            shown.pop(contact, None)
                        elif event.get("type") in ("snapshot", "update"):
                            held = shown.get(contact, {}).get("seq", 0)
                            shown[contact] = event if event["seq"] >= held else shown[contact]
            await asyncio.sleep(1)

    async def reread_boards(self) -> None:
        """As the wallboard does every minute: what the queues list now replaces the board's."""
        headers = {"Authorization": f"Bearer {mint_test_token('queues', queues=['*'])}"}
        while True:
            await asyncio.sleep(60)
            for replica, shown in zip(self.replicas, self.boards, strict=True):
                listed: dict[str, dict[str, Any]] = {}
                with contextlib.suppress(Exception):
                    for queue in self.emulator.queues.values():
                        view = await replica.http.get(f"/v1/queues/{queue}", headers=headers)
                        listed.update({c["contact"]: c for c in view.json()["contacts"]})
                    shown.clear()
                    shown.update(listed)

    async def arrivals(self) -> None:
        """Follow the emulator: new waiting contacts get a customer; gone ones are checked."""
        while True:
            waiting = await self.waiting()
            now = time.monotonic()
            for contact, instance in waiting.items():
                if contact in self.customers:
                    continue
                customer = self.customers[contact] = Customer(contact, instance)
                if random.random() < TRACKED_SHARE:
                    replica = random.choice(self.replicas)
                    with contextlib.suppress(Exception):
                        await replica.http.put(
                            f"/v1/contacts/{contact}", json={"instanceId": instance}
                        )
                self.spawn(self.watch(customer))
            for customer in list(self.customers.values()):
                if customer.contact not in waiting and customer.gone_at is None:
                    customer.gone_at = now
                if customer.gone_at is not None and now - customer.gone_at > END_GRACE:
                    self.tally.lost += customer.watching and not customer.ended_seen
                    del self.customers[customer.contact]
            await asyncio.sleep(1)

    async def waiting(self) -> dict[str, str]:
        state = await self.emulator.sim_state()
        return {
            w["contactId"]: instance["id"]
            for instance in state["instances"]
            for queue in instance["queues"]
            for w in queue["waiting"]
        }

    async def ghosts(self) -> tuple[int, int]:
        """Contacts a wallboard shows that left the queue more than END_GRACE ago: shown
        live, and shown stale."""
        waiting = await self.waiting()
        recent = {c for c, cust in self.customers.items() if cust.gone_at is not None}
        gone = [
            event
            for shown in self.boards
            for contact, event in shown.items()
            if contact not in waiting and contact not in recent
        ]
        stale = sum(1 for event in gone if event.get("stale"))
        return len(gone) - stale, stale

    async def sample(self, minute: int, started: float) -> dict[str, Any]:
        client = aioredis.from_url(self.redis_url)
        kinds: Counter[str] = Counter()
        try:
            info = await client.info("memory")
            keys = await client.dbsize()
            members = 0
            async for raw in client.scan_iter(count=1000):
                key = raw.decode()
                kinds[_kind(key)] += 1
                if key.startswith("qc:queue:") and key.endswith(":contacts"):
                    kind = await client.type(key)
                    members += await (client.zcard(key) if kind == b"zset" else client.scard(key))
        finally:
            await client.aclose()
        sockets = []
        for replica in self.replicas:
            status = await replica.status()
            sockets.append(status["sockets"])
        self.tally.ghosts, self.tally.ghosts_stale = await self.ghosts()
        return {
            "minute": minute,
            "elapsed": round(time.monotonic() - started, 1),
            "rss_mb": [round(rss_bytes(r.proc.pid) / 2**20, 1) for r in self.replicas],
            "sockets": sockets,
            "redis_keys": keys,
            "redis_keys_by_kind": dict(sorted(kinds.items())),
            "redis_used_mb": round(info["used_memory"] / 2**20, 2),
            "queue_members": members,
            **vars(self.tally),
        }


async def run(minutes: float, arrivals: float, seed: int) -> list[dict[str, Any]]:
    random.seed(seed)
    emulator_flags = (
        *("--arrivals", str(arrivals), "--agents", "2", "--mean-service", "45"),
        *("--mean-patience", "90", "--rps", "10", "--burst", "20", "--seed", str(seed)),
    )
    service_flags = (
        *("--rps", "8", "--burst", "16", "--poll-interval", "2", "--linger", "5"),
        # One address plays every customer here: the per-client limits would be one client's.
        *("--max-sockets-per-ip", "0", "--max-polled-per-ip", "0", "--log-level", "WARNING"),
    )
    with tempfile.TemporaryDirectory(prefix="qc-soak-") as workdir:
        async with (
            running_redis(Path(workdir)) as redis,
            start_emulator_process(*emulator_flags) as emulator,
            contextlib.AsyncExitStack() as stack,
        ):
            await emulator.put_config(faults=FAULTS)
            replicas = [
                await stack.enter_async_context(
                    start_service_process(
                        emulator,
                        redis.url,
                        *service_flags,
                        stderr=Path(workdir) / f"replica-{n}.log",
                    )
                )
                for n in range(2)
            ]
            soak = Soak(emulator, replicas, redis.url)
            for replica in replicas:
                shown: dict[str, int] = {}
                soak.boards.append(shown)
                soak.spawn(soak.board(replica, shown))
            soak.spawn(soak.arrivals())
            soak.spawn(soak.reread_boards())
            started = time.monotonic()
            samples = []
            try:
                for minute in range(1, int(minutes) + 1):
                    await asyncio.sleep(max(0.0, started + 60 * minute - time.monotonic()))
                    samples.append(await soak.sample(minute, started))
                    print(json.dumps(samples[-1]), flush=True)
            finally:
                for task in list(soak.tasks):
                    task.cancel()
                await asyncio.gather(*soak.tasks, return_exceptions=True)
    return samples


def _kind(key: str) -> str:
    if key.startswith("qc:queue:"):
        return "queue " + key.rsplit(":", 1)[-1]
    if key.startswith("qc:{"):
        return "contact " + key.rsplit(":", 1)[-1]
    return key.rsplit(":", 1)[0] if key.startswith("qc:interest:") else key


def summary(samples: list[dict[str, Any]]) -> str:
    first, last = samples[0], samples[-1]
    rows = ["| | first minute | last minute |", "|---|---|---|"]
    for key in ("rss_mb", "sockets", "redis_keys", "redis_keys_by_kind", "redis_used_mb"):
        rows.append(f"| {key} | {first[key]} | {last[key]} |")
    rows.append(f"| queue_members | {first['queue_members']} | {last['queue_members']} |")
    rows.append(
        f"| ghosts (live, stale) | {first['ghosts']}, {first['ghosts_stale']} "
        f"| {last['ghosts']}, {last['ghosts_stale']} |"
    )
    for key in ("customers", "delivered", "duplicated", "lost", "reconnects", "left_early"):
        rows.append(f"| {key} (total so far) | {first[key]} | {last[key]} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--arrivals", type=float, default=6.0, help="arrivals per minute per queue")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", help="also write every minute's sample here")
    args = parser.parse_args()
    samples = asyncio.run(run(max(1.0, args.minutes), args.arrivals, args.seed))
    print(summary(samples))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(samples, indent=1))


if __name__ == "__main__":
    main()
