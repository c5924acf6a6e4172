"""DescribeContact's routing fields, UpdateContactRoutingData, GetCurrentMetricData, ListQueues
and DescribeQueue: real boto3 and aioboto3 clients against the emulator on loopback HTTP."""

from __future__ import annotations

import datetime
from dataclasses import replace

import aioboto3
import pytest
from botocore.config import Config

from server.emulator import QueueSpec
from tests.emulator.conftest import quiet_config
from tests.support.emulator import run_emulator_in_process

UNKNOWN = "00000000-0000-4000-8000-000000000000"
# botocore checks ranges before sending; these tests must reach the emulator's own checks.
UNCHECKED = Config(parameter_validation=False, retries={"total_max_attempts": 1})
FIGURES = [
    {"Name": "CONTACTS_IN_QUEUE", "Unit": "COUNT"},
    {"Name": "OLDEST_CONTACT_AGE", "Unit": "SECONDS"},
    {"Name": "AGENTS_AVAILABLE", "Unit": "COUNT"},
    {"Name": "AGENTS_ONLINE", "Unit": "COUNT"},
    {"Name": "AGENTS_STAFFED", "Unit": "COUNT"},
]


def collections(result):
    return {c["Metric"]["Name"]: c["Value"] for c in result["Collections"]}


async def describe(client, emulator, contact):
    response = await client.call(
        "describe_contact", InstanceId=emulator.instance_id, ContactId=contact["contactId"]
    )
    return response["Contact"]


# -- DescribeContact and routing changes ------------------------------------------------------


async def test_describe_contact_routing_fields(connect_client, emulator):
    contact = await emulator.create_contact("sales", priority=3)
    described = await describe(connect_client, emulator, contact)
    assert described["QueuePriority"] == 3
    assert described["QueueTimeAdjustmentSeconds"] == 0
    assert described["QueueInfo"]["Id"] == emulator.queues["sales"]
    truth = await emulator.contact_truth(contact)
    enqueued = described["QueueInfo"]["EnqueueTimestamp"]
    assert isinstance(enqueued, datetime.datetime)
    assert (
        enqueued.isoformat(timespec="milliseconds").replace("+00:00", "Z") == (truth["enqueuedAt"])
    )


async def test_control_routing_change_shows_in_describe_and_positions(connect_client, emulator):
    await emulator.put_config(paused=True)
    first = await emulator.create_contact("sales")
    second = await emulator.create_contact("sales")
    truth = await emulator.update_routing(second, adjustment_s=30)
    assert truth["position"] == 1 and truth["ageAdjustmentSeconds"] == 30
    described = await describe(connect_client, emulator, second)
    assert described["QueueTimeAdjustmentSeconds"] == 30
    assert [w["contactId"] for w in await emulator.waiting("sales")] == [
        second["contactId"],
        first["contactId"],
    ]
    await emulator.update_routing(first, priority=2)
    assert (await describe(connect_client, emulator, first))["QueuePriority"] == 2
    assert (await emulator.contact_truth(first))["position"] == 1


