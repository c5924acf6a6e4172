"""Amazon Connect's answers read into typed results, and errors classified: no I/O here.

`server.connect.client.ConnectClient` makes the calls; this turns what botocore returns (a
parsed dict, or an exception) into the results the poller and the wallboard use.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    """What DescribeContact tells about a contact's place in its queue (times epoch seconds).

    `priority` is Connect's routing priority (lower is routed first; None when not given),
    `age_adjustment_s` its `QueueTimeAdjustmentSeconds`: the contact is ordered as if it had
    been enqueued that many seconds earlier (0 when not given). `connected` and
    `disconnected` are set once the contact has left the queue that way.
    """

    outcome: Outcome
    queue: str | None = None
    enqueued: float | None = None
    detail: str | None = None
    priority: int | None = None
    age_adjustment_s: int = 0
    connected: float | None = None
    disconnected: float | None = None

    @property
    def routing_enqueued(self) -> float | None:
        """The enqueue time the queue orders this contact by (adjusted for routing age)."""
        return None if self.enqueued is None else self.enqueued - self.age_adjustment_s


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """A queue's current figures from GetCurrentMetricData (all zero: no data for it)."""

    contacts_in_queue: int = 0
    oldest_contact_age_s: float = 0.0
    agents_available: int = 0
    agents_online: int = 0
    agents_staffed: int = 0


@dataclass(frozen=True, slots=True)
class CurrentMetricsResult:
    """Figures by queue id; on a failed call, `outcome` says why and `figures` holds the
    queues of the batches that were answered before it."""

    outcome: Outcome
    figures: dict[str, QueueFigures] = field(default_factory=dict)
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class QueueInfo:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class QueuesResult:
    """ListQueues (every page) or DescribeQueue (one queue) read into `QueueInfo`s."""

    outcome: Outcome
    queues: tuple[QueueInfo, ...] = ()
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ContactSummary:
    """One contact as SearchContacts lists it (times in epoch seconds, Connect's clock)."""

    contact: str
    queue: str | None
    enqueued_at: float | None
    connected_at: float | None
    disconnected_at: float | None

    @property
    def waiting(self) -> bool:
        """In its queue now, as far as the (eventually consistent) search index knows: queued,
        not ended, and not with an agent since it was queued (a transfer queues it again)."""
        if self.queue is None or self.enqueued_at is None or self.disconnected_at is not None:
            return False
        return self.connected_at is None or self.connected_at < self.enqueued_at


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of SearchContacts: the contacts, and the token of the next page if any."""

    outcome: Outcome
    contacts: tuple[ContactSummary, ...] = ()
    next_token: str | None = None
    detail: str = ""


def parse_search_contacts(response: dict[str, Any]) -> SearchPage:
    """Read one SearchContacts page; a summary without an id is skipped."""
    contacts: list[ContactSummary] = []
    for item in response.get("Contacts") or ():
        contact = item.get("Id")
        if not isinstance(contact, str):
            continue
        queue_info = item.get("QueueInfo") or {}
        queue = queue_info.get("Id")
        contacts.append(
            ContactSummary(
                contact=contact,
                queue=queue if isinstance(queue, str) else None,
                enqueued_at=_epoch(queue_info.get("EnqueueTimestamp")),
                connected_at=_epoch((item.get("AgentInfo") or {}).get("ConnectedToAgentTimestamp")),
                disconnected_at=_epoch(item.get("DisconnectTimestamp")),
            )
        )
    token = response.get("NextToken")
    return SearchPage(
        Outcome.OK, tuple(contacts), token if isinstance(token, str) and token else None
    )


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


def _epoch(value: object) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_describe(response: dict[str, Any]) -> DescribeResult:
    """Read a DescribeContact answer; members botocore did not parse stay None/0."""
    contact = response.get("Contact") or {}
    info = contact.get("QueueInfo") or {}
    queue = info.get("Id")
    return DescribeResult(
        Outcome.OK,
        queue=queue if isinstance(queue, str) else None,
        enqueued=_epoch(info.get("EnqueueTimestamp")),
        priority=_integer(contact.get("QueuePriority")),
        age_adjustment_s=_integer(contact.get("QueueTimeAdjustmentSeconds")) or 0,
        connected=_epoch((contact.get("AgentInfo") or {}).get("ConnectedToAgentTimestamp")),
        disconnected=_epoch(contact.get("DisconnectTimestamp")),
    )


# Metric name -> QueueFigures field. OLDEST_CONTACT_AGE is in seconds only because the
# request groups by QUEUE (without a grouping Connect sends milliseconds, labelled SECONDS).
CURRENT_METRICS = {
    "CONTACTS_IN_QUEUE": "contacts_in_queue",
    "OLDEST_CONTACT_AGE": "oldest_contact_age_s",
    "AGENTS_AVAILABLE": "agents_available",
    "AGENTS_ONLINE": "agents_online",
    "AGENTS_STAFFED": "agents_staffed",
}
CURRENT_METRIC_UNITS = {
    name: "SECONDS" if name == "OLDEST_CONTACT_AGE" else "COUNT" for name in CURRENT_METRICS
}


def parse_current_metrics(response: dict[str, Any]) -> dict[str, QueueFigures]:
    """QueueFigures by queue id out of one page grouped by QUEUE; rows without a queue id are
    skipped, a missing or null value reads as 0."""
    figures: dict[str, QueueFigures] = {}
    for result in response.get("MetricResults") or ():
        queue = ((result.get("Dimensions") or {}).get("Queue") or {}).get("Id")
        if not isinstance(queue, str):
            continue
        values: dict[str, Any] = {}
        for item in result.get("Collections") or ():
            name = (item.get("Metric") or {}).get("Name")
            value = item.get("Value")
            if name in CURRENT_METRICS and isinstance(value, int | float):
                values[CURRENT_METRICS[name]] = max(0.0, float(value))
        figures[queue] = QueueFigures(
            contacts_in_queue=round(values.get("contacts_in_queue", 0)),
            oldest_contact_age_s=values.get("oldest_contact_age_s", 0.0),
            agents_available=round(values.get("agents_available", 0)),
            agents_online=round(values.get("agents_online", 0)),
            agents_staffed=round(values.get("agents_staffed", 0)),
        )
    return figures


def parse_queue_summaries(response: dict[str, Any]) -> list[QueueInfo]:
    """QueueInfo of every summary with an id and a name (agent queues have no name)."""
    return [
        QueueInfo(summary["Id"], summary["Name"])
        for summary in response.get("QueueSummaryList") or ()
        if isinstance(summary.get("Id"), str) and isinstance(summary.get("Name"), str)
    ]


def parse_queue(response: dict[str, Any]) -> QueueInfo | None:
    queue = response.get("Queue") or {}
    queue_id, name = queue.get("QueueId"), queue.get("Name")
    if isinstance(queue_id, str) and isinstance(name, str):
        return QueueInfo(queue_id, name)
    return None


def batches(items: Iterable[str], size: int) -> list[list[str]]:
    """`items` without repeats, in order, cut into lists of at most `size`."""
    unique = list(dict.fromkeys(items))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


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
