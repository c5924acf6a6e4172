"""The one event schema: the same JSON on Redis, over WebSocket and from HTTP.

A contact's state:

    {"type": "snapshot"|"update"|"ended", "instance", "contact", "queue", "position",
     "ewt", "at", "stale", "reason", "enqueued", "basis", "seq"}

A queue's figures (GetCurrentMetricData), published on the queue's channel:

    {"type": "queue", "instance", "queue", "name", "waiting", "oldest", "agentsAvailable",
     "at", "stale", "seq"}

`seq` is always the last member. The bus assigns it atomically where the state is stored (a
Redis counter), so an event is encoded once as everything-but-seq (`encode_head`) and the store
appends the number: the bytes published are then the bytes every subscriber receives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

EventType = Literal["snapshot", "update", "ended"]
EVENT_TYPES: frozenset[str] = frozenset({"snapshot", "update", "ended"})

# Why a contact stopped being tracked.
REASON_LEFT_QUEUE = "left_queue"
REASON_NOT_FOUND = "not_found"
REASON_INVALID = "invalid"
REASON_UNTRACKED = "untracked"
# From contact events, which say how the wait ended (a poll only sees that it did).
REASON_CONNECTED = "connected_to_agent"
REASON_DISCONNECTED = "disconnected"

# How the position and wait of an event were learnt.
Basis = Literal["read", "inferred"]
BASIS_READ: Basis = "read"  # this contact's own GetContactMetrics answer
BASIS_INFERRED: Basis = "inferred"  # from contact events or other contacts' reads
BASES: frozenset[str] = frozenset({BASIS_READ, BASIS_INFERRED})


QUEUE_FIGURES_TYPE = "queue"


class EventDecodeError(ValueError):
    """Bytes that are not a valid queuecast event."""


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """The state of one contact as published; every event carries the full state."""

    type: EventType
    instance: str
    contact: str
    queue: str | None
    position: int | None
    ewt: int | None
    at: str
    stale: bool
    reason: str | None
    seq: int
    enqueued: str | None = None  # when the contact entered its queue, if known
    basis: Basis | None = None  # how position and ewt were learnt (None: ended, or unknown)

    @property
    def ended(self) -> bool:
        return self.type == "ended"

    def as_type(self, type_: EventType) -> ContactEvent:
        return self if self.type == type_ else replace(self, type=type_)

    def encode(self) -> bytes:
        return (
            encode_head(
                self.type,
                instance=self.instance,
                contact=self.contact,
                queue=self.queue,
                position=self.position,
                ewt=self.ewt,
                at=self.at,
                stale=self.stale,
                reason=self.reason,
                enqueued=self.enqueued,
                basis=self.basis,
            )
            + str(self.seq).encode()
            + b"}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "instance": self.instance,
            "contact": self.contact,
            "queue": self.queue,
            "position": self.position,
            "ewt": self.ewt,
            "at": self.at,
            "stale": self.stale,
            "reason": self.reason,
            "enqueued": self.enqueued,
            "basis": self.basis,
            "seq": self.seq,
        }


def encode_head(
    type_: EventType,
    *,
    instance: str,
    contact: str,
    queue: str | None,
    position: int | None,
    ewt: int | None,
    at: str,
    stale: bool,
    reason: str | None,
    enqueued: str | None = None,
    basis: Basis | None = None,
) -> bytes:
    """Encode an event up to and including `"seq":`; the store appends the number and `}`."""
    body = json.dumps(
        {
            "type": type_,
            "instance": instance,
            "contact": contact,
            "queue": queue,
            "position": position,
            "ewt": ewt,
            "at": at,
            "stale": stale,
            "reason": reason,
            "enqueued": enqueued,
            "basis": basis,
        },
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return body[:-1].encode() + b',"seq":'


@dataclass(frozen=True, slots=True)
class QueueFiguresEvent:
    """A queue's figures as Amazon Connect reports them (GetCurrentMetricData), and its name.

    `waiting` is CONTACTS_IN_QUEUE, `oldest` OLDEST_CONTACT_AGE in whole seconds,
    `agents_available` AGENTS_AVAILABLE; all of the read at `at`. `stale`: no read has
    succeeded for a while, these are the last known figures. `seq` rises with every event of
    the queue (it is at least the publishing time in milliseconds, so that it never goes back,
    whichever replica publishes and even after Redis restarted empty).
    """

    instance: str
    queue: str
    name: str | None
    waiting: int
    oldest: int
    agents_available: int
    at: str
    stale: bool
    seq: int

    @property
    def type(self) -> Literal["queue"]:
        return "queue"

    def encode(self) -> bytes:
        return (
            encode_queue_head(
                instance=self.instance,
                queue=self.queue,
                name=self.name,
                waiting=self.waiting,
                oldest=self.oldest,
                agents_available=self.agents_available,
                at=self.at,
                stale=self.stale,
            )
            + str(self.seq).encode()
            + b"}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": QUEUE_FIGURES_TYPE,
            "instance": self.instance,
            "queue": self.queue,
            "name": self.name,
            "waiting": self.waiting,
            "oldest": self.oldest,
            "agentsAvailable": self.agents_available,
            "at": self.at,
            "stale": self.stale,
            "seq": self.seq,
        }


def encode_queue_head(
    *,
    instance: str,
    queue: str,
    name: str | None,
    waiting: int,
    oldest: int,
    agents_available: int,
    at: str,
    stale: bool,
) -> bytes:
    """Encode a queue's figures up to and including `"seq":` (the store appends the rest)."""
    body = json.dumps(
        {
            "type": QUEUE_FIGURES_TYPE,
            "instance": instance,
            "queue": queue,
            "name": name,
            "waiting": waiting,
            "oldest": oldest,
            "agentsAvailable": agents_available,
            "at": at,
            "stale": stale,
        },
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return body[:-1].encode() + b',"seq":'


def as_snapshot(event: ContactEvent) -> ContactEvent:
    """`event` as shown to a client that has not seen this contact's state yet.

    A stored state or an update is shown as a `snapshot`; an `ended` event stays `ended` (a
    tombstone tells the client the contact is gone). Only `type` changes: seq and values stay.
    """
    return event if event.ended else event.as_type("snapshot")


def waiting_in(queue: str, states: Iterable[ContactEvent | None]) -> list[ContactEvent]:
    """The states of contacts still waiting in `queue`: stored, not ended, in that queue.

    A queue's member set may lag behind a contact's own state (it moved or ended since), so
    readers of a queue check each state against the queue it names.
    """
    return [s for s in states if s is not None and not s.ended and s.queue == queue]


def _opt_int(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventDecodeError(f"{key} must be an integer or null")
    return value


def _opt_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None or isinstance(value, str):
        return value
    raise EventDecodeError(f"{key} must be a string or null")


def _load(data: bytes | str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: deeply nested JSON; it must not escape and kill the bus reader.
        raise EventDecodeError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise EventDecodeError("an event is a JSON object")
    return payload


def decode_event(data: bytes | str) -> ContactEvent:
    """Parse and validate a contact's event.

    Raises:
        EventDecodeError: the data is not JSON or not of the schema.
    """
    return _contact_event(_load(data))


def decode_message(data: bytes | str) -> ContactEvent | QueueFiguresEvent:
    """Parse and validate anything published on a channel: a contact's event, or (on a
    queue's channel) the queue's figures.

    Raises:
        EventDecodeError: the data is not JSON or not of the schema.
    """
    payload = _load(data)
    if payload.get("type") == QUEUE_FIGURES_TYPE:
        return _queue_figures(payload)
    return _contact_event(payload)


def _seq(payload: dict[str, Any]) -> int:
    seq = payload.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise EventDecodeError("seq must be a positive integer")
    return seq


def _contact_event(payload: dict[str, Any]) -> ContactEvent:
    type_ = payload.get("type")
    if type_ not in EVENT_TYPES:
        raise EventDecodeError(f"unknown event type {type_!r}")
    instance, contact, at = payload.get("instance"), payload.get("contact"), payload.get("at")
    if not isinstance(instance, str) or not isinstance(contact, str) or not isinstance(at, str):
        raise EventDecodeError("instance, contact and at must be strings")
    seq = _seq(payload)
    stale = payload.get("stale", False)
    if not isinstance(stale, bool):
        raise EventDecodeError("stale must be a boolean")
    basis = payload.get("basis")
    if basis is not None and basis not in BASES:
        raise EventDecodeError(f"unknown basis {basis!r}")
    return ContactEvent(
        type=cast(EventType, type_),
        instance=instance,
        contact=contact,
        queue=_opt_str(payload, "queue"),
        position=_opt_int(payload, "position"),
        ewt=_opt_int(payload, "ewt"),
        at=at,
        stale=stale,
        reason=_opt_str(payload, "reason"),
        seq=seq,
        enqueued=_opt_str(payload, "enqueued"),
        basis=cast("Basis | None", basis),
    )


def _count(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EventDecodeError(f"{key} must be a non-negative integer")
    return value


def _queue_figures(payload: dict[str, Any]) -> QueueFiguresEvent:
    instance, queue, at = payload.get("instance"), payload.get("queue"), payload.get("at")
    if not isinstance(instance, str) or not isinstance(queue, str) or not isinstance(at, str):
        raise EventDecodeError("instance, queue and at must be strings")
    stale = payload.get("stale", False)
    if not isinstance(stale, bool):
        raise EventDecodeError("stale must be a boolean")
    return QueueFiguresEvent(
        instance=instance,
        queue=queue,
        name=_opt_str(payload, "name"),
        waiting=_count(payload, "waiting"),
        oldest=_count(payload, "oldest"),
        agents_available=_count(payload, "agentsAvailable"),
        at=at,
        stale=stale,
        seq=_seq(payload),
    )


def seq_of(data: bytes) -> int:
    """The seq of an encoded event, read from its tail (seq is always the last member)."""
    return int(data[data.rindex(b":") + 1 : -1])


def utc_iso(timestamp: float) -> str:
    """ISO-8601 UTC with millisecond precision and a `Z`, as browsers parse it."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