async def test_update_contact_routing_data_on_the_wire(connect_client, emulator):
    await emulator.put_config(paused=True)
    first = await emulator.create_contact("support")
    second = await emulator.create_contact("support")
    response = await connect_client.call(
        "update_contact_routing_data",
        InstanceId=emulator.instance_id,
        ContactId=second["contactId"],
        QueuePriority=1,
        QueueTimeAdjustmentSeconds=-5,
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    truth = await emulator.contact_truth(second)
    assert (truth["position"], truth["priority"], truth["ageAdjustmentSeconds"]) == (1, 1, -5)
    assert (await emulator.contact_truth(first))["position"] == 2
    stats = (await emulator.sim_stats())["updateContactRoutingData"]
    assert stats["byOutcome"] == {"ok": 1}


async def test_update_contact_routing_data_errors(connect_client, emulator):
    contact = await emulator.create_contact("sales")
    args = {"InstanceId": emulator.instance_id, "ContactId": contact["contactId"]}
    criteria = {"Steps": [{"Expression": {"AttributeCondition": {"Name": "Technology"}}}]}
    with pytest.raises(connect_client.exceptions.InvalidRequestException):
        await connect_client.call("update_contact_routing_data", **args, RoutingCriteria=criteria)
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await connect_client.call(
            "update_contact_routing_data", **{**args, "ContactId": UNKNOWN}, QueuePriority=1
        )
    await emulator.connect(contact)
    with pytest.raises(connect_client.exceptions.ResourceConflictException):
        await connect_client.call("update_contact_routing_data", **args, QueuePriority=1)


@pytest.mark.parametrize(
    ("member", "value", "constraint"),
    [
        ("QueuePriority", 0, "value between 1 and"),
        ("QueueTimeAdjustmentSeconds", 2**31, "value between -2147483648 and 2147483647"),
        ("QueueTimeAdjustmentSeconds", "ten", "be an integer"),
    ],
)
async def test_update_contact_routing_data_validation(emulator, member, value, constraint):
    contact = await emulator.create_contact("sales")
    async with aioboto3.Session().client("connect", **emulator.boto_kwargs(UNCHECKED)) as client:
        with pytest.raises(client.exceptions.InvalidParameterException) as info:
            await client.update_contact_routing_data(
                InstanceId=emulator.instance_id, ContactId=contact["contactId"], **{member: value}
            )
    assert constraint in str(info.value)
    assert (await emulator.contact_truth(contact))["priority"] == 5  # nothing changed


async def test_routing_control_errors(emulator):
    contact = await emulator.create_contact("sales")
    path = f"/_sim/contacts/{contact['contactId']}/routing"
    for body, status in [
        ({"priority": "x"}, 400),
        ({"priority": 0}, 400),
        ({"other": 1}, 400),
        ([], 400),
    ]:
        response = await emulator.http.post(path, json=body)
        assert response.status_code == status, body
    assert (
        await emulator.http.post(f"/_sim/contacts/{UNKNOWN}/routing", json={})
    ).status_code == 404
    assert (await emulator.http.get(f"/_sim/contacts/{UNKNOWN}")).status_code == 404
    await emulator.abandon(contact)
    assert (await emulator.http.post(path, json={"priority": 1})).status_code == 409
    truth = await emulator.contact_truth(contact)
    assert truth["status"] == "abandoned" and truth["position"] is None
    assert truth["leftAt"] is not None


# -- GetCurrentMetricData ---------------------------------------------------------------------


def staffed_config(**overrides):
    queue = QueueSpec("q", agents=3, arrivals_per_minute=0, mean_patience_s=None)
    queues = (replace(queue, name="sales"), replace(queue, name="support", agents=0))
    return quiet_config(queues=queues, **overrides)


async def test_current_metric_data_by_queue(connect_client, emulator):
    await emulator.put_config(paused=True)
    for _ in range(3):
        await emulator.create_contact("sales")
    await emulator.put_config(paused=False)
    response = await connect_client.call(
        "get_current_metric_data",
        InstanceId=emulator.instance_id,
        Filters={"Queues": [emulator.queues["sales"], emulator.queues["support"]]},
        Groupings=["QUEUE"],
        CurrentMetrics=FIGURES,
    )
    # support has nothing waiting and nobody staffed: no data, no row.
    (row,) = response["MetricResults"]
    assert row["Dimensions"]["Queue"]["Id"] == emulator.queues["sales"]
    assert row["Dimensions"]["Queue"]["Arn"].endswith(f"/queue/{emulator.queues['sales']}")
    assert [c["Metric"] for c in row["Collections"]] == FIGURES
    values = collections(row)
    assert values["CONTACTS_IN_QUEUE"] == 3.0
    assert 0.0 < values["OLDEST_CONTACT_AGE"] < 30.0  # seconds
    assert values["AGENTS_ONLINE"] == values["AGENTS_STAFFED"] == values["AGENTS_AVAILABLE"] == 0
    assert isinstance(response["DataSnapshotTime"], datetime.datetime)
    assert response["ApproximateTotalCount"] == 1
    assert "NextToken" not in response


async def test_current_metric_data_agents_arns_and_aggregate():
    async with run_emulator_in_process(staffed_config(paused=True)) as emulator:
        async with aioboto3.Session().client("connect", **emulator.boto_kwargs()) as client:
            for _ in range(4):  # three go to agents at once, one waits
                await emulator.create_contact("sales")
            sales = emulator.queues["sales"]
            arn = f"arn:aws:connect:us-east-1:123456789012:instance/{emulator.instance_id}"
            request = {
                "InstanceId": emulator.instance_id,
                "Filters": {"Queues": [f"{arn}/queue/{sales}", emulator.queues["support"]]},
                "CurrentMetrics": FIGURES,
            }
            grouped = await client.get_current_metric_data(**request, Groupings=["QUEUE"])
            (row,) = grouped["MetricResults"]
            assert collections(row) == {
                "CONTACTS_IN_QUEUE": 1.0,
                "OLDEST_CONTACT_AGE": 0.0,  # paused: no time has passed
                "AGENTS_AVAILABLE": 0.0,
                "AGENTS_ONLINE": 3.0,
                "AGENTS_STAFFED": 3.0,
            }
            await emulator.put_config(paused=False)
            await emulator.put_config(paused=True)
            total = await client.get_current_metric_data(**request)
            (summary,) = total["MetricResults"]
            assert summary["Dimensions"] == {}
            oldest = collections(summary)["OLDEST_CONTACT_AGE"]
            grouped = await client.get_current_metric_data(**request, Groupings=["QUEUE"])
            # Connect's documented quirk: without a grouping the "SECONDS" are milliseconds.
            assert oldest == pytest.approx(
                collections(grouped["MetricResults"][0])["OLDEST_CONTACT_AGE"] * 1000
            )
            voice = await client.get_current_metric_data(**request, Groupings=["QUEUE", "CHANNEL"])
            assert voice["MetricResults"][0]["Dimensions"]["Channel"] == "VOICE"
            chat = {**request, "Filters": {**request["Filters"], "Channels": ["CHAT"]}}
            (chat_row,) = (await client.get_current_metric_data(**chat, Groupings=["QUEUE"]))[
                "MetricResults"
            ]
            assert collections(chat_row)["CONTACTS_IN_QUEUE"] == 0.0


async def test_current_metric_data_pages_and_sorting(connect_client, emulator):
    await emulator.put_config(paused=True)
    await emulator.create_contact("support")
    for _ in range(2):
        await emulator.create_contact("sales")
    request = {
        "InstanceId": emulator.instance_id,
        "Filters": {"Queues": [emulator.queues["support"], emulator.queues["sales"]]},
        "Groupings": ["QUEUE"],
        "CurrentMetrics": [{"Name": "CONTACTS_IN_QUEUE", "Unit": "COUNT"}],
        "SortCriteria": [{"SortByMetric": "CONTACTS_IN_QUEUE", "SortOrder": "DESCENDING"}],
        "MaxResults": 1,
    }
    first = await connect_client.call("get_current_metric_data", **request)
    assert first["ApproximateTotalCount"] == 2
    assert first["MetricResults"][0]["Dimensions"]["Queue"]["Id"] == emulator.queues["sales"]
    second = await connect_client.call(
        "get_current_metric_data", **request, NextToken=first["NextToken"]
    )
    assert second["MetricResults"][0]["Dimensions"]["Queue"]["Id"] == emulator.queues["support"]
    assert "NextToken" not in second
    with pytest.raises(connect_client.exceptions.InvalidParameterException):
        await connect_client.call("get_current_metric_data", **request, NextToken="garbage")
    other = {**request, "Groupings": ["QUEUE", "CHANNEL"]}
    with pytest.raises(connect_client.exceptions.InvalidParameterException):
        await connect_client.call("get_current_metric_data", **other, NextToken=first["NextToken"])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"Filters": {"Queues": ["q"] * 101}}, "InvalidParameterException"),
        ({"Filters": {}}, "InvalidParameterException"),
        ({"Filters": {"RoutingProfiles": ["rp"]}}, "InvalidRequestException"),
        ({"Groupings": ["ROUTING_PROFILE"]}, "InvalidRequestException"),
        ({"Groupings": ["NOPE"]}, "InvalidParameterException"),
        (
            {"CurrentMetrics": [{"Name": "OLDEST_CONTACT_AGE", "Unit": "COUNT"}]},
            "InvalidParameterException",
        ),
        ({"CurrentMetrics": [{"Name": "NOPE"}]}, "InvalidParameterException"),
        ({"CurrentMetrics": []}, "InvalidParameterException"),
        ({"MaxResults": 101}, "InvalidParameterException"),
        ({"InstanceId": UNKNOWN}, "ResourceNotFoundException"),
    ],
)
async def test_current_metric_data_errors(emulator, change, error):
    request = {
        "InstanceId": emulator.instance_id,
        "Filters": {"Queues": [emulator.queues["sales"]]},
        "Groupings": ["QUEUE"],
        "CurrentMetrics": FIGURES,
        **change,
    }
    async with aioboto3.Session().client("connect", **emulator.boto_kwargs(UNCHECKED)) as client:
        with pytest.raises(getattr(client.exceptions, error)):
            await client.get_current_metric_data(**request)
    assert (await emulator.sim_stats())["getCurrentMetricData"]["byOutcome"] == {error: 1}


