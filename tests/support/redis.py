"""A real redis-server for tests, on a free loopback port (never 6379), killable and restartable;
and a real 3-master Redis Cluster (`running_redis_cluster`, `RedisClusterNodes`).

There is no skip when redis-server is missing: the README's test command installs it, and a
missing part must fail the run rather than silently shrink it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis
import redis.asyncio as aioredis

from tests.support import TIMEOUT_SCALE

START_TIMEOUT = 10.0 * TIMEOUT_SCALE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    assert port != 6379
    return port


def redis_binary(name: str = "redis-server") -> str:
    """The path of redis-server (or redis-cli); missing is an error, never a skip."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed; the README's test command (scripts/test) installs it"
        )
    return path


def redis_server_args(workdir: Path, port: int, *extra: str) -> list[str]:
    """redis-server on 127.0.0.1:`port`, no persistence, its log in `workdir`."""
    return [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / f"redis-{port}.log"),
        *extra,
    ]


async def start_redis_server(workdir: Path, port: int, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *redis_server_args(workdir, port, *extra),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_until_answers(port: int, procs: list[asyncio.subprocess.Process]) -> None:
    """PING 127.0.0.1:`port` until it answers; fail as soon as one of `procs` has exited."""
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    try:
        while True:
            for proc in procs:
                if proc.returncode is not None:
                    raise RuntimeError(f"redis-server exited with {proc.returncode}")
            with contextlib.suppress(OSError, aioredis.ConnectionError):
                if await client.ping():
                    return
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


class RedisServer:
    """One redis-server process with no persistence, so a restart comes back empty."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await start_redis_server(self.workdir, self.port)
        async with asyncio.timeout(START_TIMEOUT):
            await wait_until_answers(self.port, [self.proc])

    async def kill(self) -> None:
        """SIGKILL: the outage a crash or a network cut looks like."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                await self.kill()

    async def restart(self) -> None:
        await self.kill()
        await self.start()


@contextlib.asynccontextmanager
async def running_redis(workdir: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(workdir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class RedisClusterNodes:
    """A Redis Cluster of `masters` redis-server processes on free loopback ports (never
    6379), no replicas and no persistence, created with `redis-cli --cluster create`.

    Plain (blocking) processes rather than asyncio ones, so that one cluster can serve a whole
    session (`redis-cli --cluster create` alone takes about two seconds): tests then reset it
    with `flush`.
    """

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.workdir = workdir
        self.ports = [free_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The service's cluster URL: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node_client(self, port: int | None = None) -> aioredis.Redis:
        """An asyncio client on one node (the first by default), for CLUSTER commands."""
        return aioredis.from_url(f"redis://127.0.0.1:{port or self.ports[0]}/0")

    def start(self) -> None:
        """Start the nodes and create the cluster; blocks until every node says it is ok."""
        for port in self.ports:
            args = redis_server_args(
                self.workdir,
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.workdir / f"nodes-{port}.conf"),
                # Its own free port: the default, port + 10000, may be taken or above 65535.
                "--cluster-port",
                str(free_port()),
            )
            self.procs.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + START_TIMEOUT
        for port in self.ports:
            self._wait(port, deadline, lambda node: node.ping())
        created = subprocess.run(
            [
                redis_binary("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout.decode()}")
        # Every node must agree, not only the one asked: a client may start on any of them.
        for port in self.ports:
            self._wait(
                port,
                deadline,
                lambda node: node.execute_command("CLUSTER INFO").get("cluster_state") == "ok",
            )

    def _wait(self, port: int, deadline: float, ready: Callable[[redis.Redis], bool]) -> None:
        with redis.Redis(port=port, socket_connect_timeout=0.5) as node:
            while True:
                for proc in self.procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"redis-server exited with {proc.returncode}")
                with contextlib.suppress(OSError, redis.ConnectionError):
                    if ready(node):
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {port} not ready")
                time.sleep(0.05)

    def keyslot(self, key: str) -> int:
        """The slot the cluster itself computes for `key` (CLUSTER KEYSLOT)."""
        with redis.Redis(port=self.ports[0]) as node:
            return int(node.execute_command("CLUSTER", "KEYSLOT", key))

    def flush(self) -> None:
        """Empty every node and drop its loaded scripts: each test starts from nothing."""
        for port in self.ports:
            with redis.Redis(port=port) as node:
                node.flushall()
                node.script_flush()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def running_redis_cluster(
    workdir: Path, masters: int = 3
) -> AsyncIterator[RedisClusterNodes]:
    """A fresh cluster for one test; started in a thread so the test's loop keeps running."""
    cluster = RedisClusterNodes(workdir, masters)
    try:
        await asyncio.to_thread(cluster.start)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)
