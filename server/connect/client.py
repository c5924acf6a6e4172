"""The one Amazon Connect client of the service: aioboto3, long-lived, errors classified.

botocore's own retries are switched off (one attempt per call) because the poller owns the
retry policy: shared slow-down on throttling, per-contact backoff on failures. Two stacked
retry layers would multiply requests against a quota that belongs to the whole account.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from server import metrics
from server._lifecycle import AsyncCloseable

POSITION_IN_QUEUE = "POSITION_IN_QUEUE"
ESTIMATED_WAIT_TIME = "ESTIMATED_WAIT_TIME"


class Outcome(enum.StrEnum):
    OK = "ok"
    LEFT = "left_queue"  # 200 without the metrics
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    INVALID_PARAMETER = "invalid_parameter"
    THROTTLED = "throttled"
    ACCESS_DENIED = "access_denied"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"


_ERROR_CODES = {
    "ResourceNotFoundException": Outcome.NOT_FOUND,
    "InvalidRequestException": Outcome.INVALID_REQUEST,
    "InvalidParameterException": Outcome.INVALID_PARAMETER,
    "ThrottlingException": Outcome.THROTTLED,
    "TooManyRequestsException": Outcome.THROTTLED,
    "AccessDeniedException": Outcome.ACCESS_DENIED,
    "UnrecognizedClientException": Outcome.ACCESS_DENIED,
    "InvalidSignatureException": Outcome.ACCESS_DENIED,
    "InternalServiceException": Outcome.SERVER_ERROR,
    "ServiceUnavailableException": Outcome.SERVER_ERROR,
}


@dataclass(frozen=True, slots=True)
class MetricsResult:
    outcome: Outcome
    position: int | None = None
    ewt: int | None = None
    detail: str | None = None  # the AWS error message, never credentials


@dataclass(frozen=True, slots=True)
class DescribeResult:
    outcome: Outcome
    queue: str | None = None
    enqueued: float | None = None  # epoch seconds
    detail: str | None = None


def parse_metrics(response: dict[str, Any]) -> MetricsResult:
    """Read POSITION_IN_QUEUE and ESTIMATED_WAIT_TIME out of a 200 answer.

    A missing position means the contact is no longer in queue (AWS: metrics are only
    available while the contact is actively in queue).
    """
    values: dict[str, float] = {}
    for result in response.get("MetricResults") or ():
        number = (result.get("Value") or {}).get("Number")
        if isinstance(number, int | float):
            values[str(result.get("Name"))] = float(number)
    position = values.get(POSITION_IN_QUEUE)
    if position is None:
        return MetricsResult(Outcome.LEFT)
    ewt = values.get(ESTIMATED_WAIT_TIME)
    return MetricsResult(
        Outcome.OK,
        position=max(0, round(position)),
        ewt=None if ewt is None else max(0, round(ewt)),
    )


def classify_error(exc: BaseException) -> tuple[Outcome, str]:
    """Map an exception from botocore or the transport to an outcome and a safe message."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        outcome = _ERROR_CODES.get(code)
        if outcome is None:
            outcome = (
                Outcome.SERVER_ERROR
                if status >= 500 or not status
                else (Outcome.THROTTLED if status == 429 else Outcome.INVALID_REQUEST)
            )
        return outcome, f"{code}: {error.get('Message', '')}"[:300]
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | asyncio.TimeoutError):
        return Outcome.TIMEOUT, type(exc).__name__
    if isinstance(exc, NoCredentialsError):
        return Outcome.ACCESS_DENIED, "no AWS credentials found"
    if isinstance(exc, BotoConnectionError | OSError):
        return Outcome.CONNECTION_ERROR, type(exc).__name__
    if isinstance(exc, BotoCoreError):
        return Outcome.CONNECTION_ERROR, type(exc).__name__
    raise exc


class ConnectClient(AsyncCloseable):
    """Async context manager owning one aioboto3 `connect` client.

    Args:
        region: AWS Region.
        endpoint_url: the emulator's URL, or `None` for the real endpoint.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for an answer.
        max_pool: connections kept open to the endpoint.
    """

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_pool: int = 10,
    ) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_pool,
        )
        # botocore's timeouts cover each socket operation; this covers the whole call.
        self._call_timeout = connect_timeout + read_timeout + 1.0
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> ConnectClient:
        session = aioboto3.Session()
        self._client = await self._stack.enter_async_context(
            session.client(
                "connect",
                region_name=self._region,
                endpoint_url=self._endpoint_url,
                config=self._config,
            )
        )
        return self

    async def close(self) -> None:
        """Close the HTTP pool. Idempotent."""
        self._client = None
        await self._stack.aclose()

    async def get_contact_metrics(self, instance: str, contact: str) -> MetricsResult:
        """Ask for both metrics in one call; never raises for AWS or transport errors."""
        if self._client is None:
            return MetricsResult(Outcome.CONNECTION_ERROR, detail="client closed")
        started = time.perf_counter()
        try:
            response = await asyncio.wait_for(
                self._client.get_contact_metrics(
                    InstanceId=instance,
                    ContactId=contact,
                    Metrics=[{"Name": POSITION_IN_QUEUE}, {"Name": ESTIMATED_WAIT_TIME}],
                ),
                self._call_timeout,
            )
        except Exception as exc:
            outcome, detail = classify_error(exc)
            result = MetricsResult(outcome, detail=detail)
        else:
            result = parse_metrics(response)
        metrics.POLL_LATENCY.observe(time.perf_counter() - started)
        metrics.POLLS.labels(result.outcome.value).inc()
        return result

    async def describe_contact(self, instance: str, contact: str) -> DescribeResult:
        """Learn the queue a contact waits in; never raises for AWS or transport errors."""
        if self._client is None:
            return DescribeResult(Outcome.CONNECTION_ERROR, detail="client closed")
        try:
            response = await asyncio.wait_for(
                self._client.describe_contact(InstanceId=instance, ContactId=contact),
                self._call_timeout,
            )
        except Exception as exc:
            outcome, detail = classify_error(exc)
            result = DescribeResult(outcome, detail=detail)
        else:
            info = (response.get("Contact") or {}).get("QueueInfo") or {}
            queue, enqueued = info.get("Id"), info.get("EnqueueTimestamp")
            result = DescribeResult(
                Outcome.OK,
                queue=queue if isinstance(queue, str) else None,
                enqueued=enqueued.timestamp() if isinstance(enqueued, datetime) else None,
            )
        metrics.DESCRIBES.labels(result.outcome.value).inc()
        return result
