"""Ids: Connect instance and contact ids (botocore's rule), queue ids, ARNs. No I/O."""

from __future__ import annotations

import botocore.session
import pytest

from server.ids import (
    MAX_QUEUE_ID_LENGTH,
    bare_id,
    contact_arn,
    instance_arn,
    is_valid_id,
    is_valid_queue_id,
    queue_arn,
)

CONTACT = "5f1a3c2e-0b4d-4e6f-8a9b-1c2d3e4f5a6b"
INSTANCE = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PREFIX = "arn:aws:connect:us-east-1:123456789012:instance/"


def test_pattern_comes_from_botocore() -> None:
    model = botocore.session.get_session().get_service_model("connect")
    shape = model.operation_model("GetContactMetrics").input_shape.members["ContactId"]
    assert "instance/" in shape.metadata["pattern"]
    assert shape.metadata["max"] == 250


@pytest.mark.parametrize(
    "value",
    [CONTACT, INSTANCE, PREFIX + CONTACT, f"arn:aws-us-gov:connect:eu-west-1:1:instance/{CONTACT}"],
)
def test_valid_ids(value) -> None:
    assert is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        CONTACT.upper(),
        CONTACT + "\n",
        CONTACT[:-1],
        f"{PREFIX}{INSTANCE}/contact/{CONTACT}",
        f"{PREFIX}{CONTACT}/",
        "arn:aws:connect:us-east-1:123:queue/" + CONTACT,
        None,
        42,
        b"5f1a3c2e-0b4d-4e6f-8a9b-1c2d3e4f5a6b",
    ],
)
def test_invalid_ids(value) -> None:
    assert not is_valid_id(value)


def test_arn_helpers() -> None:
    assert bare_id(CONTACT) == CONTACT
    assert bare_id(PREFIX + CONTACT) == CONTACT
    assert instance_arn("eu-west-2", "1", PREFIX + INSTANCE) == (
        f"arn:aws:connect:eu-west-2:1:instance/{INSTANCE}"
    )
    assert contact_arn("us-east-1", "123456789012", INSTANCE, PREFIX + CONTACT) == (
        f"{PREFIX}{INSTANCE}/contact/{CONTACT}"
    )
    assert queue_arn("us-east-1", "123456789012", PREFIX + INSTANCE, "q1") == (
        f"{PREFIX}{INSTANCE}/queue/q1"
    )


@pytest.mark.parametrize(
    "value", ["q", "sales", "queue with spaces", "ünïcode-队列", CONTACT, "x" * MAX_QUEUE_ID_LENGTH]
)
def test_valid_queue_ids(value) -> None:
    assert is_valid_queue_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * (MAX_QUEUE_ID_LENGTH + 1),
        "q\n",
        "tab\there",
        "nul\x00",
        "\u2028",
        None,
        7,
        b"q",
        ["q"],
    ],
)
def test_invalid_queue_ids(value) -> None:
    assert not is_valid_queue_id(value)
