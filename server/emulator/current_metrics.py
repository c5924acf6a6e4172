"""GetCurrentMetricData answered from the queue model: figures, groupings, sorting, pages.

No I/O: `current_metric_results` takes the validated request and the model and returns the
response body (timestamps as epoch seconds, as botocore parses rest-json).

What each metric means here (the model has one channel, VOICE, and agents that serve one
queue each and are always online and available when idle):

| metric | value |
|---|---|
| CONTACTS_IN_QUEUE | contacts waiting in the queue |
| OLDEST_CONTACT_AGE | seconds since the oldest waiting contact was enqueued (0 if none), by
  its real enqueue time: a routing-age adjustment does not change it |
| AGENTS_ONLINE, AGENTS_STAFFED | the queue's agents |
| AGENTS_AVAILABLE, SLOTS_AVAILABLE | agents not on a contact |
| AGENTS_ON_CALL, AGENTS_ON_CONTACT, SLOTS_ACTIVE | agents on a contact |
| AGENTS_NON_PRODUCTIVE, AGENTS_AFTER_CONTACT_WORK, AGENTS_ERROR, CONTACTS_SCHEDULED | 0 |

Connect's documented quirk is kept: without a grouping, OLDEST_CONTACT_AGE still says
`SECONDS` but its value is in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.emulator.model import Queue, QueueModel
from server.emulator.paging import page
from server.emulator.wire import AwsError
from server.ids import bare_id, queue_arn

UNITS = {
    "AGENTS_ONLINE": "COUNT",
    "AGENTS_AVAILABLE": "COUNT",
    "AGENTS_ON_CALL": "COUNT",
    "AGENTS_ON_CONTACT": "COUNT",
    "AGENTS_NON_PRODUCTIVE": "COUNT",
    "AGENTS_AFTER_CONTACT_WORK": "COUNT",
    "AGENTS_ERROR": "COUNT",
    "AGENTS_STAFFED": "COUNT",
    "CONTACTS_IN_QUEUE": "COUNT",
    "OLDEST_CONTACT_AGE": "SECONDS",
    "CONTACTS_SCHEDULED": "COUNT",
    "SLOTS_ACTIVE": "COUNT",
    "SLOTS_AVAILABLE": "COUNT",
}
SUPPORTED_GROUPINGS = ("QUEUE", "CHANNEL")
CHANNEL = "VOICE"  # the only channel the model has
DEFAULT_MAX_RESULTS = 100
DEFAULT_SORT = ("AGENTS_ONLINE", "DESCENDING")  # Connect's documented default order


@dataclass(frozen=True)
class _Group:
    queues: tuple[Queue, ...]
    dimensions: dict[str, Any]


def queue_figures(queue: Queue, now: float, voice: bool = True) -> dict[str, float]:
    """Every metric of one queue at simulated time `now`; `voice=False` counts no contacts."""
    waiting = queue.waiting_in_order() if voice else []
    oldest = min((c.enqueued_at for c in waiting), default=now)
    busy, agents = queue.busy, queue.spec.agents
    return {
        "AGENTS_ONLINE": agents,
        "AGENTS_AVAILABLE": queue.free,
        "AGENTS_ON_CALL": busy,
        "AGENTS_ON_CONTACT": busy,
        "AGENTS_NON_PRODUCTIVE": 0,
        "AGENTS_AFTER_CONTACT_WORK": 0,
        "AGENTS_ERROR": 0,
        "AGENTS_STAFFED": agents,
        "CONTACTS_IN_QUEUE": len(waiting),
        "OLDEST_CONTACT_AGE": max(0.0, now - oldest),
        "CONTACTS_SCHEDULED": 0,
        "SLOTS_ACTIVE": busy,
        "SLOTS_AVAILABLE": queue.free,
    }


def _merge(figures: list[dict[str, float]]) -> dict[str, float]:
    merged = {name: float(sum(f[name] for f in figures)) for name in UNITS}
    merged["OLDEST_CONTACT_AGE"] = max((f["OLDEST_CONTACT_AGE"] for f in figures), default=0.0)
    return merged


def current_metric_results(
    body: dict[str, Any], model: QueueModel, instance_id: str, region: str, account: str
) -> dict[str, Any]:
    """The GetCurrentMetricData response for a request already checked against botocore's model.

    Raises:
        AwsError: a combination Connect refuses or the emulator does not model.
    """
    filters = body["Filters"]
    if filters.get("RoutingProfiles") or filters.get("RoutingStepExpressions"):
        raise AwsError(
            "InvalidRequestException", "The emulator filters by Queues and Channels only"
        )
    if not filters.get("Queues"):
        raise AwsError("InvalidParameterException", "Filters must include Queues")
    groupings = list(body.get("Groupings") or [])
    unsupported = [g for g in groupings if g not in SUPPORTED_GROUPINGS]
    if unsupported or len(set(groupings)) != len(groupings):
        raise AwsError(
            "InvalidRequestException", "The emulator groups by QUEUE and/or CHANNEL, once each"
        )
    metrics = []
    for metric in body["CurrentMetrics"]:
        name, unit = metric.get("Name"), metric.get("Unit")
        if name is None:
            raise AwsError("InvalidParameterException", "Every metric needs a Name")
        if unit is not None and unit != UNITS[name]:
            raise AwsError(
                "InvalidParameterException", f"The unit of {name} is {UNITS[name]}, not {unit}"
            )
        metrics.append(name)
    if not metrics:
        raise AwsError("InvalidParameterException", "CurrentMetrics must not be empty")
    channels = filters.get("Channels")
    voice = not channels or CHANNEL in channels

    # Unknown queue ids are left out (no data for them), like queues of another instance.
    instance_queues = {q.queue_id: q for q in model.instances[instance_id]}
    wanted: list[Queue] = []
    for reference in filters["Queues"]:
        queue = instance_queues.get(bare_id(reference))
        if queue is not None and queue not in wanted:
            wanted.append(queue)
    groups = _groups(wanted, groupings, voice, region, account)

    now = model.now
    rows = []
    for group in groups:
        figures = _merge([queue_figures(q, now, voice) for q in group.queues])
        if not groupings:
            figures["OLDEST_CONTACT_AGE"] *= 1000.0  # Connect's documented quirk
        if "QUEUE" in groupings and _no_data(figures):
            continue  # a queue with nothing waiting and nobody staffed has no data
        rows.append((group, figures))

    sort_metric, order = DEFAULT_SORT
    for criterion in body.get("SortCriteria") or ():
        sort_metric = criterion.get("SortByMetric", sort_metric)
        order = criterion.get("SortOrder", order)
    if sort_metric in ("SLOTS_ACTIVE", "SLOTS_AVAILABLE"):
        raise AwsError("InvalidParameterException", f"Cannot sort by {sort_metric}")
    # Stable: equal values keep the order of the Queues filter.
    rows.sort(key=lambda row: row[1][sort_metric], reverse=order == "DESCENDING")

    rows_here, token = page(rows, body, DEFAULT_MAX_RESULTS)
    response: dict[str, Any] = {
        "MetricResults": [
            {
                "Dimensions": group.dimensions,
                "Collections": [
                    {"Metric": {"Name": name, "Unit": UNITS[name]}, "Value": figures[name]}
                    for name in metrics
                ],
            }
            for group, figures in rows_here
        ],
        "DataSnapshotTime": now,
        "ApproximateTotalCount": len(rows),
    }
    if token is not None:
        response["NextToken"] = token
    return response


def _groups(
    queues: list[Queue], groupings: list[str], voice: bool, region: str, account: str
) -> list[_Group]:
    channel = {"Channel": CHANNEL} if "CHANNEL" in groupings else {}
    if "CHANNEL" in groupings and not voice:
        return []  # grouped by channel, with no channel that has data
    if "QUEUE" not in groupings:
        return [_Group(tuple(queues), channel)] if queues else []
    return [
        _Group(
            (q,),
            {
                "Queue": {
                    "Id": q.queue_id,
                    "Arn": queue_arn(region, account, q.instance_id, q.queue_id),
                },
                **channel,
            },
        )
        for q in queues
    ]


def _no_data(figures: dict[str, float]) -> bool:
    return not figures["CONTACTS_IN_QUEUE"] and not figures["AGENTS_STAFFED"]
