"""Run the Amazon Connect emulator for tests, as a subprocess or inside the test's event loop.

Both helpers are *async* context managers yielding an `EmulatorHandle`:

    async with start_emulator_process("--arrivals", "0") as emu:      # `python -m server simulate`
        ...
    async with run_emulator_in_process(EmulatorConfig(...)) as emu:    # uvicorn in this loop, fast
        emu.emulator.model ...                                         # direct access in-process

`EmulatorHandle` has `.endpoint_url`, `.region`, `.instance_id` (the first instance),
`.queues` (name -> id, first instance), `.instances` (as in the ready line), `.proc` (None
in-process), `.emulator` (None for a subprocess), async helpers for the `/_sim/` API, and
`boto_kwargs()` for `boto3.client("connect", **...)` / `aioboto3.Session().client(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from botocore.config import Config

from server.emulator import Emulator, EmulatorConfig, create_emulator_app
from server.emulator.cli import READY_PREFIX, bind_socket, ready_info
from tests.support import TIMEOUT_SCALE

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0 * TIMEOUT_SCALE
STOP_TIMEOUT = 10.0 * TIMEOUT_SCALE
HTTP_TIMEOUT = 10.0 * TIMEOUT_SCALE

DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
# No SDK retries: error tests then see each error once, at once.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@dataclass
class EmulatorHandle:
    endpoint_url: str
    region: str
    instances: list[dict[str, Any]]
    http: httpx.AsyncClient
    proc: asyncio.subprocess.Process | None = None
    emulator: Emulator | None = None
    queues: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.queues = {q["name"]: q["id"] for q in self.instances[0]["queues"]}

    @property
    def instance_id(self) -> str:
        return str(self.instances[0]["id"])

    def boto_kwargs(self, config: Config | None = None) -> dict[str, Any]:
        """Keyword arguments for a Connect client pointed here (dummy creds, no retries)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "config": config or NO_RETRIES,
            **DUMMY_CREDENTIALS,
        }

    async def _json(self, method: str, path: str, body: object = None) -> Any:
        response = await self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    async def sim_state(self) -> dict[str, Any]:
        return await self._json("GET", "/_sim/state")  # type: ignore[no-any-return]

    async def sim_stats(self) -> dict[str, Any]:
        return await self._json("GET", "/_sim/stats")  # type: ignore[no-any-return]

    async def reset_stats(self) -> None:
        await self._json("POST", "/_sim/stats/reset")

    async def get_config(self) -> dict[str, Any]:
        return await self._json("GET", "/_sim/config")  # type: ignore[no-any-return]

    async def put_config(self, **patch: Any) -> dict[str, Any]:
        """PUT /_sim/config with JSON keys as keyword names, e.g. put_config(leaveMode="empty")."""
        return await self._json("PUT", "/_sim/config", patch)  # type: ignore[no-any-return]

    async def create_contact(
        self, queue: str, priority: int | None = None, instance: str | None = None
    ) -> dict[str, str]:
        body: dict[str, Any] = {"queue": queue}
        if priority is not None:
            body["priority"] = priority
        if instance is not None:
            body["instance"] = instance
        return await self._json("POST", "/_sim/contacts", body)  # type: ignore[no-any-return]

    async def connect(self, contact: str | dict[str, str]) -> dict[str, str]:
        return await self._json("POST", f"/_sim/contacts/{_contact_id(contact)}/connect")  # type: ignore[no-any-return]

    async def abandon(self, contact: str | dict[str, str]) -> dict[str, str]:
        return await self._json("POST", f"/_sim/contacts/{_contact_id(contact)}/abandon")  # type: ignore[no-any-return]

    async def update_routing(
        self,
        contact: str | dict[str, str],
        priority: int | None = None,
        adjustment_s: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if priority is not None:
            body["priority"] = priority
        if adjustment_s is not None:
            body["adjustmentSeconds"] = adjustment_s
        path = f"/_sim/contacts/{_contact_id(contact)}/routing"
        return await self._json("POST", path, body)  # type: ignore[no-any-return]

    async def contact_truth(self, contact: str | dict[str, str]) -> dict[str, Any]:
        return await self._json("GET", f"/_sim/contacts/{_contact_id(contact)}")  # type: ignore[no-any-return]

    async def waiting(self, queue: str) -> list[dict[str, Any]]:
        """The true waiting list of a queue (name or id) in the first instance."""
        state = await self.sim_state()
        for q in state["instances"][0]["queues"]:
            if queue in (q["name"], q["id"]):
                return q["waiting"]  # type: ignore[no-any-return]
        raise KeyError(queue)


def _contact_id(contact: str | dict[str, str]) -> str:
    return contact if isinstance(contact, str) else contact["contactId"]


@contextlib.asynccontextmanager
async def start_emulator_process(*extra_args: str) -> AsyncIterator[EmulatorHandle]:
    """Run `python -m server simulate --port 0 --seed 1 *extra_args`; SIGTERM, then kill."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "simulate",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--seed",
        "1",
        *extra_args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        info = await asyncio.wait_for(read_ready(proc), START_TIMEOUT)
        async with httpx.AsyncClient(base_url=info["endpoint_url"], timeout=HTTP_TIMEOUT) as http:
            yield EmulatorHandle(
                info["endpoint_url"], info["region"], info["instances"], http, proc
            )
    finally:
        await stop_process(proc)


async def read_ready(
    proc: asyncio.subprocess.Process, prefix: str = READY_PREFIX
) -> dict[str, Any]:
    """Read stdout up to the `<name> ready {json}` line and return the JSON."""
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before it was ready (status {await proc.wait()})")
        text = line.decode()
        if text.startswith(prefix):
            return json.loads(text[len(prefix) :])  # type: ignore[no-any-return]


async def stop_process(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; returns the exit status."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if proc.stdout is not None:
        await proc.stdout.read()  # drain so the pipe transport closes cleanly
    return proc.returncode if proc.returncode is not None else -1


@contextlib.asynccontextmanager
async def run_emulator_in_process(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[EmulatorHandle]:
    """Serve `create_emulator_app(config)` with uvicorn in the current loop on a free port."""
    app = create_emulator_app(config or EmulatorConfig())
    sock = bind_socket(host, 0)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:  # uvicorn has no started event
                if serving.done():
                    serving.result()
                    raise RuntimeError("uvicorn stopped during start-up")
                await asyncio.sleep(0.005)
        endpoint = f"http://{host}:{sock.getsockname()[1]}"
        info = ready_info(app.state.emulator, endpoint)
        async with httpx.AsyncClient(base_url=endpoint, timeout=HTTP_TIMEOUT) as http:
            yield EmulatorHandle(
                endpoint, info["region"], info["instances"], http, emulator=app.state.emulator
            )
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(serving), STOP_TIMEOUT)
        except TimeoutError:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        sock.close()
