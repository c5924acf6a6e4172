"""`python -m server simulate` as a real process: ready line, real clients, signals."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import aioboto3
import pytest

from server.emulator.cli import add_parser, config_from_args
from tests.support.emulator import REPO_ROOT, start_emulator_process, stop_process


async def test_process_serves_sdk_and_control_api(emulator_process):
    emu = emulator_process
    assert emu.endpoint_url.startswith("http://127.0.0.1:")
    assert set(emu.queues) == {"sales", "support", "billing"}
    contact = await emu.create_contact("billing")
    async with aioboto3.Session().client("connect", **emu.boto_kwargs()) as client:
        response = await client.get_contact_metrics(
            InstanceId=emu.instance_id,
            ContactId=contact["contactId"],
            Metrics=[{"Name": "POSITION_IN_QUEUE"}, {"Name": "ESTIMATED_WAIT_TIME"}],
        )
    assert response["MetricResults"][0] == {"Name": "POSITION_IN_QUEUE", "Value": {"Number": 1.0}}
    assert response["MetricResults"][1]["Name"] == "ESTIMATED_WAIT_TIME"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_exits_zero(sig):
    async with start_emulator_process("--queue", "only:1:0", "--instances", "2") as emu:
        assert len(emu.instances) == 2 and list(emu.queues) == ["only"]
        emu.proc.send_signal(sig)
        assert await asyncio.wait_for(emu.proc.wait(), 10) == 0
        assert await stop_process(emu.proc) == 0


async def test_same_seed_same_ids():
    async with start_emulator_process() as first:
        ids = (first.instance_id, first.queues)
    async with start_emulator_process() as second:
        assert (second.instance_id, second.queues) == ids


async def test_bad_flags_exit_two():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "simulate",
        "--queue",
        "a:b:c:d",
        cwd=REPO_ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"--queue" in err


def parse_simulate(*flags: str):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return config_from_args(parser.parse_args(["simulate", *flags]))


def test_quota_flags():
    config = parse_simulate(
        "--quota",
        "listQueues=10:15",
        "--quota",
        "describeQueue=10:15",
        "--quota",
        "searchContacts=0.2:2",
        "--search-lag",
        "0.5",
    )
    assert config.operation_quotas == {
        "getCurrentMetricData": (5.0, 8),
        "listQueues": (10.0, 15),
        "describeQueue": (10.0, 15),
        "updateContactRoutingData": (2.0, 5),
        "searchContacts": (0.2, 2),
    }
    assert config.search_lag_s == 0.5
    assert parse_simulate().operation_quotas["searchContacts"] == (0.5, 1)
    assert parse_simulate().search_lag_s == 2.0
    assert config.operation_quotas_enabled
    assert not parse_simulate("--no-quota").operation_quotas_enabled


@pytest.mark.parametrize(
    "flag", ["listQueues=fast", "listQueues=1", "nope=1:1", "listQueues=0:5", "listQueues=1:0"]
)
def test_bad_quota_flags(flag):
    with pytest.raises(ValueError):
        parse_simulate("--quota", flag)
