"""How many GetContactMetrics requests per second the emulator answers on one core.

Starts `python -m server simulate` pinned to one core (taskset), quota off, no arrivals,
creates waiting contacts through /_sim/, then drives POST /metrics/contact from this process,
pinned to another core, with keep-alive connections for a fixed time. Loopback only; stops by
itself; prints a human summary and one JSON line.

    .venv/bin/python bench/emulator_rps.py --duration 10 --concurrency 32

The Authorization header is a fixed SigV4-shaped string: the emulator checks its presence only,
and signing every request here would measure the load generator, not the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
READY = "queuecast-simulate ready "
AUTH = (
    "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/connect/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


async def start_emulator(core: int) -> tuple[asyncio.subprocess.Process, dict]:
    command = [sys.executable, "-m", "server", "simulate", "--port", "0", "--no-quota"]
    command += ["--arrivals", "0", "--agents", "0", "--mean-patience", "0"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError("emulator exited before it was ready")
            if line.startswith(READY):
                return proc, json.loads(line[len(READY) :])


async def run(args: argparse.Namespace) -> dict:
    proc, info = await start_emulator(args.emulator_core)
    url = info["endpoint_url"]
    instance = info["instances"][0]
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            contacts = []
            for i in range(args.contacts):
                queue = instance["queues"][i % len(instance["queues"])]["name"]
                async with session.post(f"{url}/_sim/contacts", json={"queue": queue}) as r:
                    contacts.append((await r.json())["contactId"])
            bodies = [
                json.dumps(
                    {
                        "InstanceId": instance["id"],
                        "ContactId": contact,
                        "Metrics": [{"Name": "POSITION_IN_QUEUE"}, {"Name": "ESTIMATED_WAIT_TIME"}],
                    }
                ).encode()
                for contact in contacts
            ]
            headers = {"Authorization": AUTH, "Content-Type": "application/x-amz-json-1.1"}
            latencies: list[float] = []
            errors = 0
            warmup_end = time.monotonic() + args.warmup
            stop = warmup_end + args.duration

            async def worker(index: int) -> None:
                nonlocal errors
                n = index
                while (now := time.monotonic()) < stop:
                    body = bodies[n % len(bodies)]
                    n += 1
                    async with session.post(
                        f"{url}/metrics/contact", data=body, headers=headers
                    ) as r:
                        await r.read()
                        ok = r.status == 200
                    if now >= warmup_end:
                        latencies.append(time.monotonic() - now)
                        errors += not ok

            await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "duration_s": args.duration,
        "rps": round(len(latencies) / args.duration),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "concurrency": args.concurrency,
        "emulator_core": args.emulator_core,
        "load_core": args.load_core,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--contacts", type=int, default=200, help="waiting contacts to ask about")
    parser.add_argument("--emulator-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.load_core})
    result = asyncio.run(run(args))
    print(
        f"emulator: {result['rps']} GetContactMetrics/s on core {args.emulator_core} "
        f"({result['requests']} requests, {result['errors']} errors, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, concurrency {args.concurrency})"
    )
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