# -- ListQueues and DescribeQueue -------------------------------------------------------------


async def test_list_queues_all_pages(connect_client, emulator):
    response = await connect_client.call("list_queues", InstanceId=emulator.instance_id)
    summaries = response["QueueSummaryList"]
    assert {(s["Id"], s["Name"]) for s in summaries} == {
        (queue_id, name) for name, queue_id in emulator.queues.items()
    }
    assert all(s["QueueType"] == "STANDARD" for s in summaries)
    assert all(s["Arn"].endswith(f"/queue/{s['Id']}") for s in summaries)
    assert all(isinstance(s["LastModifiedTime"], datetime.datetime) for s in summaries)
    names, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = await connect_client.call(
            "list_queues",
            InstanceId=emulator.instance_id,
            QueueTypes=["STANDARD"],
            MaxResults=1,
            **extra,
        )
        assert len(page["QueueSummaryList"]) == 1
        names.append(page["QueueSummaryList"][0]["Name"])
        token = page.get("NextToken")
        if not token:
            break
    assert names == ["sales", "support"]
    agents = await connect_client.call(
        "list_queues", InstanceId=emulator.instance_id, QueueTypes=["AGENT"]
    )
    assert agents["QueueSummaryList"] == []


async def test_list_queues_errors(emulator):
    async with aioboto3.Session().client("connect", **emulator.boto_kwargs(UNCHECKED)) as client:
        with pytest.raises(client.exceptions.InvalidParameterException):
            await client.list_queues(InstanceId=emulator.instance_id, MaxResults=0)
        with pytest.raises(client.exceptions.InvalidParameterException):
            await client.list_queues(InstanceId=emulator.instance_id, QueueTypes=["VIP"])
        with pytest.raises(client.exceptions.InvalidParameterException):
            await client.list_queues(InstanceId=emulator.instance_id, NextToken="x")
        with pytest.raises(client.exceptions.InvalidParameterException) as info:
            await client.list_queues(InstanceId=emulator.instance_id, MaxResults="two")
        assert "maxResults" in str(info.value)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await client.list_queues(InstanceId=UNKNOWN)
    unsigned = await emulator.http.get(f"/queues-summary/{emulator.instance_id}")
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "AccessDeniedException"


