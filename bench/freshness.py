"""Freshness under the quota: how often, and how long, a subscriber is shown a wrong position.

The emulator runs a busy contact center: 4 queues, `--sizes` contacts waiting at the start,
about one dequeue per second in total (5 agents per queue, 20 s mean handle time) and as many
arrivals, so the waiting count stays level. Amazon Connect's quotas are at their defaults
(GetContactMetrics and DescribeContact 2 requests/s, burst 5; GetCurrentMetricData 5/s, burst
8) and `queuecast serve` runs with its defaults (in-process bus).

Two modes:
- `polling`: no contact events; queuecast has only what it reads, and subscribers name only
  their contact (as the baseline did).
- `polling+track`: the same, plus the documented production flow: the backend tracks each
  contact with its queue (`PUT /v1/contacts/{id}` with `queueId`, e.g. from a contact flow's
  Lambda) when it enters the queue.
- `events`: the emulator emits Amazon Connect contact events the way EventBridge delivers them;
  the bench relays them to the service's `POST /v1/events` and, on the way, applies each to an
  *ideal consumer* the instant it arrives: its wrong share is the floor that the delivery
  itself (delay, loss) imposes.

Two scenarios:
- `today`: everyone waiting is watched (one WebSocket subscriber each), one priority, nobody
  hangs up; events (in `events` mode) arrive after 0.5-2 s, none lost.
- `harder`: 10 % of arrivals at priority 1, about 10 % of contacts hang up, only 60 % of
  waiting contacts are watched; events delayed 0.5-2 s, 1 % lost, 1 % duplicated, and so
  reordered.

After `--warmup` unmeasured seconds, every 100 ms the position (and wait) each subscriber was
last told is compared with the emulator's truth (`GET /_sim/state`). Reported per size, mode
and scenario: the wrong share of watched contact-time (nothing shown yet counts as wrong, and
is also given apart), p50/p95 age of a wrong position when it is corrected, mean |shown - true|,
the wait estimate's error p50/p95, time from a QUEUED event's arrival to the first position
shown p50/p95, calls and throttles per Connect API (`/_sim/stats`), and the floor (events).
Loopback only; every run bounded by `--duration`; stops by itself.

`--start cold` (the default) is a restart: queuecast meets the whole backlog at once, and
without events every waiting contact costs one call before it can be shown (2,000 contacts:
500 s at 2 + 2 requests/s). `--start placed` is the steady state: time stands still until
every watched contact has been shown (queuecast saw them arrive; `placed_after_s` says how
long that took), then the run goes on as usual.

`--replicas N` runs N queuecast processes on one redis-server, sockets, tracks and events spread
over them in turn, as a round-robin load balancer would: they should be as fresh as one.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # matplotlib, once
    .venv/bin/python bench/freshness.py --sizes 20,200,2000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from _extras import require_modules
from _harness import (
    ROOT,
    SERVICE_ENV,
    child,
    emulator_command,
    pin_self,
    print_result,
    raise_nofile,
    redis_server,
    service_command,
)
from _wsload import LoadClient, open_clients
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

QUEUES = ("q1", "q2", "q3", "q4")
AGENTS, MEAN_SERVICE = 5, 20.0  # 4 queues x 5 agents / 20 s = 1 dequeue/s in total
ARRIVALS_PER_MINUTE = 15.0  # per queue: 4 x 15/min = 1 arrival/s, as many as leave
SAMPLE_EVERY = 0.1
EVENTS_KEY_HEADER = "X-Queuecast-Events-Key"


@dataclass(frozen=True)
class Scenario:
    name: str
    priority_one: float  # share of arrivals at priority 1
    hang_ups: bool  # about 10 % of contacts abandon
    watched: float  # share of waiting contacts with a subscriber
    delay: tuple[float, float]  # event delivery delay range, seconds
    loss: float
    duplicates: float


SCENARIOS = {
    "today": Scenario("today", 0.0, False, 1.0, (0.5, 2.0), 0.0, 0.0),
    "harder": Scenario("harder", 0.1, True, 0.6, (0.5, 2.0), 0.01, 0.01),
}


def is_watched(contact: str, share: float) -> bool:
    """A stable, seed-free choice of which contacts have a subscriber."""
    digest = hashlib.blake2b(contact.encode(), digest_size=2).digest()
    return int.from_bytes(digest) / 65536 < share


@dataclass
class Watched:
    client: LoadClient | None = None
    shown: int | None = None
    shown_ewt: int | None = None
    first_shown_at: float | None = None
    wrong_since: float | None = None
    wrong_start: dict[str, Any] | None = None  # what the episode began with (--episodes)


@dataclass
class Tally:
    """What subscribers were told, and how it compared with the truth."""

    watched: dict[str, Watched] = field(default_factory=dict)
    series: dict[str, list[tuple[float, int, int | None]]] = field(default_factory=dict)
    samples: int = 0
    wrong: int = 0
    unshown: int = 0
    abs_error: float = 0.0
    shown_samples: int = 0
    ewt_errors: list[float] = field(default_factory=list)
    ages: list[float] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)  # corrected, with context
    censored: int = 0  # wrong episodes still open when the contact left or the run ended
    ideal_wrong: int = 0

    def on_message(self, client: LoadClient, payload: bytes, now: float) -> None:
        if not payload.startswith((b'{"type":"snapshot"', b'{"type":"update"')):
            return
        event = json.loads(payload)
        watched = self.watched.get(event["contact"])
        if watched is not None and event["position"] is not None:
            watched.shown, watched.shown_ewt = event["position"], event["ewt"]
            if watched.first_shown_at is None:
                watched.first_shown_at = now


class IdealConsumer:
    """Applies every delivered contact event the instant it arrives: positions by enqueue
    time within each queue (events carry no priority), ended contacts never come back."""

    def __init__(self) -> None:
        self.waiting: dict[str, dict[str, float]] = {}
        self.where: dict[str, str] = {}
        self.ended: set[str] = set()
        self.queued_arrival: dict[str, float] = {}  # first QUEUED's arrival, bench clock

    def apply(self, envelope: dict[str, Any], arrived: float) -> None:
        detail = envelope.get("detail") or {}
        kind, contact = detail.get("eventType"), detail.get("contactId")
        if not contact or contact in self.ended:
            return
        if kind == "QUEUED":
            info = detail.get("queueInfo") or {}
            queue = (info.get("queueArn") or "").rsplit("/", 1)[-1]
            stamp = info.get("enqueueTimestamp") or envelope.get("time")
            enqueued = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            self.queued_arrival.setdefault(contact, arrived)
            old = self.where.get(contact)
            if old is not None:
                self.waiting[old].pop(contact, None)
            self.waiting.setdefault(queue, {})[contact] = enqueued
            self.where[contact] = queue
        elif kind in ("CONNECTED_TO_AGENT", "DISCONNECTED"):
            self.ended.add(contact)
            queue = self.where.pop(contact, None)
            if queue is not None:
                self.waiting[queue].pop(contact, None)

    def positions(self) -> dict[str, int]:
        """Every waiting contact's position, each queue sorted once: asked contact by contact,
        2,000 contacts cost 2,000 scans of their queue every sample, which held the bench's
        loop (and so the relay inside it) for most of each 100 ms."""
        out: dict[str, int] = {}
        for line in self.waiting.values():
            ordered = sorted(line.items(), key=lambda item: (item[1], item[0]))
            out.update((contact, i) for i, (contact, _) in enumerate(ordered, 1))
        return out


class EventRelay:
    """The bench's stand-in for EventBridge's API destination: takes each event the emulator
    posts, shows it to the ideal consumer, and forwards it to the service."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.targets: list[str] = []  # one per replica, taken in turn
        self._turn = itertools.count()
        self.ideal = IdealConsumer()
        self.forwarded = 0
        self.refused = 0
        self._http = httpx.AsyncClient(timeout=5.0)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with contextlib.suppress(ValueError):
            envelope = json.loads(body)
            for one in envelope if isinstance(envelope, list) else [envelope]:
                self.ideal.apply(one, time.monotonic())
        if not self.targets:
            return Response(status_code=503, headers={"Retry-After": "1"})
        try:
            answer = await self._http.post(
                self.targets[next(self._turn) % len(self.targets)],
                content=body,
                headers={"Content-Type": "application/json", EVENTS_KEY_HEADER: self.key},
            )
        except httpx.HTTPError:  # the service has stopped (the run is over): EventBridge retries
            self.refused += 1
            return Response(status_code=503, headers={"Retry-After": "1"})
        self.forwarded += answer.is_success
        self.refused += not answer.is_success
        return Response(answer.content, status_code=answer.status_code)

    async def close(self) -> None:
        await self._http.aclose()


