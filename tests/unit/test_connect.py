"""Connect ids, GetContactMetrics answers and error classification, without the network."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from server.connect.client import (
    ESTIMATED_WAIT_TIME,
    POSITION_IN_QUEUE,
    MetricsResult,
    Outcome,
    classify_error,
    parse_metrics,
)
from server.ids import bare_id, contact_arn, instance_arn, is_valid_id, queue_arn

CONTACT = "5f1a3c2e-0b4d-4e6f-8a9b-1c2d3e4f5a6b"
INSTANCE = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PREFIX = "arn:aws:connect:us-east-1:123456789012:instance/"

# -- ids -------------------------------------------------------------------------------------


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


# -- parse_metrics ---------------------------------------------------------------------------


def metric(name: str, number) -> dict:
    return {"Name": name, "Value": {"Number": number}}


def test_both_metrics() -> None:
    response = {
        "MetricResults": [metric(POSITION_IN_QUEUE, 3.0), metric(ESTIMATED_WAIT_TIME, 95.0)]
    }
    assert parse_metrics(response) == MetricsResult(Outcome.OK, position=3, ewt=95)


def test_metrics_in_any_order() -> None:
    response = {"MetricResults": [metric(ESTIMATED_WAIT_TIME, 10), metric(POSITION_IN_QUEUE, 1)]}
    assert parse_metrics(response) == MetricsResult(Outcome.OK, position=1, ewt=10)


def test_missing_ewt() -> None:
    assert parse_metrics({"MetricResults": [metric(POSITION_IN_QUEUE, 2)]}) == MetricsResult(
        Outcome.OK, position=2, ewt=None
    )
    no_number = {"MetricResults": [metric(POSITION_IN_QUEUE, 2), {"Name": ESTIMATED_WAIT_TIME}]}
    assert parse_metrics(no_number).ewt is None


@pytest.mark.parametrize(
    "response",
    [
        {},
        {"MetricResults": []},
        {"MetricResults": None},
        {"MetricResults": [metric(ESTIMATED_WAIT_TIME, 30)]},
        {"MetricResults": [{"Name": POSITION_IN_QUEUE, "Value": {}}]},
        {"MetricResults": [{"Name": POSITION_IN_QUEUE, "Value": None}]},
        {"MetricResults": [metric(POSITION_IN_QUEUE, "3")]},
    ],
    ids=repr,
)
def test_no_position_means_left_queue(response) -> None:
    assert parse_metrics(response) == MetricsResult(Outcome.LEFT)


def test_floats_are_rounded_and_negatives_clamped() -> None:
    response = {
        "MetricResults": [metric(POSITION_IN_QUEUE, 2.6), metric(ESTIMATED_WAIT_TIME, 59.4)]
    }
    assert parse_metrics(response) == MetricsResult(Outcome.OK, position=3, ewt=59)
    negative = {"MetricResults": [metric(POSITION_IN_QUEUE, -1.0), metric(ESTIMATED_WAIT_TIME, -8)]}
    assert parse_metrics(negative) == MetricsResult(Outcome.OK, position=0, ewt=0)


def test_parse_metrics_returns_ints() -> None:
    result = parse_metrics(
        {"MetricResults": [metric(POSITION_IN_QUEUE, 4.0), metric(ESTIMATED_WAIT_TIME, 7.0)]}
    )
    assert type(result.position) is int
    assert type(result.ewt) is int


# -- classify_error --------------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "something") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetContactMetrics",
    )


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("ResourceNotFoundException", 404, Outcome.NOT_FOUND),
        ("InvalidRequestException", 400, Outcome.INVALID_REQUEST),
        ("InvalidParameterException", 400, Outcome.INVALID_PARAMETER),
        ("ThrottlingException", 429, Outcome.THROTTLED),
        ("AccessDeniedException", 403, Outcome.ACCESS_DENIED),
        ("InternalServiceException", 500, Outcome.SERVER_ERROR),
        ("SomethingNewException", 503, Outcome.SERVER_ERROR),
        ("SomethingNewException", 502, Outcome.SERVER_ERROR),
        ("SomethingNewException", 429, Outcome.THROTTLED),
        ("SomethingNewException", 400, Outcome.INVALID_REQUEST),
        ("", 0, Outcome.SERVER_ERROR),
    ],
)
def test_client_errors(code, status, outcome) -> None:
    result, detail = classify_error(client_error(code, status, "the message"))
    assert result is outcome
    assert detail == f"{code}: the message"


def test_client_error_detail_is_bounded() -> None:
    _, detail = classify_error(client_error("InternalServiceException", 500, "x" * 10_000))
    assert len(detail) == 300


def test_client_error_without_metadata_is_a_server_error() -> None:
    exc = ClientError({"Error": {"Code": "Weird"}}, "GetContactMetrics")
    assert classify_error(exc)[0] is Outcome.SERVER_ERROR


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (ReadTimeoutError(endpoint_url="http://x"), Outcome.TIMEOUT),
        (ConnectTimeoutError(endpoint_url="http://x"), Outcome.TIMEOUT),
        (TimeoutError(), Outcome.TIMEOUT),
        (EndpointConnectionError(endpoint_url="http://x"), Outcome.CONNECTION_ERROR),
        (ConnectionClosedError(endpoint_url="http://x"), Outcome.CONNECTION_ERROR),
        (ConnectionResetError(), Outcome.CONNECTION_ERROR),
        (NoCredentialsError(), Outcome.ACCESS_DENIED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_transport_errors(exc, outcome) -> None:
    result, detail = classify_error(exc)
    assert result is outcome
    assert "http://x" not in detail


def test_unexpected_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify_error(KeyError("bug"))
