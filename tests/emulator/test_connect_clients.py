"""Real boto3 and aioboto3 clients against the emulator on loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime

import aiobotocore
import botocore.session
import pytest

METRICS = [{"Name": "POSITION_IN_QUEUE"}, {"Name": "ESTIMATED_WAIT_TIME"}]


async def metrics(client, emulator, contact_id, names=METRICS, instance=None):
    return await client.call(
        "get_contact_metrics",
        InstanceId=instance or emulator.instance_id,
        ContactId=contact_id,
        Metrics=names,
    )


def values(response):
    return {r["Name"]: r["Value"]["Number"] for r in response["MetricResults"]}


def test_pinned_botocore_lacks_estimated_wait_time():
    # The premise of the round-trip test below: if this fails, the pin moved on.
    model = botocore.session.get_session().get_service_model("connect")
    enum = model.shape_for("ContactMetricName").enum
    assert "ESTIMATED_WAIT_TIME" not in enum
    assert aiobotocore.__version__


async def test_both_metrics_round_trip(connect_client, emulator):
    await emulator.put_config(paused=True)
    contacts = [await emulator.create_contact("sales") for _ in range(3)]
    response = await metrics(connect_client, emulator, contacts[2]["contactId"])
    assert [r["Name"] for r in response["MetricResults"]] == [
        "POSITION_IN_QUEUE",
        "ESTIMATED_WAIT_TIME",
    ]
    truth = (await emulator.waiting("sales"))[2]
    assert values(response) == {"POSITION_IN_QUEUE": 3.0, "ESTIMATED_WAIT_TIME": truth["ewt"]}
    assert response["Id"] == contacts[2]["contactId"]
    assert response["Arn"] == (
        f"arn:aws:connect:us-east-1:123456789012:instance/{emulator.instance_id}"
        f"/contact/{contacts[2]['contactId']}"
    )


async def test_only_requested_metrics_in_request_order(connect_client, emulator):
    contact = await emulator.create_contact("support")
    cid = contact["contactId"]
    one = await metrics(connect_client, emulator, cid, [{"Name": "ESTIMATED_WAIT_TIME"}])
    assert [r["Name"] for r in one["MetricResults"]] == ["ESTIMATED_WAIT_TIME"]
    two = await metrics(connect_client, emulator, cid, METRICS[::-1])
    assert [r["Name"] for r in two["MetricResults"]] == ["ESTIMATED_WAIT_TIME", "POSITION_IN_QUEUE"]


async def test_instance_arn_prefix_accepted(connect_client, emulator):
    contact = await emulator.create_contact("sales")
    arn = f"arn:aws:connect:us-east-1:123456789012:instance/{emulator.instance_id}"
    response = await metrics(connect_client, emulator, contact["contactId"], instance=arn)
    assert values(response)["POSITION_IN_QUEUE"] == 1.0


async def test_priority_orders_positions(connect_client, emulator):
    low = await emulator.create_contact("sales", priority=5)
    high = await emulator.create_contact("sales", priority=1)
    assert (
        values(await metrics(connect_client, emulator, high["contactId"]))["POSITION_IN_QUEUE"]
        == 1.0
    )
    assert (
        values(await metrics(connect_client, emulator, low["contactId"]))["POSITION_IN_QUEUE"]
        == 2.0
    )


async def test_describe_contact(connect_client, emulator):
    contact = await emulator.create_contact("support")
    response = await connect_client.call(
        "describe_contact", InstanceId=emulator.instance_id, ContactId=contact["contactId"]
    )
    described = response["Contact"]
    assert described["Id"] == contact["contactId"]
    assert described["Arn"].endswith(f"/contact/{contact['contactId']}")
    assert described["Channel"] == "VOICE"
    assert described["InitiationMethod"] == "INBOUND"
    assert isinstance(described["InitiationTimestamp"], datetime.datetime)
    assert described["QueueInfo"]["Id"] == emulator.queues["support"]
    assert isinstance(described["QueueInfo"]["EnqueueTimestamp"], datetime.datetime)


async def test_describe_contact_unknown(connect_client, emulator):
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await connect_client.call(
            "describe_contact",
            InstanceId=emulator.instance_id,
            ContactId="00000000-0000-4000-8000-000000000000",
        )


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("empty", None),
        ("empty-then-not-found", None),
        ("not-found", "ResourceNotFoundException"),
        ("invalid", "InvalidRequestException"),
    ],
)
async def test_leave_modes(connect_client, emulator, mode, error):
    await emulator.put_config(leaveMode=mode)
    contact = await emulator.create_contact("sales")
    await emulator.connect(contact)
    if error is None:
        response = await metrics(connect_client, emulator, contact["contactId"])
        assert response["MetricResults"] == []
        assert response["Id"] == contact["contactId"]
    else:
        with pytest.raises(getattr(connect_client.exceptions, error)):
            await metrics(connect_client, emulator, contact["contactId"])


async def test_empty_then_not_found_after_grace(connect_client, emulator):
    await emulator.put_config(leaveMode="empty-then-not-found", leaveGrace=0.3)
    contact = await emulator.create_contact("sales")
    await emulator.abandon(contact)
    assert (await metrics(connect_client, emulator, contact["contactId"]))["MetricResults"] == []
    await asyncio.sleep(0.35)  # leaveGrace is real seconds, on purpose
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await metrics(connect_client, emulator, contact["contactId"])


async def test_unknown_instance_and_contact(connect_client, emulator):
    contact = await emulator.create_contact("sales")
    other = "11111111-1111-4111-8111-111111111111"
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await metrics(connect_client, emulator, contact["contactId"], instance=other)
    with pytest.raises(connect_client.exceptions.ResourceNotFoundException):
        await metrics(connect_client, emulator, other)


async def test_throttling(connect_client, emulator):
    await emulator.put_config(quota={"enabled": True, "rps": 0.01, "burst": 2})
    contact = await emulator.create_contact("sales")
    for _ in range(2):
        await metrics(connect_client, emulator, contact["contactId"])
    with pytest.raises(connect_client.exceptions.ThrottlingException):
        await metrics(connect_client, emulator, contact["contactId"])
    stats = (await emulator.sim_stats())["getContactMetrics"]
    assert stats["byOutcome"] == {"ok": 2, "ThrottlingException": 1}
    assert stats["byContact"] == {contact["contactId"]: 3}


async def test_describe_contact_has_its_own_quota(connect_client, emulator):
    await emulator.put_config(describeQuota={"enabled": True, "rps": 0.01, "burst": 1})
    contact = await emulator.create_contact("sales")
    args = {"InstanceId": emulator.instance_id, "ContactId": contact["contactId"]}
    await connect_client.call("describe_contact", **args)
    with pytest.raises(connect_client.exceptions.ThrottlingException):
        await connect_client.call("describe_contact", **args)
    await metrics(connect_client, emulator, contact["contactId"])  # other operation unaffected


@pytest.mark.parametrize(
    "error",
    [
        "InternalServiceException",
        "ThrottlingException",
        "InvalidRequestException",
        "InvalidParameterException",
        "AccessDeniedException",
        "ResourceNotFoundException",
    ],
)
async def test_injected_faults(connect_client, emulator, error):
    await emulator.put_config(faults={"rates": {error: 1.0}})
    contact = await emulator.create_contact("sales")
    with pytest.raises(getattr(connect_client.exceptions, error)):
        await metrics(connect_client, emulator, contact["contactId"])
    await emulator.put_config(faults={"rates": {}})
    assert values(await metrics(connect_client, emulator, contact["contactId"]))


async def test_validation_errors_reach_the_sdk(connect_client, emulator):
    with pytest.raises(connect_client.exceptions.InvalidParameterException) as info:
        await metrics(connect_client, emulator, "not-a-uuid")
    assert "contactId" in str(info.value)
    with pytest.raises(connect_client.exceptions.InvalidParameterException):
        await metrics(
            connect_client, emulator, "00000000-0000-4000-8000-000000000000", [{"Name": "NOPE"}]
        )
