"""Process plumbing shared by the benchmarks: pinned subprocesses, ready lines, /proc readings.

Every process binds loopback on a free port and announces itself with one `<name> ready {json}`
line (as `queuecast serve` and `queuecast simulate` do); everything is stopped with SIGTERM,
then SIGKILL, when the benchmark ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _extras import require_for_profile, require_for_targets  # noqa: E402

from tests.support.emulator import read_ready, stop_process  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVICE_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin_self(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def pinned(command: Sequence[str], core: int | None) -> list[str]:
    if core is None or not shutil.which("taskset"):
        return list(command)
    return ["taskset", "-c", str(core), *command]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds: time in Python and in the kernel (sends)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        # taskset execs the command, so the pid is the Python process itself.
        return self.proc.pid


@contextlib.asynccontextmanager
async def child(
    name: str,
    command: Sequence[str],
    *,
    core: int | None,
    ready_prefix: str,
    env: dict[str, str] | None = None,
    start_timeout: float = 60.0,
) -> AsyncIterator[Child]:
    """Start `command` pinned to `core`, wait for its ready line, stop it on exit."""
    proc = await asyncio.create_subprocess_exec(
        *pinned(command, core),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        info = await asyncio.wait_for(read_ready(proc, ready_prefix), start_timeout)
        drain = asyncio.create_task(_drain(proc))
        try:
            yield Child(name, proc, info)
        finally:
            await stop_process(proc)
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
    finally:
        await stop_process(proc)


async def _drain(proc: asyncio.subprocess.Process) -> None:
    # Keep reading stdout so a chatty child never blocks on a full pipe.
    assert proc.stdout is not None
    while await proc.stdout.read(65536):
        pass


def emulator_command(*flags: str) -> list[str]:
    base = [sys.executable, "-m", "server", "simulate", "--host", "127.0.0.1", "--port", "0"]
    return [*base, *flags]


# Benchmarks measure fan-out, not admission control: open these up when the service has them.
_BENCH_FLAGS = {
    "--allow-anonymous": [],
    "--max-sockets-per-ip": ["0"],
    "--max-polled-per-ip": ["0"],
    "--max-polled-anonymous": ["0"],
}


def bench_flags() -> list[str]:
    """The admission flags above that this checkout's `queuecast serve` knows."""
    helptext = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out: list[str] = []
    for flag, values in _BENCH_FLAGS.items():
        if flag + " " in helptext or flag + "\n" in helptext:
            out += [flag, *values]
    return out


def service_command(emulator: dict[str, Any], *flags: str) -> list[str]:
    instance = emulator["instances"][0]["id"]
    return [
        sys.executable,
        "-m",
        "server",
        "serve",
        "--port",
        "0",
        "--connect-endpoint-url",
        emulator["endpoint_url"],
        "--region",
        emulator["region"],
        "--instance-id",
        instance,
        "--log-level",
        "WARNING",
        *bench_flags(),
        *flags,
    ]


@contextlib.asynccontextmanager
async def redis_server(core: int | None) -> AsyncIterator[RedisServer]:
    """A throwaway redis-server on a free loopback port (pinned with taskset afterwards)."""
    with tempfile.TemporaryDirectory(prefix="qc-bench-redis-") as workdir:
        server = RedisServer(Path(workdir))
        await server.start()
        try:
            if core is not None and server.proc is not None and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(server.proc.pid, {core})
            yield server
        finally:
            await server.stop()


@contextlib.asynccontextmanager
async def quiet_contact_center(
    core: int | None, *emulator_flags: str
) -> AsyncIterator[tuple[RedisServer, Child]]:
    """A redis-server and a paused emulator with no agents (it only answers the poller), both
    on `core`: the fan-out benchmarks commit every update themselves, and nothing the poller
    reads ever changes. `emulator_flags` go to `queuecast simulate` too (e.g. `--no-quota`)."""
    quiet = ["--paused", "--agents", "0", "--arrivals", "0", "--mean-patience", "0"]
    emu_flags = [*quiet, *emulator_flags]
    async with (
        redis_server(core) as redis,
        child(
            "emulator",
            emulator_command(*emu_flags),
            core=core,
            ready_prefix="queuecast-simulate ready ",
        ) as emu,
    ):
        yield redis, emu


def print_result(summary: str, result: dict[str, Any]) -> None:
    print(summary)
    print(json.dumps(result, separators=(",", ":")))


def add_pinned_target_args(parser: Any) -> None:
    """The options every `run_pinned_targets` benchmark takes."""
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--json-out", help="also write the results here")


def run_pinned_targets(
    args: Any,
    run: Callable[[Any], Coroutine[Any, Any, list[dict[str, Any]]]],
    summary: Callable[[dict[str, Any]], str],
) -> int:
    """The main of a benchmark over several targets: this process on `args.load_core`, every
    result printed (a summary line and its JSON), and written to `args.json_out` if set."""
    require_for_targets(args.targets)
    require_for_profile(getattr(args, "profile", None))
    raise_nofile()
    pin_self(args.load_core)
    results = asyncio.run(run(args))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    for r in results:
        print_result(summary(r), r)
    return 0