async def test_describe_queue(connect_client, emulator):
    queue_id = emulator.queues["support"]
    response = await connect_client.call(
        "describe_queue", InstanceId=emulator.instance_id, QueueId=queue_id
    )
    queue = response["Queue"]
    assert (queue["Name"], queue["QueueId"], queue["Status"]) == ("support", queue_id, "ENABLED")
    assert queue["QueueArn"].endswith(f"/queue/{queue_id}")
    assert queue["HoursOfOperationId"]
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await connect_client.call(
            "describe_queue", InstanceId=emulator.instance_id, QueueId=UNKNOWN
        )
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await connect_client.call("describe_queue", InstanceId=UNKNOWN, QueueId=queue_id)


# -- quotas -----------------------------------------------------------------------------------


async def test_default_quotas():
    async with run_emulator_in_process(staffed_config(operation_quotas_enabled=True)) as emulator:
        quotas = (await emulator.get_config())["quotas"]
    assert quotas["getCurrentMetricData"] == {"enabled": True, "rps": 5.0, "burst": 8}
    for operation in ("listQueues", "describeQueue", "updateContactRoutingData"):
        assert quotas[operation] == {"enabled": True, "rps": 2.0, "burst": 5}


@pytest.mark.parametrize(
    ("operation", "method", "params"),
    [
        ("getCurrentMetricData", "get_current_metric_data", "metrics"),
        ("listQueues", "list_queues", "instance"),
        ("describeQueue", "describe_queue", "queue"),
        ("updateContactRoutingData", "update_contact_routing_data", "contact"),
    ],
)
async def test_each_operation_has_its_own_quota(
    connect_client, emulator, operation, method, params
):
    contact = await emulator.create_contact("sales")
    args = {"InstanceId": emulator.instance_id}
    if params == "metrics":
        args |= {"Filters": {"Queues": [emulator.queues["sales"]]}, "CurrentMetrics": FIGURES}
    elif params == "queue":
        args["QueueId"] = emulator.queues["sales"]
    elif params == "contact":
        args |= {"ContactId": contact["contactId"], "QueuePriority": 2}
    await emulator.put_config(quotas={operation: {"enabled": True, "rps": 0.01, "burst": 2}})
    for _ in range(2):
        await connect_client.call(method, **args)
    with pytest.raises(connect_client.exceptions.ThrottlingException):
        await connect_client.call(method, **args)
    assert (await emulator.sim_stats())[operation]["byOutcome"] == {
        "ok": 2,
        "ThrottlingException": 1,
    }
    # Another operation's bucket is untouched.
    await connect_client.call(
        "describe_contact", InstanceId=emulator.instance_id, ContactId=contact["contactId"]
    )


@pytest.mark.parametrize(
    "patch",
    [
        {"quotas": {"nope": {"rps": 1}}},
        {"quotas": {"listQueues": {"rps": 0}}},
        {"quotas": {"listQueues": {"burst": 0}}},
        {"quotas": []},
    ],
)
async def test_bad_quota_config_changes_nothing(emulator, patch):
    before = await emulator.get_config()
    response = await emulator.http.put("/_sim/config", json=patch)
    assert response.status_code == 400
    assert await emulator.get_config() == before
