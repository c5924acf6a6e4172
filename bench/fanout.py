"""Fan-out: N WebSocket clients over M contacts, updates committed at a fixed rate.

For each target (queuecast, then the broadcaster peer, same load, same run):

1. the server starts pinned to core 0 (`taskset`); redis-server, the emulator and this load
   generator share core 1;
2. N = contacts x watchers sockets open and each subscribes to one contact (queuecast answers
   with a snapshot, which proves the subscription; the peer has no answer, so it gets a settle
   time); RSS per idle socket = (RSS idle - RSS before any socket) / N;
3. updates are committed through queuecast's own publish path, `RedisBackend.commit` (the
   poller's Lua script: INCR seq, SET state, PUBLISH), round-robin over the contacts at
   `rate / watchers` commits per second: first `--warmup` seconds unmeasured, then
   `--duration` seconds measured, then up to `--drain` seconds for the last frames;
4. reported: delivered frames/s, lost (an expected (contact, seq, socket) delivery that never
   came), publish->receive latency p50/p99/max (monotonic clock of this process, taken just
   before the commit is sent), server CPU per delivered frame (/proc/<pid>/stat), RSS per
   socket idle and loaded, and the worst 100 ms window (keep-alive ping rounds show there).

The queuecast service polls the emulator for real (paused, no agents) contacts at its default
quota; the states committed here equal the emulator's truth, so the poller never publishes
anything itself. Loopback only; stops by itself.

    .venv/bin/python bench/fanout.py --scenario all
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from _harness import (
    SERVICE_ENV,
    add_pinned_target_args,
    child,
    cpu_split,
    quiet_contact_center,
    rss_bytes,
    run_pinned_targets,
    service_command,
)
from _wsload import LoadClient, open_clients

from server.bus import Commit
from server.bus.redis import RedisBackend
from server.events import encode_head, seq_of, utc_iso

SCENARIOS = {
    # name: (contacts, watchers per contact, deliveries per second)
    "10k": (500, 10, 10_000),
    "50k": (50, 100, 50_000),
}
TICK = 0.005  # seconds between two injection batches
# Target name suffix -> uvicorn WebSocket implementation of the broadcaster peer: `broadcaster`
# is uvicorn's default (websockets-sansio); the others compare the stacks on the same app.
PEERS = {"": "auto", "-websockets": "websockets", "-wsproto": "wsproto"}


@dataclass
class Contact:
    id: str
    queue: str
    instance: str
    position: int
    ewt: int | None
    enqueued: str | None
    index: int
    seq: int = 0


@dataclass
class Delivery:
    sent_at: float
    expected: int
    received: int = 0
    measured: bool = False


@dataclass
class Tally:
    """What the clients saw; filled in the protocol callbacks, so kept flat and cheap."""

    sent: dict[tuple[int, int], Delivery] = field(default_factory=dict)
    index: dict[bytes, int] = field(default_factory=dict)  # contact id -> Contact.index
    snapshots: int = 0
    frames: int = 0
    foreign: int = 0  # frames for seqs this benchmark did not commit
    other: int = 0  # errors, pongs, ended
    retries: int = 0  # subscribes answered `unavailable` and sent again
    subscribe_texts: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    record: bool = False

    def on_message(self, client: LoadClient, payload: bytes, now: float) -> None:
        self.frames += 1
        if payload.startswith(b'{"type":"snapshot"'):
            self.snapshots += 1
            return
        if not payload.startswith(b'{"type":"update"'):
            if payload.startswith(b'{"type":"error","code":"unavailable"'):
                # What the protocol tells a client to do: retry, here after 0.2-0.4 s.
                self.retries += 1
                asyncio.get_running_loop().call_later(
                    0.2 + random.random() * 0.2, client.send_text, self.subscribe_texts[client.tag]
                )
                return
            self.other += 1
            if len(self.samples) < 5:
                self.samples.append(payload.decode(errors="replace"))
            return
        at = payload.find(b'"contact":"')
        if at < 0:
            return
        contact = self.index.get(payload[at + 11 : at + 47])
        seq = int(payload[payload.rfind(b":") + 1 : -1])
        delivery = self.sent.get((contact, seq)) if contact is not None else None
        if delivery is None:
            self.foreign += 1
            return
        delivery.received += 1
        if delivery.measured:
            latency = now - delivery.sent_at
            self.latencies.append(latency)
            self.timeline.append((now, latency))


async def truth_contacts(endpoint: str, count: int) -> list[Contact]:
    """Create `count` waiting contacts in the (paused) emulator; return them with their truth."""
    async with httpx.AsyncClient(base_url=endpoint, timeout=30) as http:
        state = (await http.get("/_sim/state")).json()
        queues = state["instances"][0]["queues"]
        gate = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with gate:
                r = await http.post("/_sim/contacts", json={"queue": queues[i % len(queues)]["id"]})
                r.raise_for_status()

        await asyncio.gather(*(create(i) for i in range(count)))
        state = (await http.get("/_sim/state")).json()
    instance = state["instances"][0]
    out: list[Contact] = []
    for queue in instance["queues"]:
        for w in queue["waiting"]:
            out.append(
                Contact(
                    w["contactId"],
                    queue["id"],
                    instance["id"],
                    w["position"],
                    None if w["ewt"] is None else round(w["ewt"]),
                    None,
                    len(out),
                )
            )
    return out[:count]


def head_for(contact: Contact, kind: str = "update") -> bytes:
    return encode_head(
        kind,  # type: ignore[arg-type]
        instance=contact.instance,
        contact=contact.id,
        queue=contact.queue,
        position=contact.position,
        ewt=contact.ewt,
        at=utc_iso(time.time()),
        stale=False,
        reason=None,
        enqueued=contact.enqueued,
    )


async def commit(backend: RedisBackend, contact: Contact, kind: str = "update") -> int:
    data = await backend.commit(
        Commit(contact.id, None, head_for(contact, kind), ttl=3600, ended=False, floor=contact.seq)
    )
    contact.seq = seq_of(data)
    return contact.seq


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(len(values) * q))]


async def inject(
    backend: RedisBackend,
    contacts: list[Contact],
    tally: Tally,
    watchers: int,
    commits_per_s: float,
    seconds: float,
    measured: bool,
) -> int:
    """Commit round-robin at a fixed rate for `seconds`; returns the commits made."""
    start = time.monotonic()
    done = 0
    n = len(contacts)
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * commits_per_s) - done
        batch = [contacts[(done + k) % n] for k in range(min(due, n))]
        if batch:
            sent_at = time.monotonic()
            for c in batch:
                # Register before committing: the frame can arrive before Redis's reply.
                tally.sent[(c.index, c.seq + 1)] = Delivery(sent_at, watchers, measured=measured)
            await asyncio.gather(*(commit(backend, c) for c in batch))
            for c in batch:
                if (c.index, c.seq) not in tally.sent:  # someone else committed in between
                    tally.sent[(c.index, c.seq)] = Delivery(sent_at, watchers, measured=measured)
            done += len(batch)
        await asyncio.sleep(TICK)
    return done


def worst_window(timeline: list[tuple[float, float]], width: float = 0.1) -> dict[str, Any]:
    """The 100 ms window (by receive time) with the highest max latency, and how many stand out."""
    if not timeline:
        return {}
    buckets: dict[int, float] = {}
    for now, latency in timeline:
        b = int(now / width)
        if latency > buckets.get(b, 0.0):
            buckets[b] = latency
    ordered = sorted(buckets.items())
    t0 = ordered[0][0]
    worst = max(ordered, key=lambda kv: kv[1])
    spikes = [round((b - t0) * width, 1) for b, v in ordered if v > 0.05]
    return {
        "timeline_start": round(ordered[0][0] * width, 2),
        "worst_window_max_ms": round(worst[1] * 1000, 1),
        "worst_window_at_s": round((worst[0] - t0) * width, 1),
        "windows_over_50ms": len(spikes),
        "windows_over_50ms_at_s": spikes[:20],
    }


async def run_target(
    name: str,
    command: list[str],
    ready: str,
    contacts: list[Contact],
    watchers: int,
    rate: float,
    args: argparse.Namespace,
    backend: RedisBackend,
) -> dict[str, Any]:
    sockets = len(contacts) * watchers
    tally = Tally(index={c.id.encode(): c.index for c in contacts})
    for c in contacts:  # a stored state, so that queuecast answers a subscribe with a snapshot
        await commit(backend, c, "snapshot")
    server = child(name, command, core=args.server_core, ready_prefix=ready, env=SERVICE_ENV)
    async with server as p:
        host, port = p.info["url"].removeprefix("http://").rsplit(":", 1)
        await asyncio.sleep(1.0)
        rss_base = rss_bytes(p.pid)
        t_open = time.monotonic()
        clients = await open_clients(host, int(port), sockets, tally.on_message)
        tally.subscribe_texts = [
            json.dumps({"op": "subscribe", "contact": contacts[i % len(contacts)].id})
            for i in range(sockets)
        ]
        if args.subscribe == "staged":
            # One socket first, then one watcher per contact, then the others: broadcaster's
            # Redis listener can miss its start when the first subscribes come at once (it then
            # delivers nothing), and it keeps only one of concurrent first subscribes to a
            # channel (`--subscribe burst` shows both).
            clients[0].send_text(tally.subscribe_texts[0])
            await asyncio.sleep(0.5)
            for client in clients[1 : len(contacts)]:
                client.send_text(tally.subscribe_texts[client.tag])
            await asyncio.sleep(1.0)
            rest = clients[len(contacts) :]
        else:
            rest = clients
        for client in rest:
            client.send_text(tally.subscribe_texts[client.tag])
        if name == "queuecast":
            deadline = time.monotonic() + 60
            while tally.snapshots < sockets and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(args.settle)
        subscribed_s = time.monotonic() - t_open
        gc.collect()
        rss_idle = rss_bytes(p.pid)

        commits_per_s = rate / watchers
        await inject(backend, contacts, tally, watchers, commits_per_s, args.warmup, False)
        profiler = None
        if args.profile and args.profile.endswith(".data"):
            # perf sees what py-spy cannot: the interpreter's C functions, the GC, the kernel.
            profiler = await asyncio.create_subprocess_exec(
                *("perf", "record", "-F", "999", "-g", "-p", str(p.pid)),
                *(
                    "-o",
                    str(profile_path(args.profile, name)),
                    "--",
                    "sleep",
                    str(int(args.duration)),
                ),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        elif args.profile:
            fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
            profiler = await asyncio.create_subprocess_exec(
                *(str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking"),
                *("--pid", str(p.pid), "--duration", str(int(args.duration))),
                *("--format", fmt, "--output", str(profile_path(args.profile, name))),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        split0 = cpu_split(p.pid)
        cpu0, frames0, t0 = sum(split0), tally.frames, time.monotonic()
        tally.record = True
        commits = await inject(
            backend, contacts, tally, watchers, commits_per_s, args.duration, True
        )
        t1, frames1 = time.monotonic(), tally.frames
        measured = [d for d in tally.sent.values() if d.measured]
        expected = sum(d.expected for d in measured)
        drain_end = time.monotonic() + args.drain
        while time.monotonic() < drain_end and sum(d.received for d in measured) < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        split1 = cpu_split(p.pid)
        cpu1, frames2 = sum(split1), tally.frames
        rss_loaded = rss_bytes(p.pid)
        if profiler is not None:
            await profiler.wait()
        received = sum(min(d.received, d.expected) for d in measured)
        duplicates = sum(max(0, d.received - d.expected) for d in measured)
        pings = sum(c.pings for c in clients)
        closed = sum(1 for c in clients if c.closed.done())
        for client in clients:
            client.close()
        await asyncio.sleep(0.5)
    lat = sorted(tally.latencies)
    delivered_during = frames2 - frames0
    return {
        "target": name,
        "sockets": sockets,
        "contacts": len(contacts),
        "watchers": watchers,
        "rate_target": rate,
        "commits": commits,
        "subscribe_s": round(subscribed_s, 2),
        "delivered_per_s": round((frames1 - frames0) / (t1 - t0)),
        "expected": expected,
        "lost": expected - received,
        "duplicates": duplicates,
        "foreign_frames": tally.foreign,
        "subscribe_retries": tally.retries,
        "other_frames": tally.other,
        "other_samples": tally.samples,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "server_cpu_s": round(cpu1 - cpu0, 2),
        "server_cpu_us_per_frame": round((cpu1 - cpu0) / max(1, delivered_during) * 1e6, 2),
        "server_user_us_per_frame": round(
            (split1[0] - split0[0]) / max(1, delivered_during) * 1e6, 2
        ),
        "server_sys_us_per_frame": round(
            (split1[1] - split0[1]) / max(1, delivered_during) * 1e6, 2
        ),
        "rss_base_mb": round(rss_base / 2**20, 1),
        "rss_idle_kb_per_socket": round((rss_idle - rss_base) / sockets / 1024, 1),
        "rss_loaded_kb_per_socket": round((rss_loaded - rss_base) / sockets / 1024, 1),
        "pings_seen": pings,
        "sockets_closed": closed,
        **worst_window(tally.timeline),
    }


def profile_path(profile: str, target: str) -> Path:
    """`dir/prof.svg` for target `queuecast` -> `dir/queuecast-prof.svg`."""
    path = Path(profile)
    return path.with_name(f"{target}-{path.name}")


def summary(r: dict[str, Any]) -> str:
    return (
        f"{r['target']:>10} {r['sockets']} sockets ({r['contacts']}x{r['watchers']}) at "
        f"{r['rate_target']:,.0f}/s: delivered {r['delivered_per_s']:,}/s, lost {r['lost']:,} "
        f"of {r['expected']:,}, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms,"
        f" CPU {r['server_cpu_us_per_frame']} us/frame (user {r['server_user_us_per_frame']},"
        f" sys {r['server_sys_us_per_frame']}), RSS {r['rss_idle_kb_per_socket']} KB/"
        f"socket idle, {r['rss_loaded_kb_per_socket']} KB loaded; worst 100 ms window "
        f"{r.get('worst_window_max_ms')} ms, {r.get('windows_over_50ms')} windows > 50 ms"
    )


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    async with quiet_contact_center(args.load_core) as (redis, emu):
        pool = aioredis.BlockingConnectionPool.from_url(redis.url, max_connections=32, timeout=10)
        client = aioredis.Redis(connection_pool=pool)
        backend = RedisBackend(client)
        most = max(SCENARIOS[s][0] for s in scenarios)
        contacts = await truth_contacts(emu.info["endpoint_url"], most)
        try:
            for scenario in scenarios:
                m, watchers, rate = SCENARIOS[scenario]
                if args.sockets_scale != 1.0:
                    watchers = max(1, round(watchers * args.sockets_scale))
                    rate *= args.sockets_scale
                targets = {
                    "queuecast": (
                        service_command(emu.info, "--redis-url", redis.url, *args.service_flag),
                        "queuecast-serve ready ",
                    ),
                    **{
                        f"broadcaster{suffix}": (
                            [
                                *service_command(emu.info)[:1],
                                "bench/peers/broadcaster_server.py",
                                *("--redis-url", redis.url, "--port", "0", "--ws", ws),
                            ],
                            "broadcaster-peer ready ",
                        )
                        for suffix, ws in PEERS.items()
                    },
                }
                for name in args.targets.split(","):
                    command, ready = targets[name]
                    result = await run_target(
                        name, command, ready, contacts[:m], watchers, rate, args, backend
                    )
                    result["scenario"] = scenario
                    print(summary(result), flush=True)
                    results.append(result)
        finally:
            await client.aclose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--targets",
        default="queuecast,broadcaster",
        help="comma-separated: queuecast, broadcaster, broadcaster-websockets (uvicorn's legacy"
        " implementation), broadcaster-wsproto",
    )
    parser.add_argument("--duration", type=float, default=25.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after subscribing")
    parser.add_argument("--sockets-scale", type=float, default=1.0, help="scale watchers and rate")
    parser.add_argument(
        "--service-flag", action="append", default=[], help="extra `queuecast serve` flag"
    )
    parser.add_argument("--subscribe", choices=["staged", "burst"], default="staged")
    parser.add_argument(
        "--profile",
        help="py-spy the servers into <target>-PROFILE (.svg flame graph, .txt collapsed stacks),"
        " or `perf record -g` them when PROFILE ends in .data",
    )
    add_pinned_target_args(parser)
    return run_pinned_targets(parser.parse_args(), run, summary)


if __name__ == "__main__":
    raise SystemExit(main())
