"""Things an SDK would not send: raw HTTP against the AWS routes, plus latency and stalls."""

from __future__ import annotations

import asyncio
import time

import aioboto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/connect/aws4_request"}
UUID = "abcdef00-0000-4000-8000-000000000000"


def good_body(emulator, contact_id=UUID):
    return {
        "InstanceId": emulator.instance_id,
        "ContactId": contact_id,
        "Metrics": [{"Name": "POSITION_IN_QUEUE"}],
    }


def assert_aws_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["x-amzn-ErrorType"] == code
    assert isinstance(response.json()["message"], str)


async def post(emulator, content, headers=AUTH):
    return await emulator.http.post("/metrics/contact", content=content, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ContactId": UUID, "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": UUID, "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": UUID, "ContactId": UUID},
        {"InstanceId": UUID, "ContactId": UUID, "Metrics": []},
        {"InstanceId": UUID, "ContactId": UUID, "Metrics": [{"Name": "QUEUE_SIZE"}]},
        {"InstanceId": UUID, "ContactId": UUID, "Metrics": [{}]},
        {"InstanceId": UUID, "ContactId": UUID, "Metrics": "POSITION_IN_QUEUE"},
        {"InstanceId": UUID, "ContactId": UUID, "Metrics": ["POSITION_IN_QUEUE"]},
        {"InstanceId": 7, "ContactId": UUID, "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": UUID, "ContactId": None, "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": UUID, "ContactId": UUID.upper(), "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": UUID, "ContactId": UUID + "\n", "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": "", "ContactId": UUID, "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {"InstanceId": "a" * 251, "ContactId": UUID, "Metrics": [{"Name": "POSITION_IN_QUEUE"}]},
        {
            "InstanceId": UUID,
            "ContactId": f"arn:aws:connect:us-east-1:1:instance/{UUID}/contact/{UUID}",
            "Metrics": [{"Name": "POSITION_IN_QUEUE"}],
        },
    ],
)
async def test_malformed_bodies_are_invalid_parameters(emulator, body):
    response = await emulator.http.post("/metrics/contact", json=body, headers=AUTH)
    assert_aws_error(response, 400, "InvalidParameterException")


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"null"])
async def test_non_object_bodies_are_invalid_requests(emulator, content):
    assert_aws_error(await post(emulator, content), 400, "InvalidRequestException")


async def test_huge_body_is_refused_and_serving_continues(emulator):
    contact = await emulator.create_contact("sales")
    huge = b'{"InstanceId": "' + b"a" * (70 * 1024) + b'"}'
    assert_aws_error(await post(emulator, huge), 413, "InvalidRequestException")

    async def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(100):
            yield b" " * 1024

    assert_aws_error(await post(emulator, chunks()), 413, "InvalidRequestException")
    response = await emulator.http.post(
        "/metrics/contact", json=good_body(emulator, contact["contactId"]), headers=AUTH
    )
    assert response.status_code == 200
    assert response.json()["MetricResults"] == [
        {"Name": "POSITION_IN_QUEUE", "Value": {"Number": 1.0}}
    ]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer x"}, {"Authorization": "AWS4"}])
async def test_missing_sigv4_is_access_denied(emulator, headers):
    response = await emulator.http.post(
        "/metrics/contact", json=good_body(emulator), headers=headers
    )
    assert_aws_error(response, 403, "AccessDeniedException")
    contact = f"/contacts/{emulator.instance_id}/{UUID}"
    assert_aws_error(
        await emulator.http.get(contact, headers=headers), 403, "AccessDeniedException"
    )


async def test_missing_auth_maps_to_sdk_exception(emulator):
    async with aioboto3.Session().client(
        "connect", **emulator.boto_kwargs(Config(signature_version=botocore.UNSIGNED))
    ) as client:
        with pytest.raises(client.exceptions.AccessDeniedException):
            await client.get_contact_metrics(**good_body(emulator))


async def test_unknown_route_is_json_error(emulator):
    response = await emulator.http.get("/nope", headers=AUTH)
    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"


async def test_latency_and_jitter(emulator):
    contact = await emulator.create_contact("sales")
    await emulator.put_config(faults={"latencyMs": 150, "jitterMs": 50})
    started = time.monotonic()
    response = await emulator.http.post(
        "/metrics/contact", json=good_body(emulator, contact["contactId"]), headers=AUTH
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.15 <= elapsed < 2.0


async def test_stall_never_answers_until_switched_off(emulator):
    contact = await emulator.create_contact("sales")
    await emulator.put_config(faults={"stall": True})
    request = asyncio.ensure_future(
        emulator.http.post(
            "/metrics/contact", json=good_body(emulator, contact["contactId"]), headers=AUTH
        )
    )
    with pytest.raises(httpx.ReadTimeout):
        await emulator.http.post(
            "/metrics/contact",
            json=good_body(emulator, contact["contactId"]),
            headers=AUTH,
            timeout=0.3,
        )
    assert not request.done()
    await emulator.put_config(faults={"stall": False})  # the control API still answers
    assert (await request).status_code == 200


async def test_stall_times_out_in_the_sdk(emulator):
    contact = await emulator.create_contact("sales")
    await emulator.put_config(faults={"stall": True})
    config = Config(read_timeout=0.3, connect_timeout=1, retries={"total_max_attempts": 1})
    async with aioboto3.Session().client("connect", **emulator.boto_kwargs(config)) as client:
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            await client.get_contact_metrics(**good_body(emulator, contact["contactId"]))
    await emulator.put_config(faults={"stall": False})
