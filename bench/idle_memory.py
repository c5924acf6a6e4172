"""RSS per idle WebSocket: N sockets, each subscribed to one of M contacts, then nothing.

A bounded, self-stopping companion of `bench/fanout.py` for memory work (issue 7): the same
set-up (a throwaway redis-server, the paused emulator, `queuecast serve --allow-anonymous`,
the same subscribe order) without the minutes of load, so it can be run after each change.

1. the server starts pinned to core 0; redis-server, the emulator and this client share core 1;
2. RSS before any socket; N sockets open and subscribe (queuecast answers each with a
   snapshot), `--settle` idle seconds, RSS again;
3. printed: (RSS idle - RSS before) / N, as fanout.py's `rss_idle_kb_per_socket`.

With `--objects` the server also reports its gc-tracked objects by type at both points, and
with `--tracemalloc FRAMES` its Python allocations, diffed and grouped by traceback, per socket
(tracing slows the server and itself takes memory: read its RSS figure as disturbed).

    .venv/bin/python bench/idle_memory.py                         # ~30 s, 5,000 sockets
    .venv/bin/python bench/idle_memory.py --objects --tracemalloc 12
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from _harness import (
    SERVICE_ENV,
    Child,
    child,
    pin_self,
    quiet_contact_center,
    raise_nofile,
    rss_bytes,
    service_command,
)
from _wsload import LoadClient, open_clients
from fanout import Contact, commit, truth_contacts

from server.bus.redis import RedisBackend

PROBE = str(Path(__file__).with_name("_serve_probe.py"))


async def probe(server: Child, out_dir: Path, n: int) -> dict[str, Any]:
    """Ask the server for probe number `n` (see `_serve_probe.py`) and read it."""
    path = out_dir / f"probe-{n}.pickle"
    os.kill(server.pid, signal.SIGUSR1)
    async with asyncio.timeout(120):
        while not path.exists():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    data: dict[str, Any] = pickle.loads(path.read_bytes())
    return data


def peak_rss_bytes(pid: int) -> int:
    """The process's RSS high-water mark (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def where(trace: tracemalloc.Traceback, frames: int) -> str:
    """The innermost `frames` frames, innermost first, paths shortened to the package."""
    out = []
    for frame in list(trace)[::-1][:frames]:
        name = frame.filename
        for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
            if marker in name:
                name = name.split(marker, 1)[1]
        out.append(f"{name}:{frame.lineno}")
    return " < ".join(out)


def report_allocators(before: dict[str, int], after: dict[str, int], sockets: int) -> None:
    """Where the RSS growth sits: pymalloc's arenas (objects up to 512 bytes) and glibc's
    heap (larger blocks, and pymalloc's arenas are mmapped outside it), used and free."""
    print("allocators (KB per socket, growth):")
    for key in sorted(after):
        if key in before and key != "pymalloc_arenas":
            print(f"  {(after[key] - before[key]) / sockets / 1024:7.2f}  {key}")


def report_objects(before: dict[str, int], after: dict[str, int], sockets: int, top: int) -> None:
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}
    total = sum(diff.values())
    print(f"gc-tracked objects: {total / sockets:.1f} per socket; largest by type (per socket):")
    for kind, count in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {count / sockets:7.2f}  {kind}")


