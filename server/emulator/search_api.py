"""Connect's SearchContacts on the wire (`POST /search-contacts`), answered from the search index.

What it answers and where AWS documents nothing (docs/emulator.md, "SearchContacts"):
- `TimeRange` of every type the model's enum lists; bounds inclusive; StartTime after EndTime,
  or a range over 8 weeks (the span Connect's contact search allows), is
  InvalidParameterException. SCHEDULED_TIMESTAMP matches nothing (no scheduled contacts).
- `SearchCriteria` QueueIds, AgentIds (ids or ARNs), Channels, InitiationMethods; an empty list
  filters nothing; any other criterion is InvalidParameterException (not modelled), never
  silently ignored.
- `Sort` by any SortableFieldName; contacts without the field sort last in either order; ties
  by initiation time, then id. Without `Sort`: INITIATION_TIMESTAMP ASCENDING (AWS documents no
  default: callers should say what they want).
- Pages of `MaxResults` (default 100), tokens from `paging.py`, `TotalCount` = every match; at
  most the first 10,000 matches can be paged (the limit Connect documents for contact search).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from server.emulator.operations import ConnectOperations
from server.emulator.paging import page
from server.emulator.search_index import SearchRecord
from server.emulator.simulator import Emulator
from server.emulator.wire import AwsError, input_validator, read_json_body
from server.ids import bare_id, contact_arn

MAX_RANGE_S = 8 * 7 * 24 * 3600  # Connect's contact search spans at most 8 weeks
RESULT_LIMIT = 10_000  # "search results for a given query are limited to the first 10K"
SUPPORTED_CRITERIA = frozenset({"QueueIds", "AgentIds", "Channels", "InitiationMethods"})
CHANNEL, INITIATION_METHOD = "VOICE", "INBOUND"  # every model contact is an inbound call

# The record's value a TimeRange type or sort field reads (None: the contact has none).
TIMESTAMPS: dict[str, Callable[[SearchRecord], float | None]] = {
    "INITIATION_TIMESTAMP": lambda r: r.initiated_at,
    "ENQUEUE_TIMESTAMP": lambda r: r.enqueued_at,
    "CONNECTED_TO_AGENT_TIMESTAMP": lambda r: r.connected_at,
    "DISCONNECT_TIMESTAMP": lambda r: r.disconnected_at,
    "SCHEDULED_TIMESTAMP": lambda r: None,
    "EXPIRY_TIMESTAMP": lambda r: None,
}
SORT_KEYS: dict[str, Callable[[SearchRecord], float | str | None]] = {
    **TIMESTAMPS,
    "INITIATION_METHOD": lambda r: INITIATION_METHOD,
    "CHANNEL": lambda r: CHANNEL,
}


class SearchApi(ConnectOperations):
    """The SearchContacts handler."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self._validate = input_validator("SearchContacts")

    async def search_contacts(self, request: Request) -> Response:
        async def parse(request: Request) -> tuple[dict[str, Any], str | None]:
            body = await read_json_body(request, self.emulator.config.max_body_bytes)
            self._validate(body)
            _check_time_range(body["TimeRange"])
            _check_criteria(body.get("SearchCriteria") or {})
            return body, None

        return await self.serve("searchContacts", request, parse, self._answer)

    def _answer(self, params: dict[str, Any]) -> dict[str, Any]:
        em = self.emulator
        instance_id = self.instance(params["InstanceId"])
        visible = em.search_index.visible(instance_id, em.clock.now(), em.search_lag_s)
        if not em.search_includes_queued:
            visible = (r for r in visible if not r.queued_only)
        matches = [r for r in visible if _matches(r, params)]
        sort = params.get("Sort") or {"FieldName": "INITIATION_TIMESTAMP", "Order": "ASCENDING"}
        ordered = _sorted(matches, sort["FieldName"], sort["Order"] == "DESCENDING")
        records, token = page(ordered[:RESULT_LIMIT], params, default_size=100)
        body: dict[str, Any] = {
            "Contacts": [self._summary(r) for r in records],
            "TotalCount": len(matches),
        }
        if token is not None:
            body["NextToken"] = token
        return body

    def _summary(self, record: SearchRecord) -> dict[str, Any]:
        config = self.emulator.config
        arn = contact_arn(config.region, config.account_id, record.instance_id, record.contact_id)
        summary: dict[str, Any] = {
            "Arn": arn,
            "Id": record.contact_id,
            "InitiationMethod": INITIATION_METHOD,
            "Channel": CHANNEL,
            "QueueInfo": {"Id": record.queue_id, "EnqueueTimestamp": record.enqueued_at},
            "InitiationTimestamp": record.initiated_at,
        }
        if record.connected_at is not None:
            agent: dict[str, Any] = {"ConnectedToAgentTimestamp": record.connected_at}
            if record.agent_id is not None:
                agent["Id"] = record.agent_id
            summary["AgentInfo"] = agent
        if record.disconnected_at is not None:
            summary["DisconnectTimestamp"] = record.disconnected_at
        return summary


def _check_time_range(time_range: dict[str, Any]) -> None:
    """Timestamps are epoch seconds on the wire (botocore's rest-json body format)."""
    for name in ("StartTime", "EndTime"):
        value = time_range[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise AwsError(
                "InvalidParameterException",
                f"TimeRange.{name} must be a timestamp in epoch seconds",
            )
    start, end = time_range["StartTime"], time_range["EndTime"]
    if start > end:
        raise AwsError("InvalidParameterException", "TimeRange.StartTime must not be after EndTime")
    if end - start > MAX_RANGE_S:
        raise AwsError("InvalidParameterException", "TimeRange must not span more than 8 weeks")


def _check_criteria(criteria: dict[str, Any]) -> None:
    unsupported = sorted(k for k, v in criteria.items() if v is not None) if criteria else []
    unsupported = [k for k in unsupported if k not in SUPPORTED_CRITERIA]
    if unsupported:
        raise AwsError(
            "InvalidParameterException",
            f"SearchCriteria.{', SearchCriteria.'.join(unsupported)} not supported by the "
            f"emulator (supported: {', '.join(sorted(SUPPORTED_CRITERIA))})",
        )


def _matches(record: SearchRecord, params: dict[str, Any]) -> bool:
    time_range = params["TimeRange"]
    at = TIMESTAMPS[time_range["Type"]](record)
    if at is None or not time_range["StartTime"] <= at <= time_range["EndTime"]:
        return False
    criteria = params.get("SearchCriteria") or {}
    wanted: dict[str, str | None] = {
        "QueueIds": record.queue_id,
        "AgentIds": record.agent_id,
        "Channels": CHANNEL,
        "InitiationMethods": INITIATION_METHOD,
    }
    for name, value in wanted.items():
        allowed = criteria.get(name)
        if allowed and value not in {bare_id(a) for a in allowed}:
            return False
    return True


def _sorted(records: list[SearchRecord], field: str, descending: bool) -> list[SearchRecord]:
    key = SORT_KEYS[field]
    # Ties (and contacts without the field) keep initiation order, then id, in either direction.
    records = sorted(records, key=lambda r: (r.initiated_at, r.contact_id))
    present = [r for r in records if key(r) is not None]
    missing = [r for r in records if key(r) is None]
    # One field's values are all floats or all strings, so they compare.
    present.sort(key=lambda r: cast(Any, key(r)), reverse=descending)
    return present + missing