@contextlib.asynccontextmanager
async def serve_relay(relay: EventRelay) -> Any:
    app = Starlette(routes=[Route("/events", relay.receive, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/events"
    finally:
        server.should_exit = True
        await task
        await relay.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def emulator_flags(scenario: Scenario, size: int) -> list[str]:
    flags = [f for q in QUEUES for f in ("--queue", f"{q}:{AGENTS}:0")]
    # About 10 % hang up: patience ~9.5x the mean wait (size/4 contacts a queue, 0.25/s each).
    patience = 9.5 * max(size, 20) if scenario.hang_ups else 0
    return [*flags, "--mean-service", str(MEAN_SERVICE), "--mean-patience", str(patience)]


async def configure_scenario(http: httpx.AsyncClient, scenario: Scenario, mode: str) -> None:
    if scenario.priority_one:
        ones = round(scenario.priority_one * 10)
        priorities = [1] * ones + [5] * (10 - ones)
        queues = {q: {"priorities": priorities} for q in QUEUES}
        (await http.put("/_sim/config", json={"queues": queues})).raise_for_status()
    if mode == "events":
        delivery = {
            "minDelay": scenario.delay[0],
            "maxDelay": scenario.delay[1],
            "loss": scenario.loss,
            "duplication": scenario.duplicates,
        }
        (await http.put("/_sim/config", json={"eventDelivery": delivery})).raise_for_status()


async def run_one(size: int, mode: str, scenario: Scenario, args: argparse.Namespace) -> dict:
    key = secrets.token_urlsafe(24)
    relay = EventRelay(key)
    async with contextlib.AsyncExitStack() as stack:
        emu_extra: list[str] = []
        if mode == "events":
            relay_url = await stack.enter_async_context(serve_relay(relay))
            emu_extra = ["--events-url", relay_url]
        emu = await stack.enter_async_context(
            child(
                "emulator",
                emulator_command(
                    "--seed",
                    str(args.seed),
                    "--paused",
                    *emulator_flags(scenario, size),
                    *emu_extra,
                ),
                core=args.load_core,
                ready_prefix="queuecast-simulate ready ",
            )
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=emu.info["endpoint_url"], timeout=30)
        )
        await configure_scenario(http, scenario, mode)
        svc_flags = ["--events-key", key] if mode == "events" else []
        if args.replicas > 1:
            # Replicas behind a load balancer: one redis-server, sockets, tracks and events
            # spread over them in turn (a round-robin balancer).
            redis = await stack.enter_async_context(redis_server(args.server_core))
            svc_flags += ["--redis-url", redis.url]
        services = [
            await stack.enter_async_context(
                child(
                    "queuecast",
                    service_command(emu.info, *svc_flags, "--replica-id", f"r{i}"),
                    core=args.server_core,
                    ready_prefix="queuecast-serve ready ",
                    env=SERVICE_ENV,
                )
            )
            for i in range(args.replicas)
        ]
        urls = [svc.info["url"] for svc in services]
        relay.targets = [url + "/v1/events" for url in urls]
        # Fill the queues while time stands still (the service hears of each contact as a
        # real one would: by its events, or not at all); the free agents take the first ones.

        total = size + len(QUEUES) * AGENTS

        async def create(i: int) -> None:
            # Oldest first, one arrival every 4 s per queue (the arrival rate below): the
            # queues look as if they built up over time, not as if everyone came at once.
            body = {"queue": QUEUES[i % len(QUEUES)], "waitedSeconds": 4.0 * ((total - i) // 4)}
            (await http.post("/_sim/contacts", json=body)).raise_for_status()

        for i in range(total):
            await create(i)
        return await measure(size, mode, scenario, args, http, urls, relay)
    raise AssertionError("unreachable")


OPEN_AT_ONCE = 32  # subscriber sockets being opened at the same time


async def measure(
    size: int,
    mode: str,
    scenario: Scenario,
    args: argparse.Namespace,
    http: httpx.AsyncClient,
    service_urls: list[str],
    relay: EventRelay,
) -> dict[str, Any]:
    addresses = [url.removeprefix("http://").rsplit(":", 1) for url in service_urls]
    turn = itertools.count()
    backend_tracks = mode.endswith("+track")
    instance = (await http.get("/_sim/state")).json()["instances"][0]["id"]
    tally = Tally()
    loop = asyncio.get_running_loop()
    opening: set[asyncio.Task[None]] = set()
    seen: set[str] = set()

    # Opening 2,000 sockets at once on a loaded 2-core machine ran handshakes past the
    # service's handshake timeout (`closed during handshake`): a customer's widget opens one
    # socket when its page loads, not 2,000 in the same instant.
    opening_at_once = asyncio.Semaphore(OPEN_AT_ONCE)

    async def watch(contact: str) -> None:
        host, port = addresses[next(turn) % len(addresses)]
        async with opening_at_once:
            [client] = await open_clients(host, int(port), 1, tally.on_message)
        client.send_text(json.dumps({"op": "subscribe", "contact": contact}))
        w = tally.watched.get(contact)
        if w is None:  # left before the socket opened
            client.close()
        else:
            w.client = client

    tracker = httpx.AsyncClient(timeout=10)

    async def track(contact: str, queue: str) -> None:
        # What a contact flow's Lambda does when the caller enters the queue (README).
        body = {"instance": instance, "queueId": queue}
        url = service_urls[next(turn) % len(service_urls)]
        with contextlib.suppress(httpx.HTTPError):
            await tracker.put(f"{url}/v1/contacts/{contact}", json=body)

    first_seen: dict[str, float] = {}  # bench time each waiting contact was first in the truth
    queue_of: dict[str, list[dict[str, Any]]] = {}  # contact -> its queue's waiting, in order

    def discover(truth_queues: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        truth = {w["contactId"]: w for q in truth_queues for w in q["waiting"]}
        at = time.monotonic()
        for q in truth_queues if args.episodes else ():  # context for --episodes only
            for waiting in q["waiting"]:
                first_seen.setdefault(waiting["contactId"], at)
                queue_of[waiting["contactId"]] = q["waiting"]
        for q in truth_queues:
            for waiting in q["waiting"]:
                contact = waiting["contactId"]
                if contact in seen:
                    continue
                seen.add(contact)
                if not is_watched(contact, scenario.watched):
                    continue
                tally.watched[contact] = Watched()
                started = [loop.create_task(watch(contact))]
                if backend_tracks:
                    started.append(loop.create_task(track(contact, q["id"])))
                for task in started:
                    opening.add(task)
                    task.add_done_callback(opening.discard)
        return truth

    placed_after: float | None = None
    if args.start == "placed":
        # The steady state: queuecast was running while these callers arrived, so each was
        # placed on arrival. Time stands still until every watched contact is shown.
        discover((await http.get("/_sim/state")).json()["instances"][0]["queues"])
        began = time.monotonic()
        while time.monotonic() - began < args.place_limit:
            if tally.watched and all(w.shown is not None for w in tally.watched.values()):
                placed_after = round(time.monotonic() - began, 1)
                break
            await asyncio.sleep(0.5)
    arrivals = {q: ARRIVALS_PER_MINUTE for q in QUEUES}
    await http.put("/_sim/config", json={"paused": False, "arrivals": arrivals})
    warm_end = time.monotonic() + args.warmup
    while time.monotonic() < warm_end:
        discover((await http.get("/_sim/state")).json()["instances"][0]["queues"])
        await asyncio.sleep(SAMPLE_EVERY)
    # What became of the events before the window (the initial backlog among them).
    warmup_delivery = (await http.get("/_sim/stats")).json().get("contactEvents")
    await http.post("/_sim/stats/reset")
    told = [(w.shown, c) for c, w in tally.watched.items() if w.shown is not None]
    for _, contact in sorted(told, reverse=True)[: args.plot_contacts]:
        tally.series[contact] = []
    window_start = time.monotonic()
    end = window_start + args.duration
    slow = 0
    first_shown: list[float] = []
    while (now := time.monotonic()) < end:
        state = (await http.get("/_sim/state")).json()
        slow += time.monotonic() - now > SAMPLE_EVERY
        truth = discover(state["instances"][0]["queues"])
        now = time.monotonic()
        for contact in list(tally.watched):
            if contact not in truth:
                w = tally.watched.pop(contact)
                tally.censored += w.wrong_since is not None
                if w.client is not None:
                    w.client.close()
        ideal = relay.ideal.positions() if mode == "events" else {}
        for contact, w in tally.watched.items():
            real = truth[contact]
            position = real["position"]
            tally.samples += 1
            if mode == "events" and ideal.get(contact) != position:
                tally.ideal_wrong += 1
            if w.shown is not None:
                tally.shown_samples += 1
                tally.abs_error += abs(w.shown - position)
                if w.shown_ewt is not None and real.get("ewt") is not None:
                    tally.ewt_errors.append(abs(w.shown_ewt - real["ewt"]))
            if w.shown != position:
                tally.wrong += 1
                tally.unshown += w.shown is None
                if w.wrong_since is None:
                    w.wrong_since = now
                    w.wrong_start = (
                        None
                        if not args.episodes
                        else {
                            "shown": w.shown,
                            "true": position,
                            "priority": real.get("priority"),
                            "ideal_right": ideal.get(contact) == position if ideal else None,
                            # how long ago the newest caller routed ahead of it at a higher
                            # priority came (a priority arrival the book has not placed yet?)
                            "priority_ahead_age_s": min(
                                (
                                    round(now - first_seen[a["contactId"]], 2)
                                    for a in queue_of.get(contact, [])
                                    if a["position"] < position
                                    and (a.get("priority") or 5) < (real.get("priority") or 5)
                                ),
                                default=None,
                            ),
                            "at_s": round(now - window_start, 2),
                            "contact": contact[-6:],
                            # the line up to it: (contact, true position, shown or "-" unwatched);
                            # the first watched one shown off says where the book went wrong
                            "line": [
                                (
                                    a["contactId"][-6:],
                                    a["position"],
                                    (
                                        tally.watched[a["contactId"]].shown
                                        if a["contactId"] in tally.watched
                                        else "-"
                                    ),
                                )
                                for a in queue_of.get(contact, [])
                                if a["position"] <= position
                            ],
                        }
                    )
            elif w.wrong_since is not None:
                tally.ages.append(now - w.wrong_since)
                if w.wrong_start is not None:
                    tally.episodes.append({**w.wrong_start, "age_s": round(now - w.wrong_since, 2)})
                w.wrong_since = None
            if contact in tally.series:
                tally.series[contact].append((now - window_start, position, w.shown))
            arrived = relay.ideal.queued_arrival.get(contact)
            if (
                w.first_shown_at is not None
                and arrived is not None
                and arrived >= window_start
                and not getattr(w, "counted", False)
            ):
                first_shown.append(max(0.0, w.first_shown_at - arrived))
                w.counted = True  # type: ignore[attr-defined]
        await asyncio.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - now)))
    tally.censored += sum(1 for w in tally.watched.values() if w.wrong_since is not None)
    stats = (await http.get("/_sim/stats")).json()
    async with httpx.AsyncClient(timeout=10) as service_http:
        statuses = [(await service_http.get(f"{url}/v1/status")).json() for url in service_urls]
    await asyncio.gather(*opening, return_exceptions=True)
    await tracker.aclose()
    for w in tally.watched.values():
        if w.client is not None:
            w.client.close()
    samples = max(1, tally.samples)
    calls = {
        op: {"calls": s["total"], "throttled": s["byOutcome"].get("ThrottlingException", 0)}
        for op, s in stats.items()
        if isinstance(s, dict) and s.get("total")
    }
    return {
        "contacts": size,
        "mode": mode,
        "scenario": scenario.name,
        "duration_s": args.duration,
        "samples": tally.samples,
        "late_samples": slow,
        "wrong_share": round(tally.wrong / samples, 4),
        "never_shown_share": round(tally.unshown / samples, 4),
        "floor_wrong_share": round(tally.ideal_wrong / samples, 4) if mode == "events" else None,
        "wrong_age_p50_s": percentile(tally.ages, 0.5),
        "wrong_age_p95_s": percentile(tally.ages, 0.95),
        "mean_abs_error": round(tally.abs_error / max(1, tally.shown_samples), 3),
        "ewt_error_p50_s": percentile(tally.ewt_errors, 0.5),
        "ewt_error_p95_s": percentile(tally.ewt_errors, 0.95),
        "first_shown_p50_s": percentile(first_shown, 0.5),
        "first_shown_p95_s": percentile(first_shown, 0.95),
        "first_shown_count": len(first_shown),
        "corrected_episodes": len(tally.ages),
        "open_episodes": tally.censored,
        "calls": calls,
        "throttled": sum(c["throttled"] for c in calls.values()),
        "events_forwarded": relay.forwarded,
        "event_delivery": stats.get("contactEvents"),
        "event_delivery_warmup": warmup_delivery,
        "start": args.start,
        "placed_after_s": placed_after,
        "events_refused": relay.refused,
        "replicas": len(service_urls),
        "reads_by_purpose": dict(
            sum(
                (Counter(st.get("budget", {}).get("readsByPurpose") or {}) for st in statuses),
                Counter(),
            )
        ),
        "describes": sum(st.get("budget", {}).get("describes") or 0 for st in statuses),
        "book": [st.get("queues") for st in statuses],
        "book_news": [st.get("bookNews") for st in statuses],
        "series": tally.series,
        "episodes": tally.episodes,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    series = {c: p for c, p in result["series"].items() if p}
    if not series:
        return
    # matplotlib comes with the `bench` extra; main() checks for it before anything runs.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2 * len(series)), sharex=True)
    axes = axes if len(series) > 1 else [axes]
    for ax, (contact, points) in zip(axes, series.items(), strict=False):
        t = [p[0] for p in points]
        ax.step(t, [p[1] for p in points], where="post", label="true", color="black")
        ax.step(
            t,
            [float("nan") if p[2] is None else p[2] for p in points],
            where="post",
            label="shown",
            color="tab:orange",
            linestyle="--",
        )
        ax.set_ylabel(f"…{contact[-6:]}")
    axes[0].legend(loc="upper right")
    axes[0].set_title(
        f"Shown vs true position: {result['contacts']} waiting, {result['mode']} mode, "
        f"{result['scenario']} scenario, default quotas"
    )
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def summary(r: dict[str, Any]) -> str:
    floor = "" if r["floor_wrong_share"] is None else f" (floor {r['floor_wrong_share']:.1%})"
    return (
        f"{r['contacts']} contacts, {r['mode']}, {r['scenario']}: wrong {r['wrong_share']:.1%}"
        f"{floor}, never shown {r['never_shown_share']:.1%}, wrong age p50/p95 "
        f"{r['wrong_age_p50_s']}/{r['wrong_age_p95_s']} s, |err| {r['mean_abs_error']}, "
        f"EWT err p50/p95 {r['ewt_error_p50_s']}/{r['ewt_error_p95_s']} s, first shown "
        f"p50/p95 {r['first_shown_p50_s']}/{r['first_shown_p95_s']} s, "
        f"throttled {r['throttled']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,200,2000")
    parser.add_argument("--modes", default="polling,polling+track,events")
    parser.add_argument("--scenarios", default="today,harder")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0, help="unmeasured seconds first")
    parser.add_argument(
        "--start",
        choices=("cold", "placed"),
        default="cold",
        help="cold: queuecast meets the whole backlog at once (a restart); placed: time "
        "stands still until it has shown every watched contact (it saw them arrive)",
    )
    parser.add_argument(
        "--place-limit", type=float, default=900.0, help="seconds --start placed may wait"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--replicas", type=int, default=1, help="queuecast processes on one redis-server"
    )
    parser.add_argument(
        "--episodes", help="folder to write each run's corrected wrong spells to, with context"
    )
    parser.add_argument("--plot-contacts", type=int, default=4)
    parser.add_argument("--plot", default=str(ROOT / "docs" / "freshness.png"))
    parser.add_argument("--plot-run", default="200,events,harder", help="size,mode,scenario")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    require_modules("matplotlib")
    raise_nofile()
    pin_self(args.load_core)
    for scenario_name in args.scenarios.split(","):
        for mode in args.modes.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                result = asyncio.run(run_one(size, mode, SCENARIOS[scenario_name], args))
                if f"{size},{mode},{scenario_name}" == args.plot_run:
                    plot(result, Path(args.plot))
                if args.episodes:
                    name = f"{size}-{mode}-{scenario_name}-r{args.replicas}.json"
                    Path(args.episodes).mkdir(parents=True, exist_ok=True)
                    (Path(args.episodes) / name).write_text(json.dumps(result["episodes"]))
                shown = {k: v for k, v in result.items() if k not in ("series", "episodes")}
                print_result(summary(shown), shown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
