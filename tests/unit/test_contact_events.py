"""Parsing Amazon Connect contact events as EventBridge delivers them
(server/connect/contact_events.py), on samples in AWS's documented shapes
(tests/support/contact_events.py)."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.connect.contact_events import (
    DETAIL_TYPE,
    ConnectContactEvent,
    EnvelopeError,
    ForeignEnvelope,
    parse_envelope,
)
from tests.support.contact_events import (
    CONNECTED_SAMPLE,
    CONTACT,
    CONTACT_ARN,
    DATA_UPDATED_SAMPLE,
    DISCONNECTED_SAMPLE,
    INITIAL,
    INSTANCE,
    INSTANCE_ARN,
    QUEUE,
    QUEUED_CAPTURE,
)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_connected_sample_of_the_documentation() -> None:
    event = parse_envelope(CONNECTED_SAMPLE)
    assert event == ConnectContactEvent(
        event_id="abcabcab-abca-abca-abca-abcabcabcabc",
        kind="CONNECTED_TO_AGENT",
        instance_id=INSTANCE,
        contact_id=CONTACT,
        queue_id=QUEUE,
        enqueued_at=None,
        at=epoch("2021-05-01T18:43:48"),  # no connectedToAgentTimestamp: the envelope's time
        initiation_method="INBOUND",
        initial_contact_id=INITIAL,
        previous_contact_id=INITIAL,
        channel="VOICE",
    )


def test_disconnected_sample_takes_its_own_timestamps() -> None:
    event = parse_envelope(DISCONNECTED_SAMPLE)
    assert event.kind == "DISCONNECTED"
    assert event.at == epoch("2021-08-04T17:43:47.250")
    assert event.enqueued_at == epoch("2021-08-04T17:29:04")
    assert (event.instance_id, event.contact_id, event.queue_id) == (INSTANCE, CONTACT, QUEUE)
    assert event.previous_contact_id is None


def test_connected_with_agent_timestamp_takes_it() -> None:
    sample = copy.deepcopy(DISCONNECTED_SAMPLE)
    sample["detail"]["eventType"] = "CONNECTED_TO_AGENT"
    assert parse_envelope(sample).at == epoch("2021-08-04T17:29:09")


def test_queued_without_enqueue_timestamp_falls_back_to_the_envelope_time() -> None:
    event = parse_envelope(QUEUED_CAPTURE)
    assert event.kind == "QUEUED"
    assert event.enqueued_at is None
    assert event.at == epoch("2021-03-10T09:15:30")
    assert event.queue_id == QUEUE


def test_queued_with_enqueue_timestamp_takes_it() -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["detail"]["queueInfo"]["enqueueTimestamp"] = "2021-03-10T09:15:29.500Z"
    event = parse_envelope(sample)
    assert event.at == event.enqueued_at == epoch("2021-03-10T09:15:29.500")


def test_pascal_case_detail_reads_like_camel_case() -> None:
    event = parse_envelope(DATA_UPDATED_SAMPLE)
    assert event.kind == "CONTACT_DATA_UPDATED"
    assert event.instance_id == INSTANCE and event.queue_id == QUEUE
    assert event.enqueued_at == epoch("2023-10-30T21:04:59")
    assert event.at == epoch("2023-10-30T21:05:41")  # not one of the three: envelope time


def test_pascal_case_envelope_keys_too() -> None:
    sample = {
        "Version": "0",
        "Id": "id-1",
        "DetailType": "Amazon Connect Contact Event",
        "Source": "aws.connect",
        "Time": "2024-01-01T00:00:00Z",
        "Resources": [],
        "Detail": {"eventType": "QUEUED", "contactId": CONTACT, "instanceId": INSTANCE},
    }
    event = parse_envelope(sample)
    assert (event.event_id, event.kind, event.instance_id) == ("id-1", "QUEUED", INSTANCE)


def test_outbound_without_queue_info_has_no_queue() -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["detail"]["eventType"] = "INITIATED"
    sample["detail"]["initiationMethod"] = "OUTBOUND"
    del sample["detail"]["queueInfo"]
    event = parse_envelope(sample)
    assert (event.kind, event.queue_id, event.enqueued_at) == ("INITIATED", None, None)
    assert event.initiation_method == "OUTBOUND"


def test_transfer_keeps_initial_and_previous_contact() -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["detail"].update(
        eventType="INITIATED",
        initiationMethod="queue_transfer",
        initialContactId=f"{INSTANCE_ARN}/contact/{INITIAL}",  # an ARN: the bare id is kept
        previousContactId=INITIAL,
    )
    event = parse_envelope(sample)
    assert event.initiation_method == "QUEUE_TRANSFER"
    assert event.initial_contact_id == event.previous_contact_id == INITIAL


def test_unknown_event_types_and_fields_are_kept_not_refused() -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["detail"]["eventType"] = "something_new"
    sample["detail"]["brandNewField"] = {"nested": [1, 2, 3]}
    sample["brandNewEnvelopeField"] = True
    event = parse_envelope(sample)
    assert event.kind == "SOMETHING_NEW"
    assert event.contact_id == CONTACT


def test_instance_from_resources_when_detail_has_none() -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    del sample["detail"]["instanceArn"]
    sample["resources"] = ["contactArn", CONTACT_ARN]
    assert parse_envelope(sample).instance_id == INSTANCE


@pytest.mark.parametrize("queue", ["q" * 251, "a\u200bb", "a b", ""])
def test_a_queue_id_that_is_not_one_becomes_none(queue) -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["detail"]["queueInfo"] = {"queueId": queue}  # server/ids.py's rule: not a queue id
    assert parse_envelope(sample).queue_id is None


def test_malformed_optional_fields_become_none() -> None:
    sample = copy.deepcopy(DISCONNECTED_SAMPLE)
    detail = sample["detail"]
    detail["queueInfo"] = {"queueArn": 7, "enqueueTimestamp": "yesterday"}
    detail["agentInfo"] = "not an object"
    detail["channel"] = ["VOICE"]
    detail["initialContactId"] = "not-a-uuid"
    event = parse_envelope(sample)
    assert (event.queue_id, event.enqueued_at, event.channel) == (None, None, None)
    assert event.initial_contact_id is None
    assert event.at == epoch("2021-08-04T17:43:47.250")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00Z", epoch("2024-05-01T12:00:00")),
        ("2024-05-01T12:00:00.123Z", epoch("2024-05-01T12:00:00.123")),
        ("2024-05-01T14:00:00+02:00", epoch("2024-05-01T12:00:00")),
        ("2024-05-01T12:00:00", epoch("2024-05-01T12:00:00")),  # naive: UTC
        (1714564800, 1714564800.0),  # epoch seconds, as DescribeContact has them
        (1714564800.5, 1714564800.5),
        (1714564800123, 1714564800.123),  # epoch milliseconds
    ],
)
def test_timestamps_in_every_form(value: object, expected: float) -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["time"] = value
    assert parse_envelope(sample).at == pytest.approx(expected)


@pytest.mark.parametrize(
    ("source", "detail_type"),
    [
        ("aws.ec2", "EC2 Instance State-change Notification"),
        ("aws.connect", "Contact Lens Realtime Rules Matched"),
        ("custom.app", "Amazon Connect Contact Event"),
    ],
)
def test_other_sources_and_detail_types_are_foreign(source: str, detail_type: str) -> None:
    with pytest.raises(ForeignEnvelope, match="not an Amazon Connect contact event"):
        parse_envelope({"source": source, "detail-type": detail_type, "detail": {}})


def test_source_and_detail_type_compare_without_case() -> None:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    sample["source"], sample["detail-type"] = "AWS.Connect", "amazon connect contact event"
    assert parse_envelope(sample).kind == "QUEUED"


def _without(path: list[str]) -> dict[str, Any]:
    sample = copy.deepcopy(QUEUED_CAPTURE)
    target = sample
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return sample


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([QUEUED_CAPTURE], "JSON object, not an array"),
        ("QUEUED", "JSON object, not a string"),
        (None, "JSON object, not null"),
        (3, "JSON object, not a number"),
        ({"detail": {}}, "not an EventBridge envelope"),
        ({**QUEUED_CAPTURE, "source": 1}, "not an EventBridge envelope"),
        (_without(["id"]), "no `id`"),
        ({**QUEUED_CAPTURE, "id": ""}, "no `id`"),
        ({**QUEUED_CAPTURE, "id": "x" * 257}, "no `id`"),
        ({**QUEUED_CAPTURE, "id": "a\nb"}, "no `id`"),
        (_without(["detail"]), "no `detail` object"),
        ({**QUEUED_CAPTURE, "detail": "QUEUED"}, "no `detail` object"),
        (_without(["detail", "eventType"]), "eventType` is missing"),
        (_without(["detail", "contactId"]), "contactId` is missing"),
        (
            {**QUEUED_CAPTURE, "detail": {**QUEUED_CAPTURE["detail"], "contactId": "c-1"}},
            "not a Connect contact id",
        ),
        (
            {**_without(["detail", "instanceArn"]), "resources": ["instanceArn"]},
            "no instance",
        ),
        ({**_without(["time"])}, "has no time"),
        ({**QUEUED_CAPTURE, "time": "soon"}, "has no time"),
        ({**QUEUED_CAPTURE, "time": float("nan")}, "has no time"),
        ({**QUEUED_CAPTURE, "time": True}, "has no time"),
        ({**QUEUED_CAPTURE, "time": 10**400}, "has no time"),  # beyond a float
        ({**QUEUED_CAPTURE, "time": -1}, "has no time"),
        ({**QUEUED_CAPTURE, "time": "99999-01-01T00:00:00"}, "has no time"),
    ],
)
def test_what_can_never_be_taken_says_why(obj: object, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message) as caught:
        parse_envelope(obj)
    assert not isinstance(caught.value, ForeignEnvelope)


def test_json_round_trip() -> None:
    for sample in (CONNECTED_SAMPLE, DISCONNECTED_SAMPLE, QUEUED_CAPTURE, DATA_UPDATED_SAMPLE):
        event = parse_envelope(sample)
        stored = event.to_json()
        assert ConnectContactEvent.from_json(stored) == event
        assert ConnectContactEvent.from_json(stored.decode()) == event


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"event_id": "x"}',
        json.dumps({**json.loads(parse_envelope(QUEUED_CAPTURE).to_json()), "extra": 1}),
        json.dumps({**json.loads(parse_envelope(QUEUED_CAPTURE).to_json()), "contact_id": 5}),
        json.dumps({**json.loads(parse_envelope(QUEUED_CAPTURE).to_json()), "at": "now"}),
    ],
)
def test_from_json_refuses_what_to_json_never_writes(data: bytes | str) -> None:
    with pytest.raises(ValueError, match="not a stored contact event"):
        ConnectContactEvent.from_json(data)


# -- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["aws.connect", DETAIL_TYPE, CONTACT, INSTANCE_ARN, "QUEUED"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    *("id", "source", "detail-type", "detail", "time", "resources", "eventType"),
                    *("contactId", "instanceArn", "queueInfo", "agentInfo", "enqueueTimestamp"),
                ]
            )
            | st.text(max_size=12),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_never_raises_anything_but_envelope_error(obj: object) -> None:
    with contextlib.suppress(EnvelopeError):
        parse_envelope(obj)


def _mutations(sample: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A documented sample with members replaced by arbitrary JSON or removed, at any depth."""
    paths: list[tuple[str, ...]] = []

    def walk(obj: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in obj.items():
            paths.append((*prefix, key))
            if isinstance(value, dict):
                walk(value, (*prefix, key))

    walk(sample, ())

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        result = copy.deepcopy(sample)
        for path in draw(st.lists(st.sampled_from(paths), max_size=4)):
            target = result
            for key in path[:-1]:
                target = target.get(key) if isinstance(target, dict) else None
            if not isinstance(target, dict) or path[-1] not in target:
                continue
            if draw(st.booleans()):
                del target[path[-1]]
            else:
                target[path[-1]] = draw(json_values)
        return result

    return mutate()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [CONNECTED_SAMPLE, DISCONNECTED_SAMPLE, QUEUED_CAPTURE, DATA_UPDATED_SAMPLE]
    ).flatmap(_mutations)
)
def test_damaged_samples_parse_or_raise_envelope_error(obj: dict[str, Any]) -> None:
    try:
        event = parse_envelope(obj)
    except EnvelopeError:
        return
    assert ConnectContactEvent.from_json(event.to_json()) == event


def _recase(obj: object, draw: st.DrawFn) -> object:
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            style = draw(st.sampled_from(["same", "upper-first", "lower-first"]))
            recased = {
                "same": key,
                "upper-first": key[:1].upper() + key[1:],
                "lower-first": key[:1].lower() + key[1:],
            }[style]
            out[recased] = _recase(value, draw)
        return out
    return obj


@settings(deadline=None)
@given(st.data())
def test_key_case_never_changes_the_event(data: st.DataObject) -> None:
    for sample in (DISCONNECTED_SAMPLE, DATA_UPDATED_SAMPLE):
        mixed = _recase(sample, data.draw)
        assert parse_envelope(mixed) == parse_envelope(sample)
