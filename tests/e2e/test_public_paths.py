"""`queuecast serve` on its public paths says so once, at start, and in /metrics; the WebSocket
tests themselves run both ways (`ws_paths` in test_streaming.py and test_gateway.py)."""

from __future__ import annotations

import json

import pytest

from server._internals import FORCE_PUBLIC_PATHS
from tests.support.service import start_service_process
from tests.support.wsclient import ws_client

pytestmark = pytest.mark.e2e

PATHS = ("framing_protocol", "socket_send", "bulk_redis_reader")


def fast_path_gauges(metrics: str) -> dict[str, float]:
    gauges = {}
    for line in metrics.splitlines():
        if line.startswith("queuecast_fast_path{"):
            name = line.split('path="', 1)[1].split('"', 1)[0]
            gauges[name] = float(line.rsplit(" ", 1)[1])
    return gauges


@pytest.mark.parametrize("forced", [False, True])
async def test_the_service_reports_which_paths_it_takes(emulator, redis_server, tmp_path, forced):
    log = tmp_path / "serve.log"
    env = {FORCE_PUBLIC_PATHS: "1" if forced else "0"}
    async with start_service_process(emulator, redis_server.url, env=env, stderr=log) as service:
        contact = (await emulator.create_contact("sales"))["contactId"]
        async with ws_client(service.ws_url) as ws:
            await ws.subscribe(contact)
            assert (await ws.next())["type"] == "snapshot"
        gauges = fast_path_gauges((await service.http.get("/metrics")).text)
    assert gauges == dict.fromkeys(PATHS, 0.0 if forced else 1.0)
    warnings = [
        line
        for line in log.read_text().splitlines()
        if line.startswith("{") and "public (slower) paths" in json.loads(line)["message"]
    ]
    if forced:
        [warning] = warnings
        assert json.loads(warning)["level"] == "warning"
        assert FORCE_PUBLIC_PATHS in json.loads(warning)["message"]
    else:
        assert warnings == []
