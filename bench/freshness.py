"""Freshness under the quota: how often, and how long, a subscriber is shown a wrong position.

The emulator runs a busy contact center: 4 queues, `--contacts` waiting at the start, about one
dequeue per second in total (5 agents per queue, 20 s mean handle time) and as many arrivals, so
the waiting count stays level; nobody abandons. The Connect quota is at its default (2
requests/s, burst 5) and `queuecast serve` runs with its defaults (in-process bus). Every waiting
contact has one WebSocket subscriber; new arrivals get theirs as soon as the truth shows them.
After `--warmup` unmeasured seconds, every 100 ms the position each subscriber was last told
is compared with `GET /_sim/state`.

Reported per size: the share of contact-samples (100 ms each, so time-weighted) where the shown
position is wrong (nothing shown yet counts as wrong, and is also given apart), the p50/p95 age
of a wrong position when it is corrected, GetContactMetrics calls and ThrottlingExceptions
(`/_sim/stats`). A PNG plots shown vs true position for a few contacts of the first size.
Loopback only; bounded by `--duration`; stops by itself.

    .venv/bin/python bench/freshness.py --sizes 20,200,2000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _extras import require_modules
from _harness import (
    ROOT,
    SERVICE_ENV,
    child,
    emulator_command,
    pin_self,
    print_result,
    raise_nofile,
    service_command,
)
from _wsload import LoadClient, open_clients

QUEUES = ("q1", "q2", "q3", "q4")
AGENTS, MEAN_SERVICE = 5, 20.0  # 4 queues x 5 agents / 20 s = 1 dequeue/s in total
ARRIVALS_PER_MINUTE = 15.0  # per queue: 4 x 15/min = 1 arrival/s, as many as leave
SAMPLE_EVERY = 0.1


@dataclass
class Watched:
    client: LoadClient | None = None
    shown: int | None = None
    wrong_since: float | None = None


@dataclass
class Tally:
    watched: dict[str, Watched] = field(default_factory=dict)
    series: dict[str, list[tuple[float, int, int | None]]] = field(default_factory=dict)
    samples: int = 0
    wrong: int = 0
    unshown: int = 0
    ages: list[float] = field(default_factory=list)
    censored: int = 0  # wrong episodes still open when the contact left or the run ended

    def on_message(self, client: LoadClient, payload: bytes, now: float) -> None:
        if not payload.startswith(b'{"type":"snapshot"') and not payload.startswith(
            b'{"type":"update"'
        ):
            return
        event = json.loads(payload)
        watched = self.watched.get(event["contact"])
        if watched is not None:
            watched.shown = event["position"]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    queue_flags = [f for q in QUEUES for f in ("--queue", f"{q}:{AGENTS}:0")]
    emu_flags = [*queue_flags, "--mean-service", str(MEAN_SERVICE), "--mean-patience", "0"]
    emulator = child(
        "emulator",
        emulator_command("--seed", str(args.seed), "--paused", *emu_flags),
        core=args.load_core,
        ready_prefix="queuecast-simulate ready ",
    )
    async with (
        emulator as emu,
        httpx.AsyncClient(base_url=emu.info["endpoint_url"], timeout=30) as http,
    ):
        # Fill the queues while time stands still, then let it run with arrivals matching the
        # agents' pace.
        gate = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with gate:
                body = {"queue": QUEUES[i % len(QUEUES)]}
                (await http.post("/_sim/contacts", json=body)).raise_for_status()

        # The free agents take the first contacts at once; `size` is what waits.
        await asyncio.gather(*(create(i) for i in range(size + len(QUEUES) * AGENTS)))
        service = child(
            "queuecast",
            service_command(emu.info),
            core=args.server_core,
            ready_prefix="queuecast-serve ready ",
            env=SERVICE_ENV,
        )
        async with service as svc:
            host, port = svc.info["url"].removeprefix("http://").rsplit(":", 1)
            tally = Tally()
            loop = asyncio.get_running_loop()
            opening: set[asyncio.Task[None]] = set()

            async def watch(contact: str) -> None:
                [client] = await open_clients(host, int(port), 1, tally.on_message)
                client.send_text(json.dumps({"op": "subscribe", "contact": contact}))
                w = tally.watched.get(contact)
                if w is None:  # left before the socket opened
                    client.close()
                else:
                    w.client = client

            arrivals = {q: ARRIVALS_PER_MINUTE for q in QUEUES}
            await http.put("/_sim/config", json={"paused": False, "arrivals": arrivals})
            # Warm-up, unmeasured: subscribers open and the service takes its first polls.
            warm_end = time.monotonic() + args.warmup
            while time.monotonic() < warm_end:
                state = (await http.get("/_sim/state")).json()
                for q in state["instances"][0]["queues"]:
                    for waiting in q["waiting"]:
                        if waiting["contactId"] not in tally.watched:
                            tally.watched[waiting["contactId"]] = Watched()
                            task = loop.create_task(watch(waiting["contactId"]))
                            opening.add(task)
                            task.add_done_callback(opening.discard)
                await asyncio.sleep(SAMPLE_EVERY)
            await http.post("/_sim/stats/reset")
            # Plot contacts already told something and far back in line (they stay longest).
            told = [(w.shown, c) for c, w in tally.watched.items() if w.shown is not None]
            for _, contact in sorted(told, reverse=True)[: args.plot_contacts]:
                tally.series[contact] = []
            start = time.monotonic()
            end = start + args.duration
            slow = 0
            while (now := time.monotonic()) < end:
                state = (await http.get("/_sim/state")).json()
                slow += time.monotonic() - now > SAMPLE_EVERY
                truth = {
                    w["contactId"]: w["position"]
                    for q in state["instances"][0]["queues"]
                    for w in q["waiting"]
                }
                now = time.monotonic()
                for contact in list(tally.watched):
                    if contact not in truth:
                        w = tally.watched.pop(contact)
                        if w.wrong_since is not None:
                            tally.censored += 1
                        if w.client is not None:
                            w.client.close()
                for contact, position in truth.items():
                    w = tally.watched.get(contact)
                    if w is None:
                        w = tally.watched[contact] = Watched()
                        task = loop.create_task(watch(contact))
                        opening.add(task)
                        task.add_done_callback(opening.discard)
                    tally.samples += 1
                    if w.shown != position:
                        tally.wrong += 1
                        tally.unshown += w.shown is None
                        if w.wrong_since is None:
                            w.wrong_since = now
                    elif w.wrong_since is not None:
                        tally.ages.append(now - w.wrong_since)
                        w.wrong_since = None
                    if contact in tally.series:
                        tally.series[contact].append((now - start, position, w.shown))
                await asyncio.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - now)))
            tally.censored += sum(1 for w in tally.watched.values() if w.wrong_since is not None)
            stats = (await http.get("/_sim/stats")).json()["getContactMetrics"]
            await asyncio.gather(*opening, return_exceptions=True)
            for w in tally.watched.values():
                if w.client is not None:
                    w.client.close()
    p50, p95 = percentile(tally.ages, 0.5), percentile(tally.ages, 0.95)
    return {
        "contacts": size,
        "duration_s": args.duration,
        "samples": tally.samples,
        "late_samples": slow,
        "wrong_share": round(tally.wrong / max(1, tally.samples), 4),
        "never_shown_share": round(tally.unshown / max(1, tally.samples), 4),
        "wrong_age_p50_s": None if p50 is None else round(p50, 2),
        "wrong_age_p95_s": None if p95 is None else round(p95, 2),
        "corrected_episodes": len(tally.ages),
        "open_episodes": tally.censored,
        "get_contact_metrics": stats["total"],
        "throttled": stats["byOutcome"].get("ThrottlingException", 0),
        "series": tally.series,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    # matplotlib comes with the `bench` extra; main() checks for it before anything runs.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    series = result["series"]
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2 * len(series)), sharex=True)
    for ax, (contact, points) in zip(axes, series.items(), strict=False):
        if not points:
            continue
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
        f"Shown vs true position, {result['contacts']} waiting contacts, quota 2 req/s"
    )
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,200,2000")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0, help="unmeasured seconds first")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot-contacts", type=int, default=4)
    parser.add_argument("--plot", default=str(ROOT / "docs" / "freshness.png"))
    parser.add_argument("--plot-size", type=int, default=20, help="which size to plot")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    require_modules("matplotlib")
    raise_nofile()
    pin_self(args.load_core)
    for size in (int(s) for s in args.sizes.split(",")):
        result = asyncio.run(run_size(size, args))
        if size == args.plot_size and result["series"]:
            plot(result, Path(args.plot))
        shown = {k: v for k, v in result.items() if k != "series"}
        print_result(
            f"{size} contacts: wrong {shown['wrong_share']:.1%} of contact-time "
            f"(never shown {shown['never_shown_share']:.1%}), wrong-position age p50 "
            f"{shown['wrong_age_p50_s']} s p95 {shown['wrong_age_p95_s']} s, "
            f"{shown['get_contact_metrics']} GetContactMetrics, {shown['throttled']} throttled",
            shown,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
