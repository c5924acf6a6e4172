"""ConnectClient's read methods against the emulator over loopback HTTP (real aioboto3)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from server.connect import client as client_module
from server.connect.answers import (
    QueueFigures,
    QueueInfo,
    parse_current_metrics,
    parse_describe,
)
from server.connect.client import ConnectClient, Outcome
from server.emulator import QueueSpec
from tests.emulator.conftest import quiet_config
from tests.support.emulator import run_emulator_in_process

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


@pytest.fixture
async def emulator():
    queue = QueueSpec("q", agents=2, arrivals_per_minute=0, mean_patience_s=None)
    queues = (replace(queue, name="sales"), replace(queue, name="support", agents=0))
    async with run_emulator_in_process(quiet_config(queues=queues, paused=True)) as handle:
        yield handle


@pytest.fixture
async def connect(emulator):
    async with ConnectClient(emulator.region, emulator.endpoint_url, read_timeout=2.0) as client:
        yield client


def calls(api: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "queuecast_connect_calls_total", {"api": api, "outcome": outcome}
    )
    return value or 0.0


async def test_describe_contact_reads_routing_fields(connect, emulator):
    contact = await emulator.create_contact("support", priority=2)
    await emulator.update_routing(contact, adjustment_s=40)
    before = calls("DescribeContact", "ok")
    result = await connect.describe_contact(emulator.instance_id, contact["contactId"])
    assert calls("DescribeContact", "ok") == before + 1
    assert result.outcome is Outcome.OK
    assert (result.queue, result.priority, result.age_adjustment_s) == (
        emulator.queues["support"],
        2,
        40,
    )
    state = emulator.emulator.model.contacts[contact["contactId"]]
    assert result.enqueued == pytest.approx(state.enqueued_at, abs=0.001)
    assert result.routing_enqueued == pytest.approx(state.enqueued_at - 40, abs=0.001)
    assert result.connected is None and result.disconnected is None
    await emulator.connect(contact)
    left = await connect.describe_contact(emulator.instance_id, contact["contactId"])
    assert left.connected == pytest.approx(emulator.emulator.model.now, abs=0.001)
    missing = await connect.describe_contact(emulator.instance_id, UNKNOWN)
    assert missing.outcome is Outcome.NOT_FOUND and "ResourceNotFoundException" in missing.detail


def test_parse_describe_tolerates_missing_members():
    assert parse_describe({}).queue is None
    result = parse_describe({"Contact": {"QueueInfo": {"Id": "q"}, "QueuePriority": True}})
    assert (result.queue, result.enqueued, result.priority, result.age_adjustment_s) == (
        "q",
        None,
        None,
        0,
    )
    assert result.routing_enqueued is None


async def test_current_metric_data_batches_of_100(connect, emulator):
    for _ in range(3):  # two go to the agents, one waits
        await emulator.create_contact("sales")
    sales, support = emulator.queues["sales"], emulator.queues["support"]
    fake = [f"queue-{i:03d}" for i in range(149)]
    before = calls("GetCurrentMetricData", "ok")
    result = await connect.get_current_metric_data(
        emulator.instance_id, [sales, *fake, support, sales]
    )
    assert result.outcome is Outcome.OK
    assert calls("GetCurrentMetricData", "ok") == before + 2  # 151 distinct queues
    assert (await emulator.sim_stats())["getCurrentMetricData"]["total"] == 2
    assert result.figures[sales] == QueueFigures(
        contacts_in_queue=1,
        oldest_contact_age_s=0.0,
        agents_available=0,
        agents_online=2,
        agents_staffed=2,
    )
    # No row for a queue (nothing waiting, nobody staffed, or unknown): all zero.
    assert result.figures[support] == QueueFigures()
    assert result.figures[fake[0]] == QueueFigures()
    assert len(result.figures) == 151


async def test_current_metric_data_oldest_age_in_seconds(connect, emulator):
    await emulator.put_config(paused=False)
    await emulator.create_contact("support")
    await asyncio.sleep(0.3)
    result = await connect.get_current_metric_data(
        emulator.instance_id, [emulator.queues["support"]]
    )
    figures = result.figures[emulator.queues["support"]]
    assert figures.contacts_in_queue == 1
    assert 0.3 <= figures.oldest_contact_age_s < 5.0


async def test_current_metric_data_throttled_keeps_answered_batches(connect, emulator):
    await emulator.put_config(
        quotas={"getCurrentMetricData": {"enabled": True, "rps": 0.01, "burst": 1}}
    )
    queues = [emulator.queues["sales"], *[f"queue-{i}" for i in range(120)]]
    before = calls("GetCurrentMetricData", "throttled")
    result = await connect.get_current_metric_data(emulator.instance_id, queues)
    assert result.outcome is Outcome.THROTTLED
    assert calls("GetCurrentMetricData", "throttled") == before + 1
    assert set(result.figures) == set(queues[:100])


async def test_current_metric_data_follows_next_token(connect, emulator, monkeypatch):
    await emulator.create_contact("sales")
    original = connect._client.get_current_metric_data
    seen = []

    async def one_row_pages(**request):
        seen.append(request.get("NextToken"))
        return await original(**{**request, "MaxResults": 1})

    monkeypatch.setattr(connect._client, "get_current_metric_data", one_row_pages)
    await emulator.create_contact("support")
    result = await connect.get_current_metric_data(
        emulator.instance_id, [emulator.queues["sales"], emulator.queues["support"]]
    )
    assert result.outcome is Outcome.OK and len(seen) == 2 and seen[1]
    assert result.figures[emulator.queues["support"]].contacts_in_queue == 1


def test_parse_current_metrics_skips_rows_without_a_queue():
    response = {
        "MetricResults": [
            {"Dimensions": {}, "Collections": []},
            {
                "Dimensions": {"Queue": {"Id": "q"}},
                "Collections": [
                    {"Metric": {"Name": "CONTACTS_IN_QUEUE"}, "Value": 2.0},
                    {"Metric": {"Name": "OLDEST_CONTACT_AGE"}},  # null: no data
                    {"Metric": {"Name": "AGENTS_ONLINE"}, "Value": -1.0},
                    {"Metric": {"Name": "SLOTS_ACTIVE"}, "Value": 9.0},
                ],
            },
        ]
    }
    assert parse_current_metrics(response) == {"q": QueueFigures(contacts_in_queue=2)}


async def test_list_queues_every_page(connect, emulator, monkeypatch):
    monkeypatch.setattr(client_module, "LIST_QUEUES_PAGE", 1)
    before = calls("ListQueues", "ok")
    result = await connect.list_queues(emulator.instance_id)
    assert result.outcome is Outcome.OK
    assert result.queues == (
        QueueInfo(emulator.queues["sales"], "sales"),
        QueueInfo(emulator.queues["support"], "support"),
    )
    assert calls("ListQueues", "ok") == before + 2
    missing = await connect.list_queues(UNKNOWN)
    assert missing.outcome is Outcome.NOT_FOUND and missing.queues == ()


async def test_describe_queue(connect, emulator):
    result = await connect.describe_queue(emulator.instance_id, emulator.queues["sales"])
    assert result.outcome is Outcome.OK
    assert result.queues == (QueueInfo(emulator.queues["sales"], "sales"),)
    missing = await connect.describe_queue(emulator.instance_id, UNKNOWN)
    assert missing.outcome is Outcome.NOT_FOUND


async def test_timeouts_are_classified(emulator):
    await emulator.put_config(faults={"stall": True})
    try:
        async with ConnectClient(
            emulator.region, emulator.endpoint_url, connect_timeout=0.2, read_timeout=0.2
        ) as connect:
            before = calls("ListQueues", "timeout")
            result = await connect.list_queues(emulator.instance_id)
            assert result.outcome is Outcome.TIMEOUT
            assert calls("ListQueues", "timeout") == before + 1
            figures = await connect.get_current_metric_data(emulator.instance_id, ["q"])
            assert figures.outcome is Outcome.TIMEOUT and figures.figures == {}
    finally:
        await emulator.put_config(faults={"stall": False})


async def test_closed_client_answers_connection_error(emulator):
    async with ConnectClient(emulator.region, emulator.endpoint_url) as connect:
        pass
    before = calls("DescribeQueue", "connection_error")
    result = await connect.describe_queue(emulator.instance_id, "q")
    assert result.outcome is Outcome.CONNECTION_ERROR
    assert calls("DescribeQueue", "connection_error") == before + 1
    described = await connect.describe_contact(emulator.instance_id, UNKNOWN)
    assert described.outcome is Outcome.CONNECTION_ERROR
