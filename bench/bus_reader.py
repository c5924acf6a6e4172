"""The bus's subscriber reads: the bulk hiredis reader against redis-py's own (the public path).

`server/_internals.py` falls back to redis-py's reads (`ConnectionReplies`) when redis-py keeps
no `_reader` stream, or under QUEUECAST_FORCE_PUBLIC_PATHS=1. This measures what that costs:
a redis-server of its own, one subscriber connection, `--messages` bus-sized messages
published in one pipeline, then the CPU time of this process to take them all with each
reader, alternating, `--rounds` times each. Loopback only, a few seconds, stops by itself.

    .venv/bin/python bench/bus_reader.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from _harness import print_result

from server.bus.subscriber import ConnectionReplies, PushReader
from tests.support.redis import running_redis

MESSAGE = b'{"type":"update","contact":"%d","queue":"q1","position":3,"ewt":60,"seq":%d}'


async def cpu_per_message(url: str, kind: str, messages: int) -> float:
    client = aioredis.from_url(url)
    publisher = aioredis.from_url(url)
    connection = await client.connection_pool.get_connection()
    try:
        connection.health_check_interval = 0
        await connection.send_command("SUBSCRIBE", "bench", check_health=False)
        reader = PushReader.of(connection) if kind == "bulk" else ConnectionReplies(connection)
        assert (await reader.next(5.0))[0] == b"subscribe"
        pipe = publisher.pipeline(transaction=False)
        for n in range(messages):
            pipe.publish("bench", MESSAGE % (n, n))
        await pipe.execute()
        started = time.process_time()
        for _ in range(messages):
            reply = await reader.next(5.0)
            assert reply is not None and reply[0] == b"message"
        return (time.process_time() - started) / messages
    finally:
        await connection.disconnect()
        await client.aclose()
        await publisher.aclose()


async def run(args: argparse.Namespace) -> dict[str, float]:
    samples: dict[str, list[float]] = {"bulk": [], "redis_py": []}
    with tempfile.TemporaryDirectory() as folder:
        async with running_redis(Path(folder)) as server:
            for _ in range(args.rounds):
                for kind, taken in samples.items():
                    taken.append(await cpu_per_message(server.url, kind, args.messages))
    return {f"{kind}_us": round(statistics.median(v) * 1e6, 2) for kind, v in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print_result(
        f"CPU per bus message (median of {args.rounds}): bulk reader {result['bulk_us']} us, "
        f"redis-py's reads {result['redis_py_us']} us",
        result,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
