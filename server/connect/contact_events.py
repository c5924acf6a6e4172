"""Amazon Connect contact events as EventBridge delivers them: parsed into one small record.

No I/O. What arrives is irregular, and this module takes it as it comes (shared/connect facts):
the documentation's own samples mix camelCase and PascalCase keys (`queueInfo`/`QueueInfo`,
`instanceArn`/`instanceARN`), a real QUEUED event may lack `enqueueTimestamp`, new event types
and fields keep being added. So keys are matched whatever their case (and `-`/`_`), unknown
types are kept (upper-cased as given) and unknown fields ignored, and an optional field that is
missing or malformed becomes `None`. Only what can never be taken is refused, with
`EnvelopeError`: not an envelope, no event id, no contact, no instance, no time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from server.ids import bare_id, is_valid_id, is_valid_queue_id

SOURCE = "aws.connect"
DETAIL_TYPE = "Amazon Connect Contact Event"

QUEUED = "QUEUED"
CONNECTED_TO_AGENT = "CONNECTED_TO_AGENT"
DISCONNECTED = "DISCONNECTED"

MAX_TEXT = 256  # longest id, type or name taken; EventBridge ids and Connect ids are far shorter
_INSTANCE_IN_ARN = re.compile(r":instance/([0-9A-Fa-f-]{36})(?:/|$)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MS_AFTER = 1e11  # a number this large is epoch milliseconds (year 5138 in seconds)


class EnvelopeError(ValueError):
    """An envelope that can never be taken, whatever is retried: the message says why."""


class ForeignEnvelope(EnvelopeError):
    """A well-formed EventBridge envelope that is not an Amazon Connect contact event (another
    source or detail-type): nothing to take, nothing wrong either."""


@dataclass(frozen=True, slots=True)
class ConnectContactEvent:
    """One contact event, ids bare (no ARN prefix), times in epoch seconds.

    `at` is the most specific time the event carries: `disconnectTimestamp` for DISCONNECTED,
    `agentInfo.connectedToAgentTimestamp` for CONNECTED_TO_AGENT, `queueInfo.enqueueTimestamp`
    for QUEUED, else the envelope's `time`.
    """

    event_id: str
    kind: str
    instance_id: str
    contact_id: str
    queue_id: str | None
    enqueued_at: float | None
    at: float
    initiation_method: str | None
    initial_contact_id: str | None
    previous_contact_id: str | None
    channel: str | None

    def to_json(self) -> bytes:
        """The compact form the contact-event log stores."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ConnectContactEvent:
        """Read back what `to_json` wrote.

        Raises:
            ValueError: not what `to_json` writes (a corrupt or foreign log entry).
        """
        try:
            fields = json.loads(data)
            event = cls(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a stored contact event: {exc}") from None
        for name in ("event_id", "kind", "instance_id", "contact_id"):
            if not isinstance(getattr(event, name), str):
                raise ValueError(f"not a stored contact event: {name} is not a string")
        if isinstance(event.at, bool) or not isinstance(event.at, int | float):
            raise ValueError("not a stored contact event: at is not a number")
        return event


def parse_envelope(obj: object) -> ConnectContactEvent:
    """The contact event in one EventBridge envelope (a decoded JSON value).

    Raises:
        ForeignEnvelope: an envelope of another source or detail-type (to be ignored).
        EnvelopeError: anything that can never be taken; the message says what is wrong.
    """
    if not isinstance(obj, dict):
        raise EnvelopeError(f"an envelope is a JSON object, not {_json_kind(obj)}")
    envelope = _members(obj)
    source, detail_type = envelope.get("source"), envelope.get("detailtype")
    if not isinstance(source, str) or not isinstance(detail_type, str):
        raise EnvelopeError("not an EventBridge envelope: `source` and `detail-type` are strings")
    if source.strip().lower() != SOURCE or detail_type.strip().lower() != DETAIL_TYPE.lower():
        raise ForeignEnvelope(f"not an Amazon Connect contact event: {source!r}/{detail_type!r}")
    event_id = _text(envelope.get("id"))
    if event_id is None:
        raise EnvelopeError("the envelope has no `id` (a string of 1 to 256 characters)")
    raw_detail = envelope.get("detail")
    if not isinstance(raw_detail, dict):
        raise EnvelopeError("the envelope has no `detail` object")
    detail = _members(raw_detail)
    kind = _text(detail.get("eventtype"))
    if kind is None:
        raise EnvelopeError("`detail.eventType` is missing")
    kind = kind.upper()
    contact_id = _connect_id(detail.get("contactid"))
    if contact_id is None:
        raise EnvelopeError("`detail.contactId` is missing or not a Connect contact id")
    instance_id = _instance_id(detail, envelope.get("resources"))
    if instance_id is None:
        raise EnvelopeError("no instance: neither `detail.instanceArn` nor `resources` names one")
    queue = _members_of(detail.get("queueinfo"))
    agent = _members_of(detail.get("agentinfo"))
    enqueued_at = _epoch(queue.get("enqueuetimestamp"))
    specific = {
        DISCONNECTED: _epoch(detail.get("disconnecttimestamp")),
        CONNECTED_TO_AGENT: _epoch(agent.get("connectedtoagenttimestamp")),
        QUEUED: enqueued_at,
    }.get(kind)
    at = specific if specific is not None else _epoch(envelope.get("time"))
    if at is None:
        raise EnvelopeError("the event has no time: neither `time` nor its own timestamp")
    return ConnectContactEvent(
        event_id=event_id,
        kind=kind,
        instance_id=instance_id,
        contact_id=contact_id,
        queue_id=_queue_id(queue),
        enqueued_at=enqueued_at,
        at=at,
        initiation_method=_upper(detail.get("initiationmethod")),
        initial_contact_id=_connect_id(detail.get("initialcontactid")),
        previous_contact_id=_connect_id(detail.get("previouscontactid")),
        channel=_upper(detail.get("channel")),
    )


# -- helpers ---------------------------------------------------------------------------------


def _folded(key: str) -> str:
    return key.replace("-", "").replace("_", "").lower()


def _members(obj: Mapping[Any, Any]) -> dict[str, Any]:
    """One level of an object with its keys folded (`QueueInfo`, `queue_info` -> `queueinfo`).

    Where two keys fold alike (`contactId` and `ContactId`), the first that is not null wins.
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(key, str) and (out.get(_folded(key)) is None):
            out[_folded(key)] = value
    return out


def _members_of(value: object) -> dict[str, Any]:
    return _members(value) if isinstance(value, dict) else {}


def _json_kind(value: object) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _text(value: object) -> str | None:
    """A non-empty string of at most MAX_TEXT characters without control characters."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not 0 < len(value) <= MAX_TEXT or _CONTROL.search(value):
        return None
    return value


def _upper(value: object) -> str | None:
    text = _text(value)
    return None if text is None else text.upper()


def _connect_id(value: object) -> str | None:
    """A contact or instance id, bare: from a UUID or an ARN that ends in one."""
    text = _text(value)
    if text is None:
        return None
    bare = bare_id(text)
    return bare if is_valid_id(bare) else None


def _instance_id(detail: dict[str, Any], resources: object) -> str | None:
    for key in ("instancearn", "instanceid"):
        found = _connect_id(detail.get(key))
        if found is not None:
            return found
    if isinstance(resources, list):
        for resource in resources:
            text = _text(resource)
            match = _INSTANCE_IN_ARN.search(text) if text is not None else None
            if match is not None and is_valid_id(match.group(1)):
                return match.group(1)
    return None


def _queue_id(queue: dict[str, Any]) -> str | None:
    for key in ("queuearn", "arn", "queueid", "id"):
        text = _text(queue.get(key))
        bare = None if text is None else bare_id(text)
        # The queue id's own rule (what a client may subscribe to), and no blanks: an ARN's
        # last part is an id, not a name.
        if is_valid_queue_id(bare) and not any(c.isspace() for c in bare):
            return bare
    return None


def _epoch(value: object) -> float | None:
    """Epoch seconds from an ISO-8601 string (naive means UTC) or a number (seconds, or
    milliseconds when implausibly large for seconds); `None` when it is neither."""
    try:
        if isinstance(value, str) and 0 < len(value) <= 64:
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
            if seconds >= _MS_AFTER:
                seconds /= 1000.0
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:  # up to year 9999
        return None
    return seconds