def report_allocations(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int, top: int
) -> None:
    stats = after.compare_to(before, "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"Python allocations (tracemalloc): {total / sockets:.0f} bytes per socket")
    by_line = after.compare_to(before, "lineno")
    print("largest allocation lines (bytes, blocks per socket):")
    for s in by_line[:top]:
        print(
            f"  {s.size_diff / sockets:7.0f} {s.count_diff / sockets:6.2f}  {where(s.traceback, 1)}"
        )
    print("largest allocation tracebacks (bytes, blocks per socket; innermost frame first):")
    for s in stats[:top]:
        print(
            f"  {s.size_diff / sockets:7.0f} {s.count_diff / sockets:6.2f}  {where(s.traceback, 6)}"
        )


def subscribe_text(client: LoadClient, contacts: list[Contact]) -> str:
    return json.dumps({"op": "subscribe", "contact": contacts[client.tag % len(contacts)].id})


async def subscribe_all(clients: list[LoadClient], contacts: list[Contact]) -> None:
    """fanout.py's staged order: one socket, then one per contact, then the rest at once."""
    clients[0].send_text(subscribe_text(clients[0], contacts))
    await asyncio.sleep(0.5)
    for client in clients[1 : len(contacts)]:
        client.send_text(subscribe_text(client, contacts))
    await asyncio.sleep(1.0)
    for client in clients[len(contacts) :]:
        client.send_text(subscribe_text(client, contacts))


async def measure(args: argparse.Namespace, emulator: dict[str, Any], redis_url: str) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32, timeout=10)
    client = aioredis.Redis(connection_pool=pool)
    try:
        contacts = await truth_contacts(emulator["endpoint_url"], args.contacts)
        backend = RedisBackend(client)
        for c in contacts:  # a stored state, so that a subscribe is answered with a snapshot
            await commit(backend, c, "snapshot")
    finally:
        await client.aclose()
    command = service_command(emulator, "--redis-url", redis_url)
    command[1:3] = [PROBE]  # `python -m server serve ...` -> `python PROBE serve ...`
    probing = args.objects or args.tracemalloc
    with tempfile.TemporaryDirectory(prefix="qc-idle-") as out:
        env = {**SERVICE_ENV, "QC_PROBE_DIR": out, "QC_PROBE_TRACEMALLOC": str(args.tracemalloc)}
        if args.uvloop:
            env["QC_PROBE_UVLOOP"] = "1"
        ready = "queuecast-serve ready "
        async with child(
            "queuecast", command, core=args.server_core, ready_prefix=ready, env=env
        ) as p:
            host, port = p.info["url"].removeprefix("http://").rsplit(":", 1)
            await asyncio.sleep(1.0)
            rss_base = rss_bytes(p.pid)
            first = await probe(p, Path(out), 0) if probing else None
            snapshots = 0
            loop = asyncio.get_running_loop()

            def on_message(client: LoadClient, payload: bytes, _now: float) -> None:
                nonlocal snapshots
                if payload.startswith(b'{"type":"snapshot"'):
                    snapshots += 1
                elif payload.startswith(b'{"type":"error","code":"unavailable"'):
                    # What the protocol tells a client to do (a slow, traced server): retry.
                    loop.call_later(0.5, client.send_text, subscribe_text(client, contacts))

            t0 = time.monotonic()
            clients = await open_clients(host, int(port), args.sockets, on_message)
            await asyncio.sleep(0.5)  # the last handshakes' tasks reach their first wait
            rss_open = rss_bytes(p.pid)
            opened = await probe(p, Path(out), 1) if probing else None
            await subscribe_all(clients, contacts)
            deadline = time.monotonic() + 300
            while snapshots < args.sockets and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if snapshots < args.sockets:
                raise RuntimeError(f"only {snapshots} of {args.sockets} subscribes answered")
            opened_s = time.monotonic() - t0
            await asyncio.sleep(args.settle)
            rss_idle = rss_bytes(p.pid)
            rss_peak = peak_rss_bytes(p.pid)
            second = await probe(p, Path(out), 2) if probing else None
            closed = sum(1 for c in clients if c.closed.done())
            for c in clients:
                c.close()
    n = args.sockets
    print(
        f"{n} sockets ({args.contacts} contacts) open and subscribed in {opened_s:.1f} s,"
        f" {closed} closed; RSS before {rss_base / 2**20:.1f} MB, idle"
        f" {rss_idle / 2**20:.1f} MB{' (tracing: disturbed)' if args.tracemalloc else ''}"
    )
    print(
        f"rss_idle_kb_per_socket {(rss_idle - rss_base) / n / 1024:.1f}"
        f" (open, before subscribing: {(rss_open - rss_base) / n / 1024:.1f};"
        f" peak: {(rss_peak - rss_base) / n / 1024:.1f})"
    )
    if first is not None and opened is not None and second is not None:
        found = [p["collected"] for p in (first, opened, second)]
        print(f"cyclic garbage found by the probes: {found}")
        print("open, before subscribing:")
        report_allocators(first["allocators"], opened["allocators"], n)
        print("idle, subscribed:")
        report_allocators(first["allocators"], second["allocators"], n)
        report_objects(first["objects"], second["objects"], n, args.top)
        if first["snapshot"] is not None:
            report_allocations(first["snapshot"], second["snapshot"], n, args.top)


async def run(args: argparse.Namespace) -> None:
    async with quiet_contact_center(args.load_core) as (redis, emu):
        await measure(args, emu.info, redis.url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--contacts", type=int, default=50, help="each socket watches one")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after subscribing")
    parser.add_argument("--objects", action="store_true", help="gc-tracked objects by type")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace allocations"
    )
    parser.add_argument("--uvloop", action="store_true", help="serve on uvloop's event loop")
    parser.add_argument("--top", type=int, default=20, help="rows per breakdown")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    raise_nofile()
    pin_self(args.load_core)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
