"""The event schema: encoding, the seq-appending store contract, strict decoding."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.events import (
    ContactEvent,
    EventDecodeError,
    QueueFiguresEvent,
    as_snapshot,
    decode_event,
    decode_message,
    encode_head,
    seq_of,
    utc_iso,
    waiting_in,
)
from tests.unit._factories import make_event

FIELDS = [
    "type",
    "instance",
    "contact",
    "queue",
    "position",
    "ewt",
    "at",
    "stale",
    "reason",
    "enqueued",
    "basis",
]

optional_int = st.none() | st.integers(min_value=0, max_value=2**53)
optional_text = st.none() | st.text()

events = st.builds(
    ContactEvent,
    type=st.sampled_from(["snapshot", "update", "ended"]),
    instance=st.text(),
    contact=st.text(),
    queue=optional_text,
    position=optional_int,
    ewt=optional_int,
    at=st.text(),
    stale=st.booleans(),
    reason=optional_text,
    seq=st.integers(min_value=1, max_value=2**63),
    enqueued=optional_text,
    basis=st.sampled_from([None, "read", "inferred"]),
)


def valid_payload(**changes) -> dict:
    return {**make_event().to_dict(), **changes}


@given(events)
def test_encode_decode_round_trip(event: ContactEvent) -> None:
    assert decode_event(event.encode()) == event
    assert decode_event(event.encode().decode()) == event


@given(events)
def test_encode_is_head_plus_seq(event: ContactEvent) -> None:
    head = encode_head(event.type, **{name: getattr(event, name) for name in FIELDS[1:]})
    assert head + str(event.seq).encode() + b"}" == event.encode()


@given(events)
def test_seq_is_the_last_member_and_to_dict_matches(event: ContactEvent) -> None:
    payload = json.loads(event.encode())
    assert list(payload) == [*FIELDS, "seq"]
    assert payload == event.to_dict()


@given(events)
def test_encoding_is_compact_ascii(event: ContactEvent) -> None:
    data = event.encode()
    assert data.isascii()
    assert data.startswith(b'{"type":')


def test_encode_head_ends_with_the_seq_key() -> None:
    head = encode_head(
        "snapshot",
        instance="i",
        contact="c",
        queue=None,
        position=None,
        ewt=None,
        at="t",
        stale=True,
        reason=None,
    )
    assert head.endswith(b',"seq":')
    assert decode_event(head + b"1}").type == "snapshot"


def test_as_type_and_ended() -> None:
    event = make_event()
    assert event.as_type("update") is event
    snapshot = event.as_type("snapshot")
    assert snapshot.type == "snapshot"
    assert snapshot.seq == event.seq
    assert not event.ended
    assert make_event(type="ended", reason="left_queue").ended


@pytest.mark.parametrize("type_", ["snapshot", "update"])
def test_as_snapshot_shows_a_live_state_as_a_snapshot(type_) -> None:
    event = make_event(type=type_, stale=True, seq=41)
    shown = as_snapshot(event)
    assert shown.type == "snapshot"
    assert shown.to_dict() == {**event.to_dict(), "type": "snapshot"}


def test_as_snapshot_keeps_an_end() -> None:
    tombstone = make_event(type="ended", position=None, ewt=None, reason="left_queue")
    assert as_snapshot(tombstone) is tombstone


def test_waiting_in_keeps_live_states_of_that_queue_in_order() -> None:
    first, second = make_event(contact="c-1"), make_event(contact="c-2", type="snapshot")
    states = [
        None,
        first,
        make_event(contact="c-3", type="ended"),
        make_event(contact="c-4", queue="q-2"),
        make_event(contact="c-5", queue=None),
        second,
    ]
    assert waiting_in("q-1", states) == [first, second]
    assert waiting_in("q-9", states) == []


def test_stale_defaults_to_false_when_missing() -> None:
    payload = valid_payload()
    del payload["stale"]
    assert decode_event(json.dumps(payload)).stale is False


def test_optional_members_may_be_absent() -> None:
    payload = valid_payload()
    for name in ("queue", "position", "ewt", "reason"):
        del payload[name]
    event = decode_event(json.dumps(payload))
    assert (event.queue, event.position, event.ewt, event.reason) == (None, None, None, None)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b'{"type":',
        b"\xff\xfe\x00",  # not UTF-8
        "[1, 2]",
        "null",
        "42",
        '"update"',
        "[" * 100_000,  # deep nesting: json raises RecursionError, which must not escape
        '{"a":' * 100_000,
    ],
    ids=lambda data: repr(data[:12]),
)
def test_decode_rejects_non_objects(data) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "bogus"},
        {"type": None},
        {"type": 1},
        {"instance": None},
        {"instance": 5},
        {"contact": ["c"]},
        {"at": 1714564800},
        {"seq": 0},
        {"seq": -1},
        {"seq": True},
        {"seq": 1.0},
        {"seq": "7"},
        {"seq": None},
        {"stale": "false"},
        {"stale": 0},
        {"stale": None},
        {"position": True},
        {"position": 1.5},
        {"position": "3"},
        {"ewt": False},
        {"ewt": 2.0},
        {"queue": 5},
        {"reason": {"why": "x"}},
    ],
    ids=repr,
)
def test_decode_rejects_wrong_types(changes) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(json.dumps(valid_payload(**changes)))


@pytest.mark.parametrize("name", ["type", "instance", "contact", "at", "seq"])
def test_decode_rejects_missing_required_member(name) -> None:
    payload = valid_payload()
    del payload[name]
    with pytest.raises(EventDecodeError):
        decode_event(json.dumps(payload))


@given(st.binary())
def test_decode_of_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(EventDecodeError):
        decode_event(data)


ISO_MILLIS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_utc_iso_format() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1714564800.1239) == "2024-05-01T12:00:00.123Z"


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_utc_iso_parses_back_to_the_millisecond(timestamp: float) -> None:
    text = utc_iso(timestamp)
    assert ISO_MILLIS_Z.fullmatch(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    expected = datetime.fromtimestamp(timestamp, tz=UTC).replace(
        microsecond=datetime.fromtimestamp(timestamp, tz=UTC).microsecond // 1000 * 1000
    )
    assert parsed == expected


# -- a queue's figures ---------------------------------------------------------------------

FIGURES = QueueFiguresEvent(
    instance="i-1",
    queue="q-1",
    name="Sales",
    waiting=4,
    oldest=95,
    agents_available=2,
    at="2024-05-01T12:00:00.000Z",
    stale=False,
    seq=1_714_564_800_123,
)


def test_queue_figures_encode_as_the_protocol_says_and_decode_back() -> None:
    data = FIGURES.encode()
    assert json.loads(data) == {
        "type": "queue",
        "instance": "i-1",
        "queue": "q-1",
        "name": "Sales",
        "waiting": 4,
        "oldest": 95,
        "agentsAvailable": 2,
        "at": "2024-05-01T12:00:00.000Z",
        "stale": False,
        "seq": 1_714_564_800_123,
    }
    assert data.endswith(b',"seq":1714564800123}')
    assert FIGURES.to_dict() == json.loads(data)
    assert decode_message(data) == FIGURES
    assert seq_of(data) == FIGURES.seq


def test_decode_message_tells_contacts_from_queues() -> None:
    event = make_event()
    assert decode_message(event.encode()) == event
    assert isinstance(decode_message(FIGURES.encode()), QueueFiguresEvent)
    # A contact's reader never takes a queue's figures for a contact's state.
    with pytest.raises(EventDecodeError):
        decode_event(FIGURES.encode())


@pytest.mark.parametrize(
    "changes",
    [
        {"queue": None},
        {"waiting": -1},
        {"waiting": "4"},
        {"oldest": 1.5},
        {"agentsAvailable": True},
        {"name": 3},
        {"stale": "no"},
        {"seq": 0},
        {"at": None},
    ],
    ids=repr,
)
def test_decode_rejects_bad_queue_figures(changes) -> None:
    payload = {**FIGURES.to_dict(), **changes}
    with pytest.raises(EventDecodeError):
        decode_message(json.dumps(payload))
