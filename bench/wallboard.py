"""Wallboard rendering: one queue of N waiting contacts, R updates/s, measured in Chromium.

For each size (500 contacts, then 100 as the baseline):

1. redis-server, the emulator (quiet: no arrivals, no agents) and `queuecast serve` start on
   loopback (tests/support); headless Chromium (Playwright, /usr/bin/chromium, the flags of
   tests/browser/conftest.py) opens `static/wallboard.html` for one queue with a `queues` token;
2. N waiting contacts are committed into that queue through the service's own publish path,
   `RedisBackend.commit` on the service's Redis (as bench/fanout.py does); the time until the
   table shows N rows is the load time;
3. after a short warm-up, R commits/s for `--duration` s: a poller reading the contacts
   round-robin, each read publishing the contact's current position (departures ahead of it
   move it up) and a moved EWT; every 2 s (`--churn`) one contact ends (mostly the first in
   line, sometimes one further back, as an abandon) and one new contact arrives at the end;
4. measured in the page: frame intervals from a requestAnimationFrame loop (p50/p95/p99/max),
   dropped frames (intervals longer than one 60 Hz vsync count the vsyncs they missed), long
   tasks (PerformanceObserver 'longtask': count, total, longest), main-thread time by kind
   (CDP Performance.getMetrics: script, layout, style), JS heap and DOM nodes;
5. then every contact whose shown state is behind the truth gets one last commit, and the table
   must show exactly the N current contacts in position order (checked against the model).

Stops by itself; loopback only. The contacts are not tracked by the service, so nothing polls
them: the states committed here are the only ones. Chromium renders in software
(--disable-gpu) and shares the machine with the service, Redis and this script.

    .venv/bin/python bench/wallboard.py                  # 500 and 100 contacts, 30 s each
    .venv/bin/python bench/wallboard.py --sizes 500 --profile 15   # + JS self time, top functions
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from _harness import print_result
from playwright.async_api import Page, async_playwright

from server.bus import Commit
from server.bus.redis import RedisBackend
from server.events import encode_head, seq_of, utc_iso
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, QUIET_FLAGS
from tests.support.emulator import start_emulator_process
from tests.support.redis import running_redis
from tests.support.service import mint_test_token, start_service_process

VSYNC_MS = 1000 / 60
EWT_PER_POSITION = 24  # seconds of estimated wait per place in line
ARRIVAL_SPACING = 20  # seconds between two enqueue times of the initial contacts

# Runs before the page's own scripts (CDP, so the service's CSP does not apply).
PROBE = """
(() => {
  const bench = (window.__bench = { frames: [], longtasks: [], messages: 0, recording: false });
  const loop = (t) => {
    if (bench.recording) bench.frames.push(t);
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
  new PerformanceObserver((list) => {
    if (!bench.recording) return;
    for (const e of list.getEntries()) bench.longtasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask" });
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => { bench.messages += 1; });
    }
  };
  bench.start = () => {
    bench.frames = [];
    bench.longtasks = [];
    bench.messages0 = bench.messages;
    bench.t0 = performance.now();
    bench.recording = true;
  };
  bench.stop = () => {
    bench.recording = false;
    return { frames: bench.frames, longtasks: bench.longtasks,
             messages: bench.messages - bench.messages0, ms: performance.now() - bench.t0 };
  };
})();
"""

SHOWN_ROWS = """(queue) => [...document.querySelectorAll(
  `section[data-queue="${queue}"] tbody tr:not(.leaving)`)]
  .map(r => [r.dataset.contact, r.dataset.position])"""


@dataclass
class Contact:
    id: str
    enqueued: str
    noise: int  # this contact's EWT offset from position x EWT_PER_POSITION; it drifts
    seq: int = 0
    published: tuple[int, int] | None = None  # (position, ewt) last committed


@dataclass
class QueueModel:
    """The truth: who waits, in which order; and what was last published for each."""

    instance: str
    queue: str
    line: list[Contact] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    cursor: int = 0
    ended: int = 0
    arrived: int = 0

    def ewt(self, position: int, contact: Contact) -> int:
        return max(0, position * EWT_PER_POSITION + contact.noise)

    def add(self, enqueued: float) -> Contact:
        contact = Contact(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "", 0)
        contact.enqueued = utc_iso(enqueued)
        contact.noise = self.rng.randint(-10, 10)
        self.line.append(contact)
        return contact

    def truth(self) -> list[tuple[str, str]]:
        return [(c.id, str(i + 1)) for i, c in enumerate(self.line)]

    def head(self, contact: Contact, kind: str = "update") -> bytes:
        if kind == "ended":
            position = ewt = None
        else:
            position = self.line.index(contact) + 1
            ewt = self.ewt(position, contact)
        return encode_head(
            kind,  # type: ignore[arg-type]
            instance=self.instance,
            contact=contact.id,
            queue=self.queue,
            position=position,
            ewt=ewt,
            at=utc_iso(time.time()),
            stale=False,
            reason="left_queue" if kind == "ended" else None,
            enqueued=contact.enqueued,
        )


async def commit(
    backend: RedisBackend, model: QueueModel, contact: Contact, kind: str = "update"
) -> None:
    ended = kind == "ended"
    head = model.head(contact, kind)
    data = await backend.commit(
        Commit(contact.id, model.queue, head, ttl=300 if ended else 3600, ended=ended)
    )
    contact.seq = seq_of(data)
    if not ended:
        position = model.line.index(contact) + 1
        contact.published = (position, model.ewt(position, contact))


async def next_event(backend: RedisBackend, model: QueueModel, churn_due: bool) -> str:
    """Commit one event: an `ended` or an arrival when churn is due, else a round-robin read."""
    if churn_due:
        if model.ended <= model.arrived:
            # Mostly the first in line is served; sometimes someone further back gives up.
            index = 0 if model.rng.random() < 0.8 else model.rng.randrange(len(model.line))
            contact = model.line[index]
            await commit(backend, model, contact, "ended")
            model.line.pop(index)
            model.ended += 1
            return "ended"
        contact = model.add(time.time())
        model.cursor %= max(1, len(model.line))
        await commit(backend, model, contact, "snapshot")
        model.arrived += 1
        return "arrival"
    model.cursor %= len(model.line)
    contact = model.line[model.cursor]
    model.cursor += 1
    contact.noise += model.rng.choice((-15, -10, -5, 5, 10, 15))  # the estimate always moves
    await commit(backend, model, contact)
    return "update"


async def inject(
    backend: RedisBackend, model: QueueModel, rate: float, churn: float, seconds: float
) -> dict[str, int]:
    """Commit `rate` events per second for `seconds`, `churn` of them ended+arrival pairs."""
    counts = {"update": 0, "ended": 0, "arrival": 0}
    start = time.monotonic()
    done = 0
    churn_done = 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate)
        while done < due:
            churn_due = int((now - start) * churn * 2) > churn_done
            counts[await next_event(backend, model, churn_due)] += 1
            churn_done += churn_due
            done += 1
        await asyncio.sleep(0.002)
    if model.ended > model.arrived:  # finish the pair: the queue ends as long as it started
        counts[await next_event(backend, model, True)] += 1
    return counts


async def settle(backend: RedisBackend, model: QueueModel) -> int:
    """Publish the truth of every contact whose last published position or EWT is behind."""
    behind = []
    for i, contact in enumerate(model.line):
        if contact.published != (i + 1, model.ewt(i + 1, contact)):
            behind.append(contact)
    gate = asyncio.Semaphore(32)

    async def one(contact: Contact) -> None:
        async with gate:
            await commit(backend, model, contact)

    await asyncio.gather(*(one(c) for c in behind))
    return len(behind)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def frame_figures(raw: dict[str, Any]) -> dict[str, Any]:
    frames = raw["frames"]
    intervals = [b - a for a, b in itertools.pairwise(frames)]
    dropped = sum(max(0, round(d / VSYNC_MS) - 1) for d in intervals)
    span = frames[-1] - frames[0] if len(frames) > 1 else 0.0
    longtasks = [d for _, d in raw["longtasks"]]
    return {
        "seconds": round(raw["ms"] / 1000, 1),
        "frames": len(frames),
        "fps": round(len(intervals) / (span / 1000), 1) if span else 0.0,
        "frame_p50_ms": round(percentile(intervals, 0.50), 1),
        "frame_p95_ms": round(percentile(intervals, 0.95), 1),
        "frame_p99_ms": round(percentile(intervals, 0.99), 1),
        "frame_max_ms": round(max(intervals, default=0.0), 1),
        "dropped_share": round(dropped / max(1, round(span / VSYNC_MS)), 4),
        "longtasks": len(longtasks),
        "longtask_total_ms": round(sum(longtasks)),
        "longtask_max_ms": round(max(longtasks, default=0.0)),
        "ws_messages_per_s": round(raw["messages"] / (raw["ms"] / 1000), 1),
    }


async def metrics(cdp: Any) -> dict[str, float]:
    reply = await cdp.send("Performance.getMetrics")
    return {m["name"]: m["value"] for m in reply["metrics"]}


def busy_figures(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """Main-thread time by kind over the phase, as a share of wall time."""

    def share(name: str) -> float:
        return round((after[name] - before[name]) / seconds, 3)

    return {
        "main_busy_share": share("TaskDuration"),
        "script_share": share("ScriptDuration"),
        "layout_share": share("LayoutDuration"),
        "style_share": share("RecalcStyleDuration"),
        "heap_mb_start": round(before["JSHeapUsedSize"] / 2**20, 1),
        "heap_mb_end": round(after["JSHeapUsedSize"] / 2**20, 1),
        "dom_nodes_end": int(after["Nodes"]),
    }


def top_functions(profile: dict[str, Any], count: int = 12) -> list[tuple[str, float]]:
    """Self time per function (ms) from a CDP CPU profile, highest first."""
    by_id = {node["id"]: node for node in profile["nodes"]}
    interval = (profile["endTime"] - profile["startTime"]) / max(1, len(profile["samples"]))
    self_ms: dict[str, float] = {}
    for sample in profile["samples"]:
        frame = by_id[sample]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1]
        name = f"{frame['functionName'] or '(anonymous)'} {url}:{frame['lineNumber'] + 1}"
        self_ms[name] = self_ms.get(name, 0.0) + interval / 1000
    ranked = sorted(self_ms.items(), key=lambda kv: -kv[1])
    return [(name, round(ms, 1)) for name, ms in ranked[:count]]


async def shown(page: Page, queue: str) -> list[tuple[str, str]]:
    rows = await page.evaluate(SHOWN_ROWS, queue)
    return [tuple(row) for row in rows]


async def run_size(
    page: Page, cdp: Any, backend: RedisBackend, model: QueueModel, args: argparse.Namespace
) -> dict[str, Any]:
    size = args.size
    result: dict[str, Any] = {"contacts": size, "rate": args.rate, "churn": args.churn}

    # Load: N contacts at once, as a burst of commits (32 at a time).
    start = time.time() - size * ARRIVAL_SPACING
    for i in range(size):
        model.add(start + i * ARRIVAL_SPACING)
    await page.evaluate("() => window.__bench.start()")
    t0 = time.monotonic()
    gate = asyncio.Semaphore(32)

    async def first(contact: Contact) -> None:
        async with gate:
            await commit(backend, model, contact, "snapshot")

    await asyncio.gather(*(first(c) for c in model.line))
    await page.wait_for_function(
        """([queue, n]) => document.querySelectorAll(
             `section[data-queue="${queue}"] tbody tr:not(.leaving)`).length === n""",
        arg=[model.queue, size],
        timeout=60_000,
    )
    result["load_s"] = round(time.monotonic() - t0, 2)
    load = frame_figures(await page.evaluate("() => window.__bench.stop()"))
    result["load_longtasks"] = load["longtasks"]
    result["load_longtask_max_ms"] = load["longtask_max_ms"]
    await asyncio.sleep(args.warmup)

    # Steady state: R commits/s.
    before = await metrics(cdp)
    if args.profile:
        await cdp.send("Profiler.enable")
        await cdp.send("Profiler.setSamplingInterval", {"interval": 200})
        await cdp.send("Profiler.start")
    await page.evaluate("() => window.__bench.start()")
    counts = await inject(backend, model, args.rate, args.churn, args.duration)
    raw = await page.evaluate("() => window.__bench.stop()")
    after = await metrics(cdp)
    if args.profile:
        profile = (await cdp.send("Profiler.stop"))["profile"]
        result["top_self_ms"] = top_functions(profile, args.profile)
    result["committed"] = counts
    result.update(frame_figures(raw))
    result.update(busy_figures(before, after, raw["ms"] / 1000))

    # Correctness: one last commit for whoever is behind, then the table must equal the truth.
    t1 = time.monotonic()
    result["settle_commits"] = await settle(backend, model)
    truth = model.truth()
    deadline = time.monotonic() + 30
    rows = await shown(page, model.queue)
    while rows != truth and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        rows = await shown(page, model.queue)
    result["settle_s"] = round(time.monotonic() - t1, 2)
    await asyncio.sleep(1.0)  # the leaving rows' fade-out
    rows = await shown(page, model.queue)
    all_rows = await page.evaluate(
        "(q) => document.querySelectorAll(`section[data-queue='${q}'] tbody tr`).length",
        model.queue,
    )
    # "Waiting" is Connect's own count (GetCurrentMetricData): the emulator's queue, which these
    # synthetic contacts are not in. The listed count is the table's.
    listed = await page.get_attribute(f"section[data-queue='{model.queue}']", "data-listed")
    result["correct"] = rows == truth and all_rows == len(truth) == size and listed == str(size)
    if not result["correct"]:
        wrong = sum(1 for a, b in zip(rows, truth, strict=False) if a != b)
        result["mismatch"] = {"rows": len(rows), "all_rows": all_rows, "wrong": wrong}
    return result


async def run_one(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qc-bench-wallboard-") as workdir:
        async with (
            running_redis(Path(workdir)) as redis,
            start_emulator_process(*QUIET_FLAGS) as emulator,
            start_service_process(emulator, redis.url, "--log-level", "WARNING") as service,
            async_playwright() as playwright,
        ):
            queue = emulator.queues["sales"]
            model = QueueModel(emulator.instance_id, queue, rng=random.Random(args.seed))
            client = aioredis.Redis(
                connection_pool=aioredis.BlockingConnectionPool.from_url(
                    redis.url, max_connections=32, timeout=10
                )
            )
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context(viewport={"width": 1920, "height": 1080})
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.add_init_script(PROBE)
                cdp = await context.new_cdp_session(page)
                await cdp.send("Performance.enable")
                token = mint_test_token("queues", queues=[queue])
                tv = "&tv=1" if args.tv else ""
                await page.goto(
                    f"{service.url}/static/wallboard.html?queues={queue}:Sales{tv}#token={token}"
                )
                await page.wait_for_selector("#connection[data-state='live']")
                await asyncio.sleep(0.5)  # the subscription and the first GET
                result = await run_size(page, cdp, RedisBackend(client), model, args)
                result["page_errors"] = errors
                return result
            finally:
                await browser.close()
                await client.aclose()


def summary(r: dict[str, Any]) -> str:
    return (
        f"{r['contacts']} contacts, {r['rate']:g} commits/s for {r['seconds']} s "
        f"({r['ws_messages_per_s']} frames/s received): frame p50 {r['frame_p50_ms']} ms, "
        f"p95 {r['frame_p95_ms']} ms, p99 {r['frame_p99_ms']} ms, max {r['frame_max_ms']} ms, "
        f"{r['fps']} fps, dropped {r['dropped_share']:.1%}; long tasks {r['longtasks']} "
        f"({r['longtask_total_ms']} ms, longest {r['longtask_max_ms']} ms); main thread busy "
        f"{r['main_busy_share']:.0%} (script {r['script_share']:.0%}, layout "
        f"{r['layout_share']:.0%}, style {r['style_share']:.0%}); heap {r['heap_mb_start']}"
        f"->{r['heap_mb_end']} MB, {r['dom_nodes_end']} DOM nodes; load {r['load_s']} s "
        f"({r['load_longtasks']} long tasks, longest {r['load_longtask_max_ms']} ms); "
        f"settled in {r['settle_s']} s, correct: {r['correct']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,100", help="contacts in the queue, one run each")
    parser.add_argument("--rate", type=float, default=20.0, help="commits per second")
    parser.add_argument("--churn", type=float, default=0.5, help="ended+arrival pairs per s")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="idle seconds after the load")
    parser.add_argument("--tv", action="store_true", help="big-screen mode (no scroll box)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print the N top JS functions")
    parser.add_argument("--json-out", help="also write the results here")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        args.size = size
        result = asyncio.run(run_one(args))
        print_result(summary(result), result)
        for name, ms in result.get("top_self_ms", []):
            print(f"  {ms:8.1f} ms  {name}")
        results.append(result)
    if len(results) > 1:
        base = results[-1]
        for r in results[:-1]:
            ratio = {
                k: round(r[k] / base[k], 2) if base[k] else None
                for k in ("frame_p95_ms", "main_busy_share", "script_share", "layout_share")
            }
            print(f"{r['contacts']} vs {base['contacts']} contacts: {json.dumps(ratio)}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    failed = [r for r in results if not r["correct"] or r["page_errors"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
