"""The one Amazon Connect client of the service: aioboto3, long-lived, errors classified.

botocore's own retries are switched off (one attempt per call) because the poller owns the
retry policy: shared slow-down on throttling, per-contact backoff on failures. Two stacked
retry layers would multiply requests against a quota that belongs to the whole account.

Every call is bounded by one timeout, never raises for AWS or transport errors (the outcome
says what happened) and is counted in `queuecast_connect_calls_total{api,outcome}`; the
reading of answers lives in `server.connect.answers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aioboto3
from botocore.config import Config

from server import metrics
from server._lifecycle import AsyncCloseable
from server.connect.answers import (
    CURRENT_METRIC_UNITS,
    ESTIMATED_WAIT_TIME,
    POSITION_IN_QUEUE,
    ContactSummary,
    CurrentMetricsResult,
    DescribeResult,
    MetricsResult,
    Outcome,
    QueueFigures,
    QueueInfo,
    QueuesResult,
    SearchPage,
    batches,
    classify_error,
    parse_current_metrics,
    parse_describe,
    parse_metrics,
    parse_queue,
    parse_queue_summaries,
    parse_search_contacts,
)

__all__ = [
    "ESTIMATED_WAIT_TIME",
    "POSITION_IN_QUEUE",
    "ConnectClient",
    "ContactSummary",
    "CurrentMetricsResult",
    "DescribeResult",
    "MetricsResult",
    "Outcome",
    "QueueFigures",
    "QueueInfo",
    "QueuesResult",
    "SearchPage",
    "classify_error",
    "parse_metrics",
]

MAX_QUEUES_PER_METRICS_CALL = 100  # GetCurrentMetricData's Filters.Queues limit
LIST_QUEUES_PAGE = 1000  # ListQueues' largest MaxResults: fewest calls against its quota
SEARCH_PAGE = 100  # SearchContacts' largest MaxResults
MAX_PAGES = 100  # a listing that keeps handing out tokens is cut off, not followed forever


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

    async def _call(self, api: str, method: str, **params: Any) -> Any:
        """One call of the client's `method` within the call timeout, counted under `api`.

        Raises:
            _CallFailed: the call failed; carries the outcome and a safe message.
        """
        if self._client is None:
            metrics.CONNECT_CALLS.labels(api, Outcome.CONNECTION_ERROR.value).inc()
            raise _CallFailed(Outcome.CONNECTION_ERROR, "client closed")
        try:
            response = await asyncio.wait_for(
                getattr(self._client, method)(**params), self._call_timeout
            )
        except Exception as exc:
            outcome, detail = classify_error(exc)
            metrics.CONNECT_CALLS.labels(api, outcome.value).inc()
            raise _CallFailed(outcome, detail) from None
        metrics.CONNECT_CALLS.labels(api, Outcome.OK.value).inc()
        return response

    async def _pages(
        self, api: str, method: str, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a listing, following NextToken (at most MAX_PAGES calls).

        Raises:
            _CallFailed: a call failed; the pages before it were yielded.
        """
        params = dict(request)
        for _ in range(MAX_PAGES):
            response: dict[str, Any] = await self._call(api, method, **params)
            yield response
            token = response.get("NextToken")
            if not token:
                return
            params["NextToken"] = token

    async def get_contact_metrics(self, instance: str, contact: str) -> MetricsResult:
        """Ask for both metrics of one contact in one call."""
        started = time.perf_counter()
        try:
            response = await self._call(
                "GetContactMetrics",
                "get_contact_metrics",
                InstanceId=instance,
                ContactId=contact,
                Metrics=[{"Name": POSITION_IN_QUEUE}, {"Name": ESTIMATED_WAIT_TIME}],
            )
        except _CallFailed as failed:
            result = MetricsResult(failed.outcome, detail=failed.detail)
        else:
            result = parse_metrics(response)
        metrics.POLL_LATENCY.observe(time.perf_counter() - started)
        metrics.POLLS.labels(result.outcome.value).inc()
        return result

    async def describe_contact(self, instance: str, contact: str) -> DescribeResult:
        """The contact's queue, enqueue time, routing priority and age adjustment."""
        try:
            response = await self._call(
                "DescribeContact", "describe_contact", InstanceId=instance, ContactId=contact
            )
        except _CallFailed as failed:
            result = DescribeResult(failed.outcome, detail=failed.detail)
        else:
            result = parse_describe(response)
        metrics.DESCRIBES.labels(result.outcome.value).inc()
        return result

    async def search_contacts(
        self,
        instance: str,
        queue_ids: list[str],
        *,
        enqueued_from: float,
        enqueued_to: float,
        next_token: str | None = None,
    ) -> SearchPage:
        """One page of the contacts of `queue_ids` enqueued between the two times (epoch
        seconds, Connect's clock), oldest initiation first. The caller pages (each page is a
        call against SearchContacts' own quota)."""
        request: dict[str, Any] = {
            "InstanceId": instance,
            "TimeRange": {
                "Type": "ENQUEUE_TIMESTAMP",
                "StartTime": datetime.fromtimestamp(enqueued_from, UTC),
                "EndTime": datetime.fromtimestamp(enqueued_to, UTC),
            },
            "SearchCriteria": {"QueueIds": queue_ids},
            "Sort": {"FieldName": "INITIATION_TIMESTAMP", "Order": "ASCENDING"},
            "MaxResults": SEARCH_PAGE,
        }
        if next_token is not None:
            request["NextToken"] = next_token
        try:
            response = await self._call("SearchContacts", "search_contacts", **request)
        except _CallFailed as failed:
            return SearchPage(failed.outcome, detail=failed.detail)
        return parse_search_contacts(response)

    async def get_current_metric_data(
        self, instance: str, queue_ids: list[str]
    ) -> CurrentMetricsResult:
        """Current figures of `queue_ids`, grouped by queue, at most 100 queues per call.

        A requested queue that Connect returns no row for has no data: all its figures are 0.
        Stops at the first failed call (its outcome is the result's; `figures` then holds
        the batches answered before it).
        """
        figures: dict[str, QueueFigures] = {}
        for batch in batches(queue_ids, MAX_QUEUES_PER_METRICS_CALL):
            request: dict[str, Any] = {
                "InstanceId": instance,
                "Filters": {"Queues": batch},
                "Groupings": ["QUEUE"],
                "CurrentMetrics": [
                    {"Name": name, "Unit": unit} for name, unit in CURRENT_METRIC_UNITS.items()
                ],
                "MaxResults": MAX_QUEUES_PER_METRICS_CALL,
            }
            answered: dict[str, QueueFigures] = {}
            try:
                async for response in self._pages(
                    "GetCurrentMetricData", "get_current_metric_data", request
                ):
                    answered.update(parse_current_metrics(response))
            except _CallFailed as failed:
                return CurrentMetricsResult(failed.outcome, figures, failed.detail)
            for queue in batch:
                figures[queue] = answered.get(queue, QueueFigures())
        return CurrentMetricsResult(Outcome.OK, figures)

    async def list_queues(self, instance: str) -> QueuesResult:
        """Every STANDARD queue of the instance (id and name), all pages."""
        queues: list[QueueInfo] = []
        request: dict[str, Any] = {
            "InstanceId": instance,
            "QueueTypes": ["STANDARD"],
            "MaxResults": LIST_QUEUES_PAGE,
        }
        try:
            async for response in self._pages("ListQueues", "list_queues", request):
                queues.extend(parse_queue_summaries(response))
        except _CallFailed as failed:
            return QueuesResult(failed.outcome, detail=failed.detail)
        return QueuesResult(Outcome.OK, tuple(queues))

    async def describe_queue(self, instance: str, queue: str) -> QueuesResult:
        """One queue's id and name (`queues` holds it, or nothing if the answer had none)."""
        try:
            response = await self._call(
                "DescribeQueue", "describe_queue", InstanceId=instance, QueueId=queue
            )
        except _CallFailed as failed:
            return QueuesResult(failed.outcome, detail=failed.detail)
        info = parse_queue(response)
        return QueuesResult(Outcome.OK, () if info is None else (info,))


class _CallFailed(Exception):
    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail
