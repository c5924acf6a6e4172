"""GetContactMetrics answers and error classification, without the network."""

from __future__ import annotations

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
